# Two commands do all the set-up:  make lab  (open the course)  and  make test  (check everything).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
KERNEL := mlsec-lessons
# Jupyter refuses to run as root unless told; students are not root, CI containers are.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
FAST   := -m "not slow"
NBVAL  := --nbval-lax --nbval-current-env --nbval-cell-timeout=180 --timeout=900
# make test runs on JOBS cores (pytest-xdist; at most 4: each worker holds a TensorFlow). --dist loadscope
# keeps a notebook's cells, and a test file's tests, in one worker and in order.
JOBS   ?= $(shell python3 -c "import os; print(min(4, len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1))" 2>/dev/null || echo 2)
PARALLEL := -n $(JOBS) --dist loadscope --no-loadscope-reorder

.PHONY: lab test test-fast course stubs kernel lock bench llm-weights federated clean help sandbox-tools browser-tools

help:
	@echo "make lab        create .venv if needed and open the course in JupyterLab"
	@echo "make test       create or update .venv, then lint (ruff) and run every test and notebook"
	@echo "make test-fast  lint, then the tests not marked slow (no notebooks): a few minutes"
	@echo "make course     execute every notebook and render it to HTML in build/"
	@echo "make stubs      regenerate exercises/*.py from solutions/*.py"
	@echo "make bench      run the benchmarks and write benchmarks/results/"
	@echo "make llm-weights  retrain and sign lesson 13's shipped language models (LLM_WEIGHTS=\"assistant\")"
	@echo "make federated  lesson 06's FedAvg on a real Flower SuperLink and SuperNodes (FED_ARGS=\"--clients 10\")"

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# Re-install whenever the pins change; the lock file constrains every transitive package. uv (pinned in the
# lock, as Flower needs it anyway) installs the same set as pip, from the same PyPI, in less time: on a 2-core
# machine with no package cache, 44 s instead of pip's 107 s. --compile-bytecode, as pip does: the grader's
# processes (and some machines, CI's among them) set PYTHONDONTWRITEBYTECODE, and without the .pyc files every
# import of TensorFlow and Keras costs 15 s of CPU instead of 5.
UV_PIN := $(shell grep -m1 '^uv==' requirements.lock)
$(STAMP): pyproject.toml requirements.lock | $(PY)
	$(PY) -m pip install --quiet --upgrade "pip>=24" "$(UV_PIN)"
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -c requirements.lock -e ".[dev]"
	$(PY) -m pip check
	@touch $(STAMP)

kernel: $(STAMP)
	$(PY) -m ipykernel install --user --name $(KERNEL) --display-name "Python (mlsec-lessons)" >/dev/null

# .venv/bin goes first on PATH so that `mlsec` works in JupyterLab's terminals too.
lab: kernel
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir="$(CURDIR)" --ServerApp.preferred_dir="$(CURDIR)/notebooks" $(LAB_ARGS)

# The grader's --sandbox needs bubblewrap (Debian: bubblewrap). As root with apt (CI containers) it is
# installed here; elsewhere the sandbox tests say how to get it and are skipped.
sandbox-tools:
	@if ! command -v bwrap >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
			{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1; }; \
		fi; \
		command -v bwrap >/dev/null 2>&1 || \
			echo "bubblewrap is not installed: the grader's --sandbox tests are skipped (Debian: apt-get install bubblewrap)"; \
	fi

# tests/test_browser.py drives Debian's chromium through chromium-driver. As root with apt (CI containers) they
# are installed here; elsewhere the browser tests say how to get them and are skipped.
BROWSER_OK := command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1
browser-tools:
	@if ! { $(BROWSER_OK); }; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
			{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; }; \
		fi; \
		$(BROWSER_OK) || \
			echo "chromium or chromedriver is not installed: the browser tests are skipped (Debian: apt-get install chromium chromium-driver)"; \
	fi

# --dist loadscope --no-loadscope-reorder hands the scopes (a test file, a notebook) out in collection order, and
# conftest.py orders them longest first, as last measured (benchmarks/results/tests.json): the short test files
# fill the workers' last minutes instead of a lesson. (xdist's own reorder, by number of tests, put long lessons
# of few cells last.)
test: $(STAMP) sandbox-tools browser-tools
	$(VENV)/bin/ruff check .
	$(PY) -m pytest notebooks exercises tests $(NBVAL) $(PARALLEL) $(PYTEST_ARGS)

# test-fast: lint, then every test not marked slow (see [tool.pytest.ini_options] markers), on the same workers;
# test runs them all
test-fast: $(STAMP) sandbox-tools
	$(VENV)/bin/ruff check .
	$(PY) -m pytest tests $(FAST) $(PARALLEL) $(PYTEST_ARGS)

course: kernel
	mkdir -p build
	$(VENV)/bin/jupyter nbconvert --to html --execute --ExecutePreprocessor.kernel_name=$(KERNEL) \
		--ExecutePreprocessor.timeout=300 --output-dir build notebooks/*.ipynb exercises/*.ipynb

stubs: $(STAMP)
	$(VENV)/bin/mlsec stubs

bench: $(STAMP)
	$(PY) benchmarks/run.py

# Retrain lesson 13's shipped language models from their seeds and sign them (a few minutes each). The key is
# $$MLSEC_WEIGHTS_KEY, or a new pair whose public half replaces mlsec_lessons/llm/weights/release.pub.pem.
llm-weights: $(STAMP)
	$(PY) -m mlsec_lessons.llm.weights $(LLM_WEIGHTS)

# A real Flower deployment on 127.0.0.1: one SuperLink, one SuperNode process per client, `flwr run`.
federated: $(STAMP)
	$(VENV)/bin/mlsec federated $(FED_ARGS)

# Re-resolve the whole stack from the pins in pyproject.toml (needs a network; run rarely).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet --upgrade "pip>=24" && .lockvenv/bin/pip install --quiet -e ".[dev]"
	{ sed -n 1,2p requirements.lock; .lockvenv/bin/pip freeze --exclude-editable | grep -v '^mlsec'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lockvenv

clean:
	rm -rf build .pytest_cache
