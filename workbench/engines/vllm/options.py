"""How vLLM loads a model for the workbench: ``VLLMOptions``, each field checked where it is built;
``import_vllm`` (or how to install it); vLLM's refusals of a memory setting in the workbench's terms."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from workbench.engines.vllm.worker import SLOTS
from workbench.errors import WorkbenchError

# vLLM's own words, lower-cased, for "the KV cache does not fit the share": on a GPU (vllm.v1.core.kv_cache_utils)
# and on a CPU (vllm.v1.worker.cpu_worker: at start-up, and where share × RAM less what the process holds is ≤ 0)
MEMORY_WORDS = ("gpu_memory_utilization", "gpu-memory-utilization", "kv cache", "cache blocks")


def import_vllm():
    """vLLM, or a one-line error saying how to install it."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # vLLM's INFO lines would bury the workbench's progress log
    try:
        import vllm

        if getattr(vllm, "__file__", None) is None:  # a folder named vllm on sys.path (a checkout, say) is not vLLM
            raise ImportError("no module named 'vllm' (only a namespace package)")
    except Exception as exc:  # ImportError, or a broken install (a CUDA torchvision beside a CPU torch)
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise WorkbenchError(f"vLLM is not usable here ({type(exc).__name__}: {first}): run `make vllm`") from None
    return vllm


@dataclass(frozen=True)
class VLLMOptions:
    """How ``VLLMEngine`` loads its model; other keywords go to ``vllm.LLM`` (``max_num_seqs``...).

    ``gpu_memory_utilization``: the share of the GPU's memory vLLM may take (on a CPU: the share of
    host RAM for its KV cache). ``max_model_len``: the longest prompt + reply (None: the model's own).
    ``in_process``: the engine core in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``: no spawned
    process, no ``__main__`` guard needed); the steering works either way. ``enforce_eager=False``:
    vLLM's torch.compile (and CUDA graphs on a GPU), minutes of compiling on a CPU, then affine
    operators only and at most ``slots`` interventions per layer (eager engines grow their slots).
    """

    dtype: str = "float32"
    gpu_memory_utilization: float = 0.25
    max_model_len: int | None = None
    in_process: bool = True
    enforce_eager: bool = True
    slots: int = SLOTS

    def __post_init__(self) -> None:
        share = self.gpu_memory_utilization
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not (0 < share <= 1):
            raise WorkbenchError(f"gpu_memory_utilization must be a share in (0, 1], got {share!r}")
        if not math.isfinite(share):
            raise WorkbenchError(f"gpu_memory_utilization must be finite, got {share!r}")
        length = self.max_model_len
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
            raise WorkbenchError(f"max_model_len must be a whole number ≥ 1 or None, got {length!r}")
        if isinstance(self.slots, bool) or not isinstance(self.slots, int) or self.slots < 1:
            raise WorkbenchError(f"slots must be a whole number ≥ 1, got {self.slots!r}")


def memory_refusal(exc: Exception, options: VLLMOptions) -> WorkbenchError | None:
    """vLLM's refusal of a memory setting as one line naming the workbench's knobs: a KV cache that does
    not fit the share (for the context asked), or a ``max_model_len`` it will not take (longer than the
    model's); None for any other error."""
    text = " ".join(str(exc).split()).split(" See https://")[0]
    if not isinstance(exc, ValueError):
        return None
    if any(w in text.lower() for w in MEMORY_WORDS):
        return WorkbenchError(
            f"vLLM cannot hold its KV cache with gpu_memory_utilization={options.gpu_memory_utilization}, "
            f"max_model_len={options.max_model_len}: {text} (on the command line: --vllm-memory SHARE, "
            "--vllm-max-len N)"
        )
    if "max_model_len" in text and options.max_model_len is not None:
        said = text.split(" To allow overriding")[0]  # not its advice to set VLLM_ALLOW_LONG_MAX_MODEL_LEN
        return WorkbenchError(f"vLLM refuses max_model_len={options.max_model_len}: {said} (--vllm-max-len N)")
    return None
