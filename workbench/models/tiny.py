"""The tiny test model: a randomly initialised Llama with a byte-level ChatML tokenizer, built
offline from a config, so unit tests need no weights."""

from __future__ import annotations

import logging

import torch

from workbench.models.engine import Model, wrap
from workbench.models.registry import TINY_MODEL


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


def tiny_hf(seed: int = 0, d_model: int = 64, n_layers: int = 4, tokenizer=None):
    """The plain HF Llama behind ``tiny_model`` (same seed, same weights)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or tiny_tokenizer()
    config = LlamaConfig(  # type: ignore[call-arg]  # attn_implementation: accepted, but not in the signature
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


def tiny_model(
    seed: int = 0, d_model: int = 64, n_layers: int = 4, name: str = TINY_MODEL, dtype: torch.dtype = torch.float32
) -> Model:
    """A randomly initialised Llama built from a config: unit tests need no weights."""
    for noisy in ("transformers", "transformer_lens"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    tokenizer = tiny_tokenizer()
    hf_model = tiny_hf(seed, d_model, n_layers, tokenizer).to(dtype)
    return wrap(hf_model, tokenizer, name, name)
