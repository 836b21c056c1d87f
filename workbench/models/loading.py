"""``load_model``: an embedded model by short name, a .gguf path, a local HF folder, a hub id, or the
tiny test model, as a hooked ``Model``; and the same weights as a plain HF model (parity, bench).

Embedded models are dequantized once from their GGUF into a float32 HF folder in the cache, so a
later load takes about a second instead of a dequantization.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from workbench.errors import WorkbenchError
from workbench.io import cache_dir, file_lock
from workbench.models.dtypes import resolve_dtype
from workbench.models.engine import Model, wrap
from workbench.models.registry import DEFAULT_MODEL, EMBEDDED, TINY_MODEL, embedded_gguf_path, ensure_packages
from workbench.models.tiny import tiny_hf, tiny_model
from workbench.threads import set_cpu_threads


def dequantized_folder(name: str) -> Path:
    """An embedded model dequantized once to a float32 HF folder in the cache (loads in ~1 s).

    The weights are exactly those transformers dequantizes from the GGUF on every load.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = cache_dir() / "models" / name
    if (folder / "config.json").exists():
        return folder
    ensure_packages(name)  # a missing package is refused before anything is written
    with file_lock(folder.parent / f".{name}.lock"):  # two first loads at once: one builds, the other waits and reuses
        if (folder / "config.json").exists():
            return folder
        for stale in [
            *folder.parent.glob(f".{name}.*"),
            *cache_dir().glob(f".{EMBEDDED[name].gguf}.*.tmp"),
        ]:  # left by a killed build
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            elif stale.suffix == ".tmp":
                stale.unlink(missing_ok=True)
        gguf = embedded_gguf_path(name)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        hf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # the weights are plain float32 tensors after dequantization (an attribute transformers sets, not declares)
        hf_model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(hf_model.config, "quantization_config"):
            del hf_model.config.quantization_config
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}."))
        try:
            hf_model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            if folder.exists():  # a folder without config.json: a build from before this lock, interrupted
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _quiet_transformers() -> None:
    for noisy in ("transformers", "transformer_lens", "root"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_model(name: str = DEFAULT_MODEL, device: str | None = None, dtype: str | torch.dtype = torch.float32) -> Model:
    """Load an embedded model by short name, a .gguf path, a local HF folder or a hub id.

    ``dtype``: float32 (the reference), bfloat16, float16, or ``auto`` (see ``resolve_dtype``).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = resolve_dtype(dtype)
    if device and str(device).startswith("cuda") and not torch.cuda.is_available():
        raise WorkbenchError(
            f"device {device!r} asked for, but torch sees no CUDA GPU here: "
            "drop --device (CPU) or install a CUDA build of torch"
        )
    set_cpu_threads(device)  # a sane CPU default; WORKBENCH_THREADS / OMP_NUM_THREADS override it
    if name == TINY_MODEL:
        model = tiny_model(dtype=dtype)
        if device:
            model.bridge.to(device)
        return model
    _quiet_transformers()
    kwargs = dict(attn_implementation="eager", dtype=dtype)
    path = Path(name).expanduser()
    if name in EMBEDDED:
        folder = dequantized_folder(name)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        hf_model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        bridge_name = EMBEDDED[name].hf_name
    elif path.suffix == ".gguf":
        gguf = path
        if not gguf.exists():
            raise WorkbenchError(f"no GGUF file at {gguf}: give an existing .gguf path")
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            hf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, **kwargs)
        except Exception as exc:  # gguf and transformers raise many types for a damaged or foreign file
            raise WorkbenchError(f"cannot read {gguf} as a model ({_failure(exc, 120)})") from None
        bridge_name = gguf.stem
    else:
        local = path.is_dir()
        if not local and not _in_hf_cache(name) and not _hub_reachable():
            raise WorkbenchError(
                f"cannot load model {name!r}: not a local folder, not in the Hugging Face cache, "
                "and the hub is unreachable; "
                f"use an embedded model ({', '.join(EMBEDDED)}), a .gguf path or a local HF folder"
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
            hf_model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
        except Exception as exc:
            raise WorkbenchError(
                f"cannot load model {name!r} ({_failure(exc, 160)}); "
                f"use an embedded model ({', '.join(EMBEDDED)}), a .gguf path or a local HF folder"
            ) from None
        bridge_name = name
    if not getattr(hf_model.config, "architectures", None):
        hf_model.config.architectures = [type(hf_model).__name__]
    if device:
        hf_model.to(device)  # type: ignore[arg-type]  # transformers wraps Module.to, and the wrapper's type wants self
    return wrap(hf_model, tokenizer, name, bridge_name)


def load_plain_hf(name: str = DEFAULT_MODEL, dtype=torch.float32):
    """The same weights as ``load_model(name)`` in a plain, unhooked transformers model (parity, bench)."""
    from transformers import AutoModelForCausalLM

    if name == TINY_MODEL:
        return tiny_hf()
    source = dequantized_folder(name) if name in EMBEDDED else name
    if str(source).endswith(".gguf"):
        path = Path(source)
        return AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, attn_implementation="eager", dtype=dtype
        ).eval()
    return AutoModelForCausalLM.from_pretrained(source, attn_implementation="eager", dtype=dtype).eval()


def _failure(exc: Exception, width: int) -> str:
    """An exception as ``Type: the first line of its message``, cut to ``width`` characters."""
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0][:width] if text else ''}"


def _in_hf_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:
        return False


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe, so offline machines fail in seconds rather than after retries."""
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        return False
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False
