"""Inside a vLLM worker: steering as fixed tensors, so it survives torch.compile and CUDA graphs (issue 28).

vLLM compiles the decoder stack (its ``LlamaModel.forward``) once and drops dynamo's guards: whatever
a hook reads from Python (a dict of specs, a flag, a tensor it replaces) is frozen at that first
trace, and a CUDA graph freezes tensor addresses too. So the steering state is tensors allocated once,
before that trace (``SteeringWorker.load_model``), whose values alone change (``copy_``): per decoder
layer, ``slots`` slots each hold a unit direction ``u`` and, per token of the step, ``a`` and ``b``.
The layer's hook applies every slot in order, x ← x + (a − b·(x·u))·u, the affine form of each
built-in operator (``add`` a = c, b = 0; ``project`` a = c, b = 1; ``ablate`` a = 0, b = 1), with
a = b = 0 on tokens not steered. It also writes x·u for each probe slot (conditional steering's
detection pass) into a buffer.

What depends on the step (which request each token belongs to, through the V1 runner's
``input_batch.req_ids``, ``query_start_loc`` and ``requests``; whether it is a prompt token; so
its a and b) is worked out eagerly before each forward, by a wrapper around the runner's
``_model_forward``: outside the compiled region and outside any CUDA graph. The non-finite check
reads the model's output there too. Eager (``enforce_eager``), the hooks skip empty layers and may
run any operator of ``steering.OPERATORS``.
"""

from __future__ import annotations

import functools
import typing

import torch

ROW_KEY = "workbench_row"  # the SamplingParams.extra_args key holding a request's prompt index
SLOTS = 4  # default steering interventions per layer (a compiled engine cannot grow them)
SLOTS_KEY = "workbench_slots"  # where the engine passes its slots (vLLM's ``additional_config``)
WORKERS = {"cpu": "vllm.v1.worker.cpu_worker.CPUWorker", "cuda": "vllm.v1.worker.gpu_worker.Worker"}
"""vLLM's device type → the V1 worker that ``SteeringWorker`` extends there."""
POSITIONS = ("all", "prompt", "generated")  # a table's positions, coded as their index here


class WorkerSteering:
    """One worker's steering: the tensors the decoder layers' hooks read, and how each step fills them.

    ``runner``: vLLM's V1 model runner, its model loaded, not yet run. ``compiled``: the model runs
    compiled (the hooks then read every slot on every step, with no Python branch on the specs).
    """

    def __init__(self, runner, compiled: bool, slots: int = SLOTS):
        if not all(hasattr(runner, a) for a in ("input_batch", "requests", "query_start_loc", "_model_forward")):
            raise RuntimeError(
                f"workbench steering needs vLLM's V1 model runner, not {type(runner).__name__}: "
                "set VLLM_USE_V2_MODEL_RUNNER=0"
            )
        model = runner.get_model()
        layers = getattr(getattr(model, "model", None), "layers", None)
        if layers is None:
            raise RuntimeError(
                f"{type(model).__name__} has no model.layers: workbench steering cannot find its decoder layers"
            )
        first = next(model.parameters())
        self.runner, self.compiled, self.device, self.dtype = runner, compiled, first.device, first.dtype
        self.shape = (len(layers), slots, runner.model_config.get_hidden_size(), runner.max_num_tokens)
        self.allocate(slots)
        self.steered: list[dict] = []  # the loaded tables, each with its layer and slot
        self.probes: list[tuple[int, int]] = []  # (layer, slot) per probe
        self.probed: list[torch.Tensor] = []  # per probe: the last prompt token's projection, per prompt
        self.broken = torch.zeros((), dtype=torch.bool, device=self.device)  # a non-finite output since load
        for i, layer in enumerate(layers):
            layer.register_forward_hook(self.hook(i))
        runner._model_forward = self.around(runner._model_forward)

    def allocate(self, slots: int) -> None:
        """The tensors the hooks read, zero (a zero slot changes nothing): directions, per-token a and b,
        probe directions and their projections; eager engines reallocate to grow."""
        n_layers, _, d_model, tokens = self.shape
        self.shape = (n_layers, slots, d_model, tokens)
        zeros = functools.partial(torch.zeros, device=self.device)
        self.u, self.probe_u = zeros(n_layers, slots, d_model, dtype=self.dtype), zeros(n_layers, slots, d_model)
        self.a, self.b = (
            zeros(n_layers, slots, tokens, dtype=self.dtype),
            zeros(n_layers, slots, tokens, dtype=self.dtype),
        )
        self.projections = zeros(n_layers, tokens, slots)
        self.used: list[list[tuple[int, str | None]]] = [[] for _ in range(n_layers)]  # eager: (slot, mode)

    @torch.no_grad()
    def load(self, tables: list[dict], probes: list[dict], n_prompts: int) -> None:
        """New steering in the same tensors. ``tables``: per spec its layer, unit direction, coefficient
        per prompt (NaN: unsteered), positions, ``affine`` (α, β) or None (eager only) and mode;
        ``probes``: per condition its layer and unit direction. Plain lists: they cross processes."""
        n_layers, slots = self.shape[:2]
        needed = max(
            max(sum(t["layer"] == i for t in tables), sum(p["layer"] == i for p in probes)) for i in range(n_layers)
        )
        if needed > slots and self.compiled:
            raise RuntimeError(f"{needed} interventions at one layer, but the compiled graph holds {slots}")
        if needed > slots:
            self.allocate(needed)
        for t in (self.u, self.probe_u, self.a, self.b):
            t.zero_()
        self.used = [[] for _ in range(n_layers)]
        self.steered, self.probes = [], []
        for table in tables:
            layer = table["layer"]
            slot = len(self.used[layer])
            self.used[layer].append((slot, None if table["affine"] else table["mode"]))
            self.u[layer, slot].copy_(torch.tensor(table["unit"]))
            self.steered.append({**table, "slot": slot, "code": POSITIONS.index(table["positions"])})
        self.c = torch.tensor([t["coefficients"] for t in tables], dtype=self.dtype).reshape(len(tables), n_prompts)
        self.c, self.where = self.c.to(self.device), torch.tensor([t["code"] for t in self.steered], device=self.device)
        alpha_beta = [t["affine"] or (1.0, 1.0) for t in tables]  # a non-affine operator: a = c, b = 1 when steered
        self.alpha_beta = torch.tensor(alpha_beta, dtype=self.dtype, device=self.device).reshape(-1, 2)
        self.index = torch.tensor([t["layer"] * slots + t["slot"] for t in self.steered], device=self.device)
        for probe in probes:
            slot = sum(layer == probe["layer"] for layer, _ in self.probes)
            self.probe_u[probe["layer"], slot].copy_(torch.tensor(probe["unit"]))
            self.probes.append((probe["layer"], slot))
        self.probed = [torch.full((n_prompts,), float("nan")) for _ in probes]
        self.broken.zero_()

    def token_map(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per token of this step: its prompt index (-1: not ours, or padding) and its prompt length.
        Tokens are laid out request after request in the input batch's order."""
        batch, n = self.runner.input_batch, self.runner.input_batch.num_reqs
        starts = torch.as_tensor(self.runner.query_start_loc.np[: n + 1], dtype=torch.long)
        rows, lengths = [], []
        for req_id in batch.req_ids[:n]:
            req = self.runner.requests[req_id]
            extra = (req.sampling_params.extra_args or {}) if req.sampling_params is not None else {}
            rows.append(int(extra.get(ROW_KEY, -1)))  # -1: not ours, never steered
            lengths.append(req.num_prompt_tokens)
        counts, pad = starts.diff(), positions.shape[-1] - int(starts[-1])  # pad: tokens past the last request
        row = torch.cat([torch.tensor(rows, dtype=torch.long).repeat_interleave(counts), torch.full((pad,), -1)])
        length = torch.cat(
            [torch.tensor(lengths, dtype=torch.long).repeat_interleave(counts), torch.zeros(pad, dtype=torch.long)]
        )
        return row.to(self.device), length.to(self.device)

    def fill(self, row: torch.Tensor, prompt: torch.Tensor) -> None:
        """This step's a and b for every loaded table, from each token's prompt and phase."""
        n = row.shape[0]
        c = self.c[:, row.clamp(min=0)]
        phase = torch.stack([torch.ones_like(prompt), prompt, ~prompt])[self.where]
        on = (row >= 0) & ~torch.isnan(c) & phase
        alpha, beta = self.alpha_beta[:, :1], self.alpha_beta[:, 1:]
        self.a.view(-1, self.shape[3])[self.index, :n] = torch.where(on, alpha * c, torch.zeros_like(c))
        self.b.view(-1, self.shape[3])[self.index, :n] = on * beta

    def around(self, forward):
        """The runner's ``_model_forward``, with this step's token map filled in before (eagerly, outside
        any compiled region or CUDA graph) and the probes and the non-finite check read after."""

        def step(*args, **kwargs):
            if not self.steered and not self.probes:
                return forward(*args, **kwargs)
            positions = kwargs["positions"]
            positions = positions[0] if positions.ndim > 1 else positions
            row, length = self.token_map(positions)
            if self.steered:
                self.fill(row, positions < length)
            out = forward(*args, **kwargs)
            if self.steered:  # as the workbench's engine refuses NaN/inf logits
                hidden = out if isinstance(out, torch.Tensor) else out[0]
                self.broken.logical_or_(~torch.isfinite(hidden).all())
            last = (positions == length - 1) & (row >= 0)
            for k, (layer, slot) in enumerate(self.probes):
                self.probed[k][row[last].cpu()] = self.projections[layer, : row.shape[0], slot][last].cpu()
            return out

        return step

    def hook(self, layer: int):
        """The forward hook of decoder layer ``layer``: the residual stream after it (vLLM's layers
        return ``(hidden, residual)``; their sum is TransformerLens's ``hook_resid_post``), probed,
        then steered by each slot in order; the steered stream goes on as the hidden part."""

        @typing.no_type_check  # traced into vLLM's graph: no run-time type checks (the tests' import hook) in it
        def hook(module, args, output):
            if not self.compiled and not self.used[layer] and not any(p[0] == layer for p in self.probes):
                return None
            hidden, residual = output if isinstance(output, tuple) else (output, None)
            x = hidden if residual is None else hidden + residual
            # only leading-dim narrows of n tokens: a view whose contiguity hangs on n (a slice of an inner
            # dim) makes the compiler specialize n to its first value, which vLLM's dynamic shapes refuse
            n = x.shape[0]
            self.projections[layer].narrow(0, 0, n).copy_(x.float() @ self.probe_u[layer].T)
            for slot, mode in self.used[layer] if not self.compiled else [(s, None) for s in range(self.shape[1])]:
                u, a, b = self.u[layer, slot], self.a[layer, slot].narrow(0, 0, n), self.b[layer, slot].narrow(0, 0, n)
                if mode is None:
                    x = x + (a - b * (x @ u))[:, None] * u
                else:  # eager only: an operator without an affine form
                    from workbench.generation.steering import OPERATORS

                    x = x + OPERATORS[mode](x[:, None], u, a)[:, 0] * b[:, None]
            # a zero residual: the next layer's sum is exactly x
            return x if residual is None else (x, torch.zeros_like(residual))

        return hook


class SteeringRPC:
    """What the engine calls by name (``LLM.collective_rpc``), in process and across processes alike;
    ``load_model`` installs the steering before vLLM's first (compiling) forward."""

    def load_model(self, *args, **kwargs) -> None:
        super().load_model(*args, **kwargs)  # type: ignore[misc]
        config = self.vllm_config  # type: ignore[attr-defined]
        slots = (config.additional_config or {}).get(SLOTS_KEY, SLOTS)
        compiled = int(config.compilation_config.mode) != 0  # CompilationMode.NONE
        self.workbench_steering = WorkerSteering(self.model_runner, compiled, slots)  # type: ignore[attr-defined]

    def workbench_load(self, tables: list[dict], probes: list[dict], n_prompts: int) -> None:
        self.workbench_steering.load(tables, probes, n_prompts)

    def workbench_probed(self) -> list[list[float]]:
        return [p.tolist() for p in self.workbench_steering.probed]

    def workbench_broken(self) -> bool:
        """Whether steering made a NaN or infinite output since the tables were loaded."""
        return bool(self.workbench_steering.broken)


@functools.cache
def steering_worker(device: str) -> type:
    """vLLM's V1 worker for ``device`` with ``SteeringRPC`` mixed in."""
    module, name = WORKERS[device].rsplit(".", 1)
    base = getattr(__import__(module, fromlist=[name]), name)
    return type(f"Steering{base.__name__}", (SteeringRPC, base), {})


def __getattr__(name: str):
    """``CpuSteeringWorker`` / ``CudaSteeringWorker``: what the engine names as vLLM's ``worker_cls``,
    built on first use so this module imports without vLLM."""
    device = name.removesuffix("SteeringWorker").lower()
    if name.endswith("SteeringWorker") and device in WORKERS:
        return steering_worker(device)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
