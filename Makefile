# Two commands on a fresh machine: `make demo` runs the churn workflow, `make test` runs the tests.
# Each builds the virtual environment it needs in .venv the first time.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test lint docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The demo needs only the base install and CPU XGBoost.
$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PIP) -e '.[xgboost]'
	touch $@

# Tests need every extra. torch is pinned first so pip never picks a multi-GB CUDA build.
$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[all,test]'
	touch $@

demo: $(VENV)/.demo-installed
	$(VENV)/bin/mmeperf demo churn

# The triton endpoint's tests run against a real tritonserver (bundled by nvidia-pytriton in its
# own venv); if that venv cannot be built they skip, saying how to enable them.
test: $(VENV)/.test-installed
	eval "$$(scripts/triton-venv.sh .venv-triton || echo 'echo triton tests will be skipped >&2')"; \
	$(PY) -m pytest -q

lint: $(VENV)/.test-installed
	$(PIP) -e '.[all,dev]'
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

# The documentation site, API reference from the docstrings; fails on a broken link or reference.
docs: $(VENV)/.test-installed
	$(PIP) -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "site built: open site/index.html"

clean:
	rm -rf $(VENV) .venv-triton mmeperf-out site
