"""An independent reference for steered generation, written without the workbench: a plain
transformers model (built separately from the same seed), a torch forward hook on one decoder layer
that applies the operator by hand, and a greedy loop that recomputes the whole sequence per token."""

import torch


def steered_greedy(
    hf, tokenizer, prompt: str, n_new: int, layer: int | None = None, direction=None, op: str = "add", c: float = 0.0
) -> list[int]:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    handle = None
    if layer is not None:
        u = (direction / direction.norm()).float()

        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            along = (h * u).sum(-1, keepdim=True)
            if op == "add":
                h = h + c * u
            elif op == "project":
                h = h + (c - along) * u
            elif op == "ablate":
                h = h - along * u
            else:
                raise ValueError(op)
            return (h,) + tuple(output[1:]) if isinstance(output, tuple) else h

        handle = hf.model.layers[layer].register_forward_hook(hook)
    out: list[int] = []
    try:
        with torch.no_grad():
            for _ in range(n_new):
                logits = hf(input_ids=torch.tensor([ids + out]), use_cache=False).logits
                out.append(int(logits[0, -1].argmax()))
    finally:
        if handle is not None:
            handle.remove()
    return out
