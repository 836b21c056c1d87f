"""The engine: a TransformerLens bridge around a Hugging Face causal LM, and one forward for it.

Every model is a TransformerLens ``TransformerBridge`` around a Hugging Face causal LM. The bridge
replaces the HF blocks in place, so TL hooks (``blocks.L.hook_resid_post``) fire whether we call the
bridge or the wrapped HF model; the workbench calls the HF model directly to use its KV cache.

Speed: the bridge re-implements attention and dispatches every submodule through Python, which costs
about a fifth of each decoding step on CPU. So each model also keeps a *twin*: the plain HF module
tree, sharing every weight tensor with the bridge, whose decoder layers fire the bridge's own
``blocks.L.hook_resid_post`` HookPoints. ``Model.forward`` runs the twin whenever no other TL hook
point carries a hook, and the bridge-wrapped model otherwise, so any TL hook still works.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from workbench.errors import WorkbenchError
from workbench.models.cache_probe import probed
from workbench.models.dtypes import dtype_name
from workbench.models.twin import TwinLink, attach_twin

HOOK_TEMPLATE = "blocks.{layer}.hook_resid_post"


class Tokenized:
    """Prompts to token ids and back, one way for every engine (the workbench's, vLLM's), so their
    token ids agree: needs a ``tokenizer``."""

    tokenizer: Any  # a Hugging Face tokenizer

    def chat(self, user_message: str) -> str:
        """The user message in the model's chat template, ending with the generation prompt."""
        return chat_text(self.tokenizer, user_message)

    def encode(self, text: str) -> list[int]:
        """Token ids of an already templated prompt; the template carries its own special tokens."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


@dataclass(repr=False)
class Model(Tokenized):
    """A hooked model, its tokenizer and the facts generation needs."""

    bridge: Any  # TransformerLens's TransformerBridge (an nn.Module)
    tokenizer: Any
    name: str
    stop_token_ids: list[int] = field(default_factory=list)
    twin: torch.nn.Module | None = None
    twin_link: TwinLink | None = None  # the twin's hooks into the bridge, removed only by ``drop_twin``
    use_twin: bool = True  # False: always run through the bridge (the reference path)
    bridge_cache_ok: bool = True  # the bridge's own modules honour a KV cache (probed at load)
    decoder: object | None = None  # the compiled decode step (workbench.generation.compiled), made on first use
    backend: Any = None  # another engine ``generate`` hands generation to (``vllm_engine.VLLMEngine``); None: this one

    def __repr__(self) -> str:
        engine = "twin" if self.twin is not None and self.use_twin else "bridge"
        engine = f"generation in {self.backend!r}, the rest on the {engine}" if self.backend is not None else engine
        shape = f"{self.n_layers} layers × d_model {self.d_model}"
        return f"Model({self.name!r}: {shape}, {dtype_name(self.dtype)} on {self.device}, {engine} engine)"

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
        if self.twin_link is None or self.twin_link.others_hooked():
            return self.hf
        buffer = next(self.twin.buffers(), None)
        if buffer is not None and buffer.device != self.device:
            self.twin.to(self.device)  # the weights are shared; only the twin's own buffers move
        return self.twin

    @property
    def caches(self) -> bool:
        """Whether ``forward`` honours a KV cache right now (the twin always; the bridge if probed so)."""
        return self.runner is self.twin or self.bridge_cache_ok

    def new_cache(self):
        from transformers import DynamicCache

        return DynamicCache(config=self.hf.config)

    def forward(
        self,
        ids: Int[Tensor, "batch new"],
        mask: Int[Tensor, "batch seen"],
        positions: Int[Tensor, "batch new"],
        cache=None,
        keep: int = 1,
    ) -> Float[Tensor, "batch keep vocab"]:
        """One forward of the new columns ``ids`` (``mask`` covers cached and new columns) through
        ``runner``, updating ``cache`` if given; the logits of the last ``keep`` positions
        (``keep=0``: none, only the hooks run, e.g. to record activations)."""
        lm: Any = self.runner  # a causal LM: .base_model, .logits
        if keep == 0:
            lm.base_model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
            return torch.empty(ids.shape[0], 0, 0, device=ids.device)
        kv = {cache_argument(lm): cache, "use_cache": True} if cache is not None else {"use_cache": False}
        return lm(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep, **kv).logits

    def drop_twin(self) -> None:
        """Remove the twin's hooks into the bridge and run everything through the bridge from now on."""
        if self.twin_link is not None:
            self.twin_link.remove()
        close = getattr(self.decoder, "close", None)  # the compiled step's hooks are on the twin too
        if close is not None:
            close()
        self.twin, self.twin_link, self.decoder = None, None, None

    @contextmanager
    def through_bridge(self) -> Iterator[Model]:
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
    def dtype(self) -> torch.dtype:
        return next(self.hf.parameters()).dtype

    def fingerprint(self) -> str:
        """A short hash of what makes this model's numbers: every weight's name, shape, precision
        and 1,152 of its values (first, last and evenly spaced), and the chat template. Another file
        under the same name, or another precision, gets another fingerprint; cheap on any device."""
        h = hashlib.sha256(str(getattr(self.tokenizer, "chat_template", "")).encode())
        for name, p in self.hf.named_parameters():
            flat = p.detach().reshape(-1)
            idx = torch.cat(
                [
                    torch.arange(min(64, flat.numel())),
                    torch.linspace(0, flat.numel() - 1, 1024, dtype=torch.float64).long(),
                    torch.arange(max(flat.numel() - 64, 0), flat.numel()),
                ]
            ).to(flat.device)
            h.update(f"{name}{tuple(p.shape)}{p.dtype}".encode())
            h.update(flat[idx].float().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.stop_token_ids[0]

    def hook_name(self, layer: int) -> str:
        check_layer(self, layer)
        return HOOK_TEMPLATE.format(layer=layer)


def chat_text(tokenizer, user_message: str) -> str:
    """``user_message`` in the tokenizer's chat template, ending with the generation prompt (every
    engine templates prompts this one way, so their token ids agree)."""
    messages = [{"role": "user", "content": user_message}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    # Base models without a template: plain continuation, after BOS if the model has one
    # (Gemma degenerates into repetition without it).
    return f"{tokenizer.bos_token or ''}{user_message}\n"


def check_layer(model: Model, layer: int) -> None:
    if not isinstance(layer, int) or not 0 <= layer < model.n_layers:
        raise WorkbenchError(f"layer {layer!r} is out of range for {model.name}: use 0..{model.n_layers - 1}")


def cache_argument(lm: torch.nn.Module) -> str:
    """The KV-cache keyword of this model's forward: ``cache`` from transformers 5.24, before that
    ``past_key_values`` (which 5.24 still takes, with a deprecation warning)."""
    return "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"


def wrap(hf_model, tokenizer, name: str, bridge_name: str) -> Model:
    """A ``Model``: the bridge around ``hf_model``, its weight-sharing twin, and what generation needs."""
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
    # The bridge's config records dtype and device (TL reads them, e.g. for tensors it makes); with
    # hf_model given it applies neither, so name the model's own.
    first = next(hf_model.parameters())
    bridge = TransformerBridge.boot_transformers(
        bridge_name, hf_model=hf_model, tokenizer=tokenizer, dtype=first.dtype, device=first.device
    )
    bridge.eval()
    model = Model(
        bridge=bridge,
        tokenizer=tokenizer,
        name=name,
        stop_token_ids=stop_token_ids(tokenizer, hf_model.generation_config),
    )
    model.twin_link = attach_twin(twin, bridge, [HOOK_TEMPLATE.format(layer=i) for i in range(bridge.cfg.n_layers)])
    model.twin = twin if model.twin_link is not None else None
    model.bridge_cache_ok = probed(model, hf_model)
    return model


def stop_token_ids(tokenizer, generation_config) -> list[int]:
    """The end-of-turn tokens generation stops at: the generation config's and tokenizer's EOS and
    the chat templates' end-of-turn tokens (the one rule every engine stops by)."""
    ids: list[int | None] = []
    eos = generation_config.eos_token_id if generation_config else None
    for value in (eos, tokenizer.eos_token_id):
        ids += value if isinstance(value, list) else [value]
    for token in ("<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|eot_id|>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id:
            ids.append(tid)
    return sorted({i for i in ids if i is not None})
