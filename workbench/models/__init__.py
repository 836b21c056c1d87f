"""Models: the embedded-model registry, the GGUF cache, the engine (bridge + twin) and the tiny test model."""

from workbench.models.dtypes import DTYPES, dtype_name, native_bf16, resolve_dtype
from workbench.models.engine import (
    HOOK_TEMPLATE,
    Model,
    Tokenized,
    cache_argument,
    chat_text,
    check_layer,
    stop_token_ids,
)
from workbench.models.loading import dequantized_folder, load_model, load_plain_hf
from workbench.models.registry import (
    DEFAULT_MODEL,
    DEMO_MODEL,
    EMBEDDED,
    TINY_MODEL,
    EmbeddedModel,
    embedded_gguf_path,
    ensure_packages,
)
from workbench.models.tiny import tiny_model, tiny_tokenizer

__all__ = [
    "DEFAULT_MODEL",
    "DEMO_MODEL",
    "DTYPES",
    "EMBEDDED",
    "HOOK_TEMPLATE",
    "TINY_MODEL",
    "EmbeddedModel",
    "Model",
    "Tokenized",
    "cache_argument",
    "chat_text",
    "check_layer",
    "dequantized_folder",
    "dtype_name",
    "embedded_gguf_path",
    "ensure_packages",
    "load_model",
    "load_plain_hf",
    "native_bf16",
    "resolve_dtype",
    "stop_token_ids",
    "tiny_model",
    "tiny_tokenizer",
]
