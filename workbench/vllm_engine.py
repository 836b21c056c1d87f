"""Generation through vLLM with the workbench's steering: same specs, same tokens (issue 28).

``Steer`` specs mean here what they mean in ``workbench.generate``: the operators of
``steering.OPERATORS`` applied to the residual stream after a decoder layer (TransformerLens's
``blocks.L.hook_resid_post``: a vLLM decoder layer returns ``(hidden, residual)``, whose sum it is),
composed in order, on all, prompt or generated positions, with per-prompt coefficients (NaN:
unsteered) and conditional steering (``when``: decided by an unsteered detection pass, as there).
Vector extraction stays on the workbench engine: vectors are computed there and steered here.

How one vLLM batch steers each request its own way: every request carries its prompt index in
``SamplingParams.extra_args``. Inside the worker (a vLLM worker extension, ``SteeringWorker``), a
pre-hook on the first decoder layer maps each token of the flattened batch to its request through
the V1 model runner's ``input_batch.req_ids`` and ``query_start_loc`` (tokens are laid out request
after request in that order), reads the request's prompt index and prompt length from
``runner.requests[req_id]``, and calls a token "prompt" when its position (the layers' ``positions``
argument) is below the prompt length. Forward hooks on the decoder layers, installed once, then steer
from tables of tensors (unit directions, a coefficient per prompt) that each call reloads.

Limits: eager only (``enforce_eager=True`` is forced: torch.compile would freeze the per-step
token map, which is read from Python state), the V1 model runner (``VLLM_USE_V2_MODEL_RUNNER=0`` is
set), no prefix caching (a cached prompt would carry another request's steering), one pipeline stage.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from workbench.errors import WorkbenchError
from workbench.generate import Generation
from workbench.models import EMBEDDED, Model, Tokenized, dequantized_folder, dtype_name, stop_token_ids
from workbench.steering import OPERATORS, Steer

ROW_KEY = "workbench_row"  # the SamplingParams.extra_args key holding a request's prompt index
EXTENSION = "workbench.vllm_engine.SteeringWorker"


def import_vllm():
    """vLLM, or a one-line error saying how to install it."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # vLLM's INFO lines would bury the workbench's progress log
    try:
        import vllm

        if getattr(vllm, "__file__", None) is None:  # a folder named vllm on sys.path (a checkout, say) is not vLLM
            raise ImportError("no module named 'vllm' (only a namespace package)")
    except Exception as exc:  # ImportError, or a broken install (a CUDA torchvision beside a CPU torch)
        raise WorkbenchError(
            f"vLLM is not usable here ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): run `make vllm`"
        ) from None
    return vllm


class WorkerSteering:
    """Inside one vLLM worker: the hooks on the decoder layers and the tables they read."""

    def __init__(self, runner):
        if not all(hasattr(runner, a) for a in ("input_batch", "requests", "query_start_loc")):
            raise RuntimeError(
                f"workbench steering needs vLLM's V1 model runner, not {type(runner).__name__}: set VLLM_USE_V2_MODEL_RUNNER=0"
            )
        model = runner.get_model()
        layers = getattr(getattr(model, "model", None), "layers", None)
        if layers is None:
            raise RuntimeError(
                f"{type(model).__name__} has no model.layers: workbench steering cannot find its decoder layers"
            )
        first = next(model.parameters())
        self.runner, self.device, self.dtype = runner, first.device, first.dtype
        self.specs: dict[int, list[tuple]] = {}  # layer -> [(unit direction, coefficient per prompt, mode, positions)]
        self.probes: dict[int, list[tuple]] = {}  # layer -> [(probe index, unit direction)]
        self.probed: list[torch.Tensor] = []  # per probe: the last prompt token's projection, per prompt
        self.tokens: tuple | None = None  # this step's (prompt index, is prompt, is last prompt token) per token
        layers[0].register_forward_pre_hook(self._map_tokens, with_kwargs=True)
        for i, layer in enumerate(layers):
            layer.register_forward_hook(self._hook(i, final=i == len(layers) - 1))

    def load(self, specs: list[dict], probes: list[dict], n_prompts: int) -> None:
        """Replace the tables (lists of floats: they cross process borders as plain data)."""

        def tensor(values, dtype):
            return torch.tensor(values, dtype=dtype, device=self.device)

        self.specs, self.probes = {}, {}
        for s in specs:
            self.specs.setdefault(s["layer"], []).append(
                (tensor(s["unit"], self.dtype), tensor(s["coefficients"], self.dtype), s["mode"], s["positions"])
            )
        for i, p in enumerate(probes):
            self.probes.setdefault(p["layer"], []).append((i, tensor(p["unit"], torch.float32)))
        self.probed = [torch.full((n_prompts,), float("nan")) for _ in probes]
        self.broken = torch.zeros(
            (), dtype=torch.bool, device=self.device
        )  # set (without a sync) when steering makes a non-finite value

    def _map_tokens(self, module, args, kwargs):
        if not self.specs and not self.probes:
            return None
        positions = args[0] if args else kwargs["positions"]  # a decoder layer's first argument
        batch, n = self.runner.input_batch, self.runner.input_batch.num_reqs
        starts = torch.as_tensor(self.runner.query_start_loc.np[: n + 1], dtype=torch.long)
        rows, lengths = [], []
        for req_id in batch.req_ids[:n]:
            req = self.runner.requests[req_id]
            extra = (req.sampling_params.extra_args or {}) if req.sampling_params is not None else {}
            rows.append(int(extra.get(ROW_KEY, -1)))  # -1: not ours, never steered
            lengths.append(req.num_prompt_tokens)
        counts, pad = starts.diff(), positions.shape[0] - int(starts[-1])  # pad: tokens past the last request
        row = torch.cat([torch.tensor(rows, dtype=torch.long).repeat_interleave(counts), torch.full((pad,), -1)]).to(
            self.device
        )
        length = torch.cat(
            [torch.tensor(lengths, dtype=torch.long).repeat_interleave(counts), torch.zeros(pad, dtype=torch.long)]
        ).to(self.device)
        self.tokens = (row, positions < length, (positions == length - 1) & (row >= 0))
        return None

    def _hook(self, layer: int, final: bool):
        def hook(module, args, output):
            specs, probes = self.specs.get(layer), self.probes.get(layer)
            if final and self.specs and not specs:  # steered somewhere: the stream must still be finite at the end
                hidden, residual = output if isinstance(output, tuple) else (output, None)
                self.broken.logical_or_(~torch.isfinite(hidden if residual is None else hidden + residual).all())
            if not specs and not probes:
                return None
            hidden, residual = output if isinstance(output, tuple) else (output, None)
            x = hidden if residual is None else hidden + residual  # the residual stream after this layer
            row, prompt, last = self.tokens
            for index, u in probes or ():
                self.probed[index][row[last].cpu()] = (x[last].float() @ u).cpu()
            if not specs:
                return None
            for u, coefficients, mode, positions in specs:  # in order: they compose
                c = coefficients[row.clamp(min=0)]
                on = (row >= 0) & ~torch.isnan(c)
                on = on & prompt if positions == "prompt" else on & ~prompt if positions == "generated" else on
                x = x + OPERATORS[mode](x[:, None], u, torch.where(on, c, torch.zeros_like(c)))[:, 0] * on[:, None]
            self.broken.logical_or_(~torch.isfinite(x).all())
            # the steered stream as the hidden part, a zero residual: the next layer's sum is exactly x
            return x if residual is None else (x, torch.zeros_like(residual))

        return hook


class SteeringWorker:
    """vLLM worker extension (``worker_extension_cls``): mixed into each worker, called through
    ``LLM.collective_rpc`` by name, so it works in process and across processes alike."""

    def workbench_load(self, specs: list[dict], probes: list[dict], n_prompts: int) -> None:
        if getattr(self, "workbench_steering", None) is None:
            self.workbench_steering = WorkerSteering(self.model_runner)
        self.workbench_steering.load(specs, probes, n_prompts)

    def workbench_probed(self) -> list[list[float]]:
        return [p.tolist() for p in self.workbench_steering.probed]

    def workbench_broken(self) -> bool:
        """Whether steering made a NaN or infinite activation since the tables were loaded."""
        return bool(self.workbench_steering.broken)


class VLLMEngine(Tokenized):
    """A model loaded once in vLLM; ``generate`` as ``workbench.generate.generate`` with steering.

    ``model``: an embedded model's name (its cached float32 HF folder, the one ``workbench
    export-model`` copies), a HF folder or a hub id. ``in_process``: the engine core in this process
    (``VLLM_ENABLE_V1_MULTIPROCESSING=0``: no spawned process, no ``__main__`` guard needed); the
    steering works either way. Other keywords go to ``vllm.LLM`` (e.g. ``tensor_parallel_size``).
    """

    def __init__(
        self,
        model: str,
        dtype: str = "float32",
        gpu_memory_utilization: float = 0.25,
        max_model_len: int | None = None,
        in_process: bool = True,
        **llm_kwargs,
    ):
        vllm = import_vllm()
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        for key, refused in (("enforce_eager", False), ("enable_prefix_caching", True)):
            if llm_kwargs.pop(key, not refused) == refused:
                raise WorkbenchError(
                    f"{key}={refused} is refused: steering needs eager layers and no prefix cache (see workbench.vllm_engine)"
                )
        if llm_kwargs.get("pipeline_parallel_size", 1) != 1:
            raise WorkbenchError("steering in vLLM runs on one pipeline stage: use tensor_parallel_size instead")
        self.name = model
        folder = str(dequantized_folder(model)) if model in EMBEDDED else model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            config = AutoConfig.from_pretrained(folder)
        except OSError as exc:
            raise WorkbenchError(
                f"cannot load {model!r} for vLLM: give an embedded model's name, a HF folder or a hub id ({str(exc).splitlines()[0]})"
            ) from None
        try:
            generation = GenerationConfig.from_pretrained(folder)
        except OSError:
            generation = None
        text = getattr(config, "text_config", config)
        self.n_layers, self.d_model = text.num_hidden_layers, text.hidden_size
        self.stop_token_ids = stop_token_ids(self.tokenizer, generation)
        os.environ["VLLM_USE_V2_MODEL_RUNNER"] = "0"  # the token map reads the V1 runner's batch
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if in_process else "1"
        self.llm = vllm.LLM(
            model=folder,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enforce_eager=True,
            enable_prefix_caching=False,
            worker_extension_cls=EXTENSION,
            **llm_kwargs,
        )
        self.n_ctx = self.llm.llm_engine.model_config.max_model_len
        self._load([], [], 0)  # installs the hooks now, so a broken set-up fails here, not mid-sweep

    def __repr__(self) -> str:
        return f"VLLMEngine({self.name!r}: {self.n_layers} layers × d_model {self.d_model}, vLLM, eager)"

    def _load(self, specs: list[dict], probes: list[dict], n_prompts: int) -> None:
        self.llm.collective_rpc("workbench_load", args=(specs, probes, n_prompts))

    def _check(self, spec: Steer, n_prompts: int) -> None:
        if not isinstance(spec, Steer):
            raise WorkbenchError(f"steer takes workbench.steering.Steer specs, got {type(spec).__name__}")
        if not isinstance(spec.layer, int) or not 0 <= spec.layer < self.n_layers:
            raise WorkbenchError(f"layer {spec.layer!r} is out of range for {self.name}: use 0..{self.n_layers - 1}")
        if spec.direction.shape[0] != self.d_model:
            raise WorkbenchError(
                f"steering vector has width {spec.direction.shape[0]} but {self.name} has d_model={self.d_model}: compute the vector on this model"
            )
        c = torch.as_tensor(spec.coefficient)
        if c.ndim == 1 and c.shape[0] < n_prompts:
            raise WorkbenchError(f"per-prompt coefficients have {c.shape[0]} values for {n_prompts} prompts")

    def _run(self, seqs: list[list[int]], params: list, progress: bool = False) -> list:
        from vllm.inputs import TokensPrompt

        return self.llm.generate([TokensPrompt(prompt_token_ids=s) for s in seqs], params, use_tqdm=progress)

    def _gates(self, seqs: list[list[int]], specs: list[Steer]) -> dict:
        """The detection pass of conditional steering (as ``workbench.detection.detect``): per condition,
        whether each prompt's last token's unsteered projection is below the threshold."""
        from vllm import SamplingParams

        conditions = list({s.when.key(): s.when for s in specs if s.when is not None}.values())
        if not conditions:
            return {}
        probes = [{"layer": c.layer, "unit": (c.direction / c.direction.norm()).float().tolist()} for c in conditions]
        self._load([], probes, len(seqs))
        try:
            self._run(
                seqs,
                [
                    SamplingParams(temperature=0.0, max_tokens=1, detokenize=False, extra_args={ROW_KEY: i})
                    for i in range(len(seqs))
                ],
            )
            probed = self.llm.collective_rpc("workbench_probed")[0]
        finally:
            self._load([], [], 0)
        return {c.key(): torch.tensor(p) < c.threshold for c, p in zip(conditions, probed)}

    def generate(
        self,
        prompts: Sequence[str],
        steer: Steer | Sequence[Steer] = (),
        max_new_tokens: int = 64,
        chat: bool = True,
        stop_at_eos: bool = True,
        do_sample: bool = False,
        temperature: float = 1.0,
        seed: int = 0,
        progress: bool = False,
    ) -> list[Generation]:
        """A reply to each prompt, all in one vLLM batch, each request steered with its own
        coefficients; greedy replies equal ``workbench.generate.generate``'s (sampled ones draw
        from vLLM's own generator, seeded ``seed`` + the prompt's index)."""
        from vllm import SamplingParams

        if not prompts:
            raise WorkbenchError("no prompts given: pass at least one prompt")
        if max_new_tokens < 1:
            raise WorkbenchError(f"max_new_tokens must be ≥ 1, got {max_new_tokens}")
        seqs = [self.encode(self.chat(p) if chat else p) for p in prompts]
        if any(len(s) == 0 for s in seqs):
            raise WorkbenchError("an empty prompt has no tokens: remove it or use chat=True")
        if (longest := max(map(len, seqs))) + max_new_tokens > self.n_ctx:
            raise WorkbenchError(
                f"a prompt of {longest} tokens plus {max_new_tokens} new tokens exceeds {self.name}'s context of {self.n_ctx} in vLLM: "
                "shorten it or lower max_new_tokens"
            )
        specs = [steer] if isinstance(steer, Steer) else list(steer)
        for spec in specs:
            self._check(spec, len(seqs))
        gates = self._gates(seqs, specs)
        tables = []
        for spec in specs:
            c = torch.as_tensor(spec.coefficient, dtype=torch.float32)
            c = c.expand(len(seqs)).clone() if c.ndim == 0 else c[: len(seqs)].clone()
            if spec.when is not None:
                c[~gates[spec.when.key()]] = float("nan")
            tables.append(
                {
                    "layer": spec.layer,
                    "unit": (spec.direction / spec.direction.norm()).float().tolist(),
                    "coefficients": c.tolist(),
                    "mode": spec.mode,
                    "positions": spec.positions,
                }
            )
        stops = self.stop_token_ids if stop_at_eos else []
        params = [
            SamplingParams(
                temperature=temperature if do_sample else 0.0,
                seed=seed + i if do_sample else None,
                max_tokens=max_new_tokens,
                stop_token_ids=stops,
                ignore_eos=not stop_at_eos,
                detokenize=False,
                extra_args={ROW_KEY: i},
            )
            for i in range(len(seqs))
        ]
        self._load(tables, [], len(seqs))
        try:
            outputs = self._run(seqs, params, progress)
            if tables and any(
                self.llm.collective_rpc("workbench_broken")
            ):  # as the workbench's engine refuses NaN/inf logits
                raise WorkbenchError(
                    "steering made NaN or infinite activations in vLLM (a coefficient too large for this precision): lower it"
                )
        finally:
            self._load([], [], 0)  # a later call without steering is not steered
        results = []
        for prompt, out in zip(prompts, outputs):
            tokens, stopped = list(out.outputs[0].token_ids), out.outputs[0].finish_reason == "stop"
            if stopped and tokens and tokens[-1] in stops:
                tokens.pop()
            results.append(Generation(prompt, self.decode(tokens), tuple(tokens), stopped))
        return results


def use_vllm(model: Model, **options) -> Model:
    """Hand ``model``'s generation to vLLM: every ``workbench.generate`` call on it (steer, sweeps,
    evaluate, the demo) then generates in one ``VLLMEngine`` of the same weights and precision, with
    the same steering; vectors, detection and quality scores stay on the workbench engine. ``options``
    go to ``VLLMEngine`` (e.g. ``gpu_memory_utilization``). Returns the model."""
    if model.name.endswith(".gguf"):
        raise WorkbenchError(
            f"vLLM reads an embedded model's name, a HF folder or a hub id, not a .gguf file ({model.name})"
        )
    engine = VLLMEngine(model.name, dtype=dtype_name(model.dtype), **options)
    if (engine.n_layers, engine.d_model) != (model.n_layers, model.d_model):
        raise WorkbenchError(
            f"vLLM loaded {engine.n_layers} layers × {engine.d_model} for {model.name}, the workbench {model.n_layers} × {model.d_model}"
        )
    model.backend = engine
    return model
