"""Analysis: does the instruction separate activations, and where; and vector geometry.

Separability is measured on held-out examples: the direction comes from the other folds, so an
example never scores itself (no circularity).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from workbench.errors import WorkbenchError
from workbench.stats import pearson


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    scores = np.concatenate([pos, neg])
    ranks = pd.Series(scores).rank().to_numpy()
    r_pos = ranks[: len(pos)].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def cohens_d(pos: np.ndarray, neg: np.ndarray) -> float:
    pooled = np.sqrt(((len(pos) - 1) * pos.var(ddof=1) + (len(neg) - 1) * neg.var(ddof=1)) / (len(pos) + len(neg) - 2))
    return float((pos.mean() - neg.mean()) / pooled) if pooled > 0 else float("inf")


def heldout_projections(
    with_acts: Float[Tensor, "n n_layers d_model"],
    without_acts: Float[Tensor, "n n_layers d_model"],
    folds: int = 5,
    seed: int = 0,
) -> tuple[Float[Tensor, "n n_layers"], Float[Tensor, "n n_layers"]]:
    """Each pair's projection on the unit instruction vector computed from the other folds."""
    n = with_acts.shape[0]
    if n < 2 or folds < 2:
        raise WorkbenchError("separability needs at least 2 pairs and 2 folds")
    folds = min(folds, n)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    proj_w, proj_wo = torch.empty(n, with_acts.shape[1]), torch.empty(n, with_acts.shape[1])
    for k in range(folds):
        test = order[k::folds]
        train = torch.tensor(sorted(set(order.tolist()) - set(test.tolist())))
        diff = with_acts[train].mean(0) - without_acts[train].mean(0)
        u = diff / diff.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        proj_w[test] = torch.einsum("nld,ld->nl", with_acts[test], u)
        proj_wo[test] = torch.einsum("nld,ld->nl", without_acts[test], u)
    return proj_w, proj_wo


def separability(with_acts, without_acts, instruction: str = "", folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Per layer: held-out AUROC and Cohen's d of with- vs without-instruction projections."""
    pw, pwo = heldout_projections(with_acts, without_acts, folds, seed)
    rows = []
    for layer in range(pw.shape[1]):
        a, b = pw[:, layer].numpy(), pwo[:, layer].numpy()
        rows.append(
            {
                "instruction": instruction,
                "layer": layer,
                "auroc": auroc(a, b),
                "cohens_d": cohens_d(a, b),
                "mean_with": float(a.mean()),
                "mean_without": float(b.mean()),
            }
        )
    return pd.DataFrame(rows)


def projections_frame(with_acts, without_acts, layers, instruction: str = "", folds: int = 5) -> pd.DataFrame:
    """Long table of held-out projections at chosen layers, for histograms."""
    pw, pwo = heldout_projections(with_acts, without_acts, folds)
    rows = []
    for layer in layers:
        rows += [
            {"instruction": instruction, "layer": layer, "with_instruction": True, "projection": float(v)}
            for v in pw[:, layer]
        ]
        rows += [
            {"instruction": instruction, "layer": layer, "with_instruction": False, "projection": float(v)}
            for v in pwo[:, layer]
        ]
    return pd.DataFrame(rows)


def steering_gain(cells: pd.DataFrame, with_instruction: bool = False) -> pd.DataFrame:
    """Per instruction and layer: best compliance over coefficients minus the unsteered baseline."""
    c = cells[cells["with_instruction"] == with_instruction]
    base = c[c["layer"] < 0].set_index("instruction")["compliance"]
    steered = c[c["layer"] >= 0].groupby(["instruction", "layer"])["compliance"].max().reset_index()
    steered["gain"] = steered["compliance"] - steered["instruction"].map(base)
    return steered


def gain_vs_separability(gain: pd.DataFrame, sep: pd.DataFrame) -> pd.DataFrame:
    """Join the per-layer steering gain with separability; with the Pearson correlation per instruction."""
    joined = gain.merge(sep, on=["instruction", "layer"])
    for column, measure in (("correlation", "auroc"), ("correlation_d", "cohens_d")):
        corr = joined.groupby("instruction").apply(lambda g, m=measure: pearson(g[m], g["gain"]), include_groups=False)
        joined[column] = joined["instruction"].map(corr)
    return joined


def cosine_matrix(a: Float[Tensor, "m d"], b: Float[Tensor, "n d"] | None = None) -> Float[Tensor, "m n"]:
    b = a if b is None else b
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return a @ b.T


def across_layers(vec) -> Float[Tensor, "n_layers n_layers"]:
    """Cosine similarity of one instruction's vectors at every pair of layers."""
    return cosine_matrix(vec.mean_diff)


def per_query_consistency(with_acts, without_acts) -> Float[Tensor, " n_layers"]:
    """Mean cosine between each pair's own difference and the mean vector, per layer: is the
    instruction direction shared across base queries or query-specific?"""
    diffs = with_acts - without_acts  # [n, layers, d]
    mean = diffs.mean(0)
    cos = torch.nn.functional.cosine_similarity(diffs, mean[None], dim=-1)
    return cos.mean(0)


@torch.inference_mode()
def logit_lens(model, vectors: dict, k: int = 5) -> pd.DataFrame:
    """What each vector says: per layer, the ``k`` tokens its unit direction promotes most when read
    out like a final residual (the model's final norm, then its unembedding), and the layer's norm.
    Tidy: instruction, layer, norm, rank, token, logit."""
    lm = model.hf
    final_norm = getattr(lm.base_model, "norm", None) or torch.nn.Identity()
    unembed = lm.get_output_embeddings()
    rows = []
    for name, vec in vectors.items():
        u = vec.directions.to(device=model.device, dtype=model.dtype)
        logits = unembed(final_norm(u[:, None, :]))[:, 0].float()  # [n_layers, vocab]
        top = logits.topk(k, dim=-1)
        for layer in range(u.shape[0]):
            for rank, (tid, value) in enumerate(zip(top.indices[layer].tolist(), top.values[layer].tolist())):
                rows.append(
                    {
                        "instruction": name,
                        "layer": layer,
                        "norm": float(vec.norms[layer]),
                        "rank": rank,
                        "token": model.tokenizer.decode([tid]),
                        "logit": value,
                    }
                )
    return pd.DataFrame(rows)
