"""What ``workbench demo`` runs: ``StudyConfig`` (sized for the model by ``for_model``) and the
instructions it screens (``screen_instructions``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.instructions import IFEVAL_IDS, catalog, get_instruction
from workbench.models import Model, dtype_name, native_bf16


@dataclass(frozen=True)
class StudyConfig:
    """Every choice of one study; with the model's fingerprint and the rules, a results folder's identity."""

    model: str
    quick: bool = False
    screen_prompts: int = 8  # validation prompts to measure following when told
    n_train: int = 64
    sweep_prompts: int = 8
    test_prompts: int = 20
    # None: each instruction's own budget (instructions.budget; ~3× slower when all 26 are screened)
    max_new_tokens: int | None = 64
    layers: tuple[int, ...] = ()
    coefficients: tuple[float, ...] = (1.0, 2.0)
    max_instructions: int = 3
    follow_threshold: float = 0.6  # share following when told, to count as "followed"
    min_gap: float = 0.25  # and this much above the share following without being told
    instructions: tuple[str, ...] = ()  # empty: every IFEval id; ("catalog",): the curated catalog
    sweep_with_instruction: bool = True  # also sweep with the instruction in the prompt (for "instruction + steering")
    dtype: str = "float32"  # the model's compute precision (part of the results' identity)

    @property
    def conditions(self) -> tuple[bool, ...]:
        """Prompt conditions the sweep covers: without the instruction, and with it unless skipped."""
        return (False, True) if self.sweep_with_instruction and not self.quick else (False,)

    def tokens(self, *names: str) -> int:
        """New tokens for replies to these instructions: the set number, or their largest own budget."""
        return self.max_new_tokens or max(get_instruction(n).budget for n in names)

    @classmethod
    def for_model(cls, model: Model, quick: bool = False, **overrides) -> StudyConfig:
        """The study sized for this model (its depth and cost per token); ``overrides`` win (None: unset,
        except ``max_new_tokens=None``, each instruction's own budget)."""
        n = model.n_layers
        base: dict[str, Any]
        # SmolLM2 float32 = 1 (805 s for the full study); Qwen bfloat16 ≈ 1.5; Qwen float32 ≈ 3.4
        cost = _relative_cost(model)
        large = cost > 2.0
        if quick:
            base = dict(
                screen_prompts=8,
                n_train=32,
                sweep_prompts=8,
                test_prompts=12,
                max_new_tokens=48,
                layers=tuple(sorted({min(max(l, 0), n - 1) for l in (n // 2 - 3, n // 2, n // 2 + 3)})),
                coefficients=(1.0,),
                max_instructions=1,
                instructions=("one_sentence",),
            )
        elif large:  # e.g. Qwen2.5-0.5B, ~3.5× SmolLM2's compute per token: fewer cells, same study
            base = dict(
                screen_prompts=5,
                sweep_prompts=8,
                test_prompts=14,
                coefficients=(1.0,),
                sweep_with_instruction=False,
                layers=tuple(sorted({min(round(n * f), n - 1) for f in (0.4, 0.55, 0.7, 0.8)})),
            )
        else:
            # middle layers, where the paper steers
            base = dict(layers=tuple(sorted({round(n * f) for f in (0.3, 0.4, 0.5, 0.6, 0.7)})))
            if cost > 1.2:  # "instruction + steering" then reuses the setting chosen without the instruction
                base["sweep_with_instruction"] = False
        overrides = {
            k: v for k, v in overrides.items() if v is not None or k == "max_new_tokens"
        }  # None tokens = auto budgets
        if overrides.get("instructions"):
            base["max_instructions"] = min(3, len(screen_instructions(overrides["instructions"])))
        base.update(overrides)
        return cls(model=model.name, quick=quick, dtype=dtype_name(model.dtype), **base)


def _relative_cost(model: Model) -> float:
    """Time per token relative to SmolLM2-135M in float32 (≈ 106M non-embedding weights; unembedding
    apart). Native bfloat16 runs about 2.2× faster on CPU (measured on Qwen2.5-0.5B)."""
    body = sum(p.numel() for name, p in model.hf.named_parameters() if "embed" not in name and "lm_head" not in name)
    fast = dtype_name(model.dtype) in ("bfloat16", "float16") and native_bf16()
    return body / 106e6 / (2.2 if fast else 1.0)


def screen_instructions(names: tuple[str, ...] = ()) -> tuple[str, ...]:
    """What the demo screens: by default (or ``("all",)``) every id lm-eval's IFEval registry builds,
    in its own words (languages: French and German); ``("catalog",)``: the curated catalog; else
    the given names."""
    if names in ((), ("all",)):
        langs = ("language:response_language[language=fr]", "language:response_language[language=de]")
        return tuple(i for i in IFEVAL_IDS if i != "language:response_language") + langs
    return tuple(catalog()) if names == ("catalog",) else names
