"""Generation through vLLM with the workbench's steering: same specs, same tokens (issue 28).

``Steer`` specs mean here what they mean in ``workbench.generation.generate``: the operators of
``steering.OPERATORS`` applied to the residual stream after a decoder layer (TransformerLens's
``blocks.L.hook_resid_post``: a vLLM decoder layer returns ``(hidden, residual)``, whose sum it is),
composed in order, on all, prompt or generated positions, with per-prompt coefficients (NaN:
unsteered) and conditional steering (``when``: decided by an unsteered detection pass, as there).
Vector extraction stays on the workbench engine: vectors are computed there and steered here.

How one vLLM batch steers each request its own way: every request carries its prompt index in
``SamplingParams.extra_args``; vLLM's worker (``workbench.engines.vllm.worker``) maps each token of the
flattened batch to its request before every forward and steers it from fixed tensors, so the same
hooks run eagerly (``enforce_eager=True``, the default here) or compiled (``enforce_eager=False``,
vLLM's torch.compile, and CUDA graphs on a GPU) for operators with an affine form.

Limits: the V1 model runner (``VLLM_USE_V2_MODEL_RUNNER=0`` is set), no prefix caching (a cached
prompt would carry another request's steering), one pipeline stage, a CPU or CUDA worker; compiled,
at most ``slots`` interventions per layer and affine operators only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import fields, replace

import torch

from workbench.engines.vllm.options import VLLMOptions, import_vllm, memory_refusal
from workbench.engines.vllm.worker import ROW_KEY, SLOTS_KEY, WORKERS
from workbench.errors import WorkbenchError
from workbench.generation.compiled import AFFINE
from workbench.generation.generate import Generation, GenerationOptions
from workbench.generation.steering import Steer
from workbench.models import EMBEDDED, Model, Tokenized, dequantized_folder, dtype_name, stop_token_ids


class VLLMEngine(Tokenized):
    """A model loaded once in vLLM; ``generate`` as ``workbench.generation.generate.generate`` with steering.

    ``model``: an embedded model's name (its cached float32 HF folder, the one ``workbench
    export-model`` copies), a HF folder or a hub id. ``options`` (or their fields as keywords): how it
    loads; other keywords go to ``vllm.LLM`` (e.g. ``tensor_parallel_size``).
    """

    def __init__(self, model: str, options: VLLMOptions | None = None, **overrides):
        vllm = import_vllm()
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        own = {f.name for f in fields(VLLMOptions)}
        self.options = opts = replace(options or VLLMOptions(), **{k: v for k, v in overrides.items() if k in own})
        llm_kwargs = {k: v for k, v in overrides.items() if k not in own}
        if llm_kwargs.pop("enable_prefix_caching", False):
            raise WorkbenchError(
                "enable_prefix_caching=True is refused: steering needs no prefix cache (a cached prompt would carry "
                "another request's steering)"
            )
        if llm_kwargs.get("pipeline_parallel_size", 1) != 1:
            raise WorkbenchError("steering in vLLM runs on one pipeline stage: use tensor_parallel_size instead")
        from vllm.platforms import current_platform

        if (device := current_platform.device_type) not in WORKERS:
            raise WorkbenchError(f"steering in vLLM runs on a CPU or CUDA worker, not {device!r}")
        self.name = model
        folder = str(dequantized_folder(model)) if model in EMBEDDED else model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            config = AutoConfig.from_pretrained(folder)
        except OSError as exc:
            raise WorkbenchError(
                f"cannot load {model!r} for vLLM: give an embedded model's name, a HF folder or a hub id "
                f"({str(exc).splitlines()[0]})"
            ) from None
        try:
            generation = GenerationConfig.from_pretrained(folder)
        except OSError:
            generation = None
        text = getattr(config, "text_config", config)
        self.n_layers, self.d_model = text.num_hidden_layers, text.hidden_size
        self.stop_token_ids = stop_token_ids(self.tokenizer, generation)
        os.environ["VLLM_USE_V2_MODEL_RUNNER"] = "0"  # the token map reads the V1 runner's batch
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if opts.in_process else "1"
        # vLLM's saved AOT artifacts are keyed without the steering hooks traced into the graph: trace them anew
        os.environ["VLLM_USE_AOT_COMPILE"] = "0"
        try:
            self.llm = vllm.LLM(
                model=folder,
                dtype=opts.dtype,
                gpu_memory_utilization=opts.gpu_memory_utilization,
                max_model_len=opts.max_model_len,
                enforce_eager=opts.enforce_eager,
                enable_prefix_caching=False,
                worker_cls=f"workbench.engines.vllm.worker.{device.capitalize()}SteeringWorker",
                additional_config={SLOTS_KEY: opts.slots},
                **llm_kwargs,
            )
        except ValueError as exc:  # vLLM's refusals of a memory setting come as ValueErrors
            if (refusal := memory_refusal(exc, opts)) is None:
                raise
            raise refusal from None
        self.n_ctx = self.llm.llm_engine.model_config.max_model_len
        self._load([], [], 0)  # reaches the worker's steering now, so a broken set-up fails here, not mid-sweep

    def __repr__(self) -> str:
        how = "eager" if self.options.enforce_eager else "compiled"
        return f"VLLMEngine({self.name!r}: {self.n_layers} layers × d_model {self.d_model}, vLLM, {how})"

    def _load(self, tables: list[dict], probes: list[dict], n_prompts: int) -> None:
        self.llm.collective_rpc("workbench_load", args=(tables, probes, n_prompts))

    def _check(self, specs: list[Steer], n_prompts: int) -> None:
        """Bad specs as one line, before any work."""
        for spec in specs:
            if not isinstance(spec, Steer):
                raise WorkbenchError(f"steer takes workbench.Steer specs, got {type(spec).__name__}")
            if not isinstance(spec.layer, int) or not 0 <= spec.layer < self.n_layers:
                raise WorkbenchError(
                    f"layer {spec.layer!r} is out of range for {self.name}: use 0..{self.n_layers - 1}"
                )
            if spec.direction.shape[0] != self.d_model:
                raise WorkbenchError(
                    f"steering vector has width {spec.direction.shape[0]} but {self.name} has "
                    f"d_model={self.d_model}: compute the vector on this model"
                )
            c = torch.as_tensor(spec.coefficient)
            if c.ndim == 1 and c.shape[0] < n_prompts:
                raise WorkbenchError(f"per-prompt coefficients have {c.shape[0]} values for {n_prompts} prompts")
        if self.options.enforce_eager:
            return
        if unknown := [s.mode for s in specs if s.mode not in AFFINE]:
            raise WorkbenchError(
                f"operator {unknown[0]!r} has no affine form, which vLLM's compiled graph needs: "
                "use VLLMEngine(..., enforce_eager=True)"
            )
        for layer in {s.layer for s in specs}:
            if (k := sum(s.layer == layer for s in specs)) > self.options.slots:
                raise WorkbenchError(
                    f"{k} interventions at layer {layer} exceed this compiled vLLM engine's "
                    f"{self.options.slots} slots: load it with slots={k}"
                )

    def _run(self, seqs: list[list[int]], params: list, progress: bool = False) -> list:
        from vllm.inputs import TokensPrompt

        return self.llm.generate([TokensPrompt(prompt_token_ids=s) for s in seqs], params, use_tqdm=progress)

    def _gates(self, seqs: list[list[int]], specs: list[Steer]) -> dict:
        """The detection pass of conditional steering (as ``workbench.generation.detection.detect``): per condition,
        whether each prompt's last token's unsteered projection is below the threshold."""
        from vllm import SamplingParams

        conditions = list({s.when.key(): s.when for s in specs if s.when is not None}.values())
        if not conditions:
            return {}
        probes = [{"layer": c.layer, "unit": (c.direction / c.direction.norm()).float().tolist()} for c in conditions]
        self._load([], probes, len(seqs))
        try:
            one = [
                SamplingParams(temperature=0.0, max_tokens=1, detokenize=False, extra_args={ROW_KEY: i})
                for i in range(len(seqs))
            ]
            self._run(seqs, one)
            probed = self.llm.collective_rpc("workbench_probed")[0]
        finally:
            self._load([], [], 0)
        return {c.key(): torch.tensor(p) < c.threshold for c, p in zip(conditions, probed)}

    def _encode(self, prompts: Sequence[str], opts: GenerationOptions) -> list[list[int]]:
        if not prompts:
            raise WorkbenchError("no prompts given: pass at least one prompt")
        seqs = [self.encode(self.chat(p) if opts.chat else p) for p in prompts]
        if any(len(s) == 0 for s in seqs):
            raise WorkbenchError("an empty prompt has no tokens: remove it or use chat=True")
        if (longest := max(map(len, seqs))) + opts.max_new_tokens > self.n_ctx:
            raise WorkbenchError(
                f"a prompt of {longest} tokens plus {opts.max_new_tokens} new tokens exceeds {self.name}'s context "
                f"of {self.n_ctx} in vLLM: shorten it, lower max_new_tokens or raise max_model_len (--vllm-max-len)"
            )
        return seqs

    def _tables(self, specs: list[Steer], gates: dict, n_prompts: int) -> list[dict]:
        """Each spec as plain data for the worker: its unit direction, a coefficient per prompt (NaN:
        unsteered, as are the prompts its condition leaves out), positions and operator."""
        tables = []
        for spec in specs:
            c = torch.as_tensor(spec.coefficient, dtype=torch.float32)
            c = c.expand(n_prompts).clone() if c.ndim == 0 else c[:n_prompts].clone()
            if spec.when is not None:
                c[~gates[spec.when.key()]] = float("nan")
            tables.append(
                {
                    "layer": spec.layer,
                    "unit": (spec.direction / spec.direction.norm()).float().tolist(),
                    "coefficients": c.tolist(),
                    "positions": spec.positions,
                    "mode": spec.mode,
                    "affine": AFFINE.get(spec.mode),
                }
            )
        return tables

    def generate(
        self,
        prompts: Sequence[str],
        steer: Steer | Sequence[Steer] = (),
        options: GenerationOptions | None = None,
        **overrides,
    ) -> list[Generation]:
        """A reply to each prompt, all in one vLLM batch, each request steered with its own
        coefficients; greedy replies equal ``workbench.generation.generate.generate``'s (sampled ones draw
        from vLLM's own generator, seeded ``seed`` + the prompt's index). ``options`` or their fields
        as keywords, as there; ``batch_size``, ``use_cache``, ``compile`` and ``on_step`` are vLLM's."""
        from vllm import SamplingParams

        opts = replace(options or GenerationOptions(), **overrides)
        seqs = self._encode(prompts, opts)
        specs = [steer] if isinstance(steer, Steer) else list(steer)
        self._check(specs, len(seqs))
        tables = self._tables(specs, self._gates(seqs, specs), len(seqs))
        stops = self.stop_token_ids if opts.stop_at_eos else []
        params = [
            SamplingParams(
                temperature=opts.temperature if opts.do_sample else 0.0,
                seed=opts.seed + i if opts.do_sample else None,
                max_tokens=opts.max_new_tokens,
                stop_token_ids=stops,
                ignore_eos=not opts.stop_at_eos,
                detokenize=False,
                extra_args={ROW_KEY: i},
            )
            for i in range(len(seqs))
        ]
        self._load(tables, [], len(seqs))
        try:
            outputs = self._run(seqs, params, opts.progress)
            if tables and any(self.llm.collective_rpc("workbench_broken")):  # as the workbench refuses NaN/inf logits
                raise WorkbenchError(
                    "steering made NaN or infinite activations in vLLM (a coefficient too large for this precision): "
                    "lower it"
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
    """Hand ``model``'s generation to vLLM: every ``workbench.generation.generate`` call on it (steer, sweeps,
    evaluate, the demo) then generates in one ``VLLMEngine`` of the same weights and precision, with
    the same steering; vectors, detection and quality scores stay on the workbench engine. ``options``
    go to ``VLLMEngine`` (e.g. ``gpu_memory_utilization``, ``enforce_eager=False``). Returns the model."""
    if model.name.endswith(".gguf"):
        raise WorkbenchError(
            f"vLLM reads an embedded model's name, a HF folder or a hub id, not a .gguf file ({model.name})"
        )
    engine = VLLMEngine(model.name, dtype=dtype_name(model.dtype), **options)
    if (engine.n_layers, engine.d_model) != (model.n_layers, model.d_model):
        raise WorkbenchError(
            f"vLLM loaded {engine.n_layers} layers × {engine.d_model} for {model.name}, "
            f"the workbench {model.n_layers} × {model.d_model}"
        )
    model.backend = engine
    return model
