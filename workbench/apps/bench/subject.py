"""What one bench run measures: its configuration (``BenchConfig``) and what it loads once (``Subject``)."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedModel

from workbench.extract import compute_vector
from workbench.generation.steering import Steer
from workbench.instructions import make_pairs, queries
from workbench.models import Model, load_model, load_plain_hf
from workbench.vectors import InstructionVector


@dataclass(frozen=True)
class BenchConfig:
    """One bench run: the model as ``load_model`` takes it, and ``quick``, which shrinks every size
    below so that a run on the tiny model takes seconds and still produces every figure."""

    model: str
    quick: bool = False
    device: str | None = None
    dtype: str = "float32"

    @property
    def new_tokens(self) -> int:
        """New tokens per generation (fixed length: no early stop)."""
        return 16 if self.quick else 64

    @property
    def repeats(self) -> int:
        """Best of this many alternated repeats at batch 1."""
        return 1 if self.quick else 3

    @property
    def repeats_batched(self) -> int:
        """The sides at batch 8 and 16 are long enough that one repeat fewer does."""
        return max(1, self.repeats - 1)

    @property
    def vector_pairs(self) -> int:
        return 8 if self.quick else 32

    @property
    def sweep_grid(self) -> tuple[int, tuple[float, ...], int]:
        """(layers, coefficients, prompts) of the sweep section's grid."""
        return (2, (1.0, 2.0), 4) if self.quick else (4, (0.5, 1.0, 2.0, 4.0), 8)

    @property
    def extraction_prompts(self) -> int:
        return 16 if self.quick else 64

    @property
    def ray_prompts(self) -> int:
        """Prompts per Ray batch (a slice of the sweep's grid)."""
        return 4 if self.quick else 8

    @property
    def peak_sizes(self) -> tuple[int, ...]:
        """The numbers of prompts whose extraction peak memory is measured."""
        return (8, 32) if self.quick else (16, 128)


@dataclass(frozen=True)
class Subject:
    """What every section measures on: the hooked model, the same weights in plain transformers, a
    *one sentence* instruction vector steering at the middle layer (×1), and the validation queries."""

    config: BenchConfig
    model: Model
    hf: PreTrainedModel
    vec: InstructionVector
    layer: int
    spec: Steer
    prompts: list[str]


def load_subject(config: BenchConfig) -> Subject:
    model = load_model(config.model, device=config.device, dtype=config.dtype)
    hf = load_plain_hf(config.model, dtype=model.dtype).to(model.device)
    vec = compute_vector(model, pairs=make_pairs("one_sentence", "train", limit=config.vector_pairs))
    layer = model.n_layers // 2
    prompts = [q.text for q in queries("validation")]
    return Subject(config, model, hf, vec, layer, vec.steer(layer, 1.0), prompts)
