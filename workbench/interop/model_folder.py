"""An embedded model as a plain Hugging Face folder, for tools outside the workbench."""

from __future__ import annotations

from pathlib import Path

from workbench.errors import WorkbenchError


def export_model(name: str, out: str | Path) -> Path:
    """An embedded model as a plain Hugging Face folder (float32, dequantized from its GGUF) that any
    tool loads offline, e.g. ``lm_eval --model steered --model_args pretrained=OUT,...``."""
    import shutil

    from workbench.models import EMBEDDED, dequantized_folder

    if name not in EMBEDDED:
        raise WorkbenchError(f"{name!r} is not an embedded model: use one of {', '.join(EMBEDDED)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise WorkbenchError(f"{out} exists and is not empty: give a new folder")
    source = dequantized_folder(name)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out
