# Two commands on a fresh machine with only Python: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
STORE  := sqlite:///$(CURDIR)/mlflow.db
DEMO_NB := notebooks/01-quickstart.ipynb

.PHONY: demo test lint format bench chromium clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# The demo needs nbtrack and scikit-learn (its data set ships inside the package).
$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PIP) install -e ".[examples]"
	touch $@

# Tests need everything: widgets, test tools, JupyterLab, torch for the training notebooks.
$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PIP) install -e ".[dev,torch]"
	touch $@ $(VENV)/.demo-installed

# Browser tests drive Debian's chromium (playwright's own browser download does not work here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (apt) for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: $(VENV)/.demo-installed
	@mkdir -p build/demo
	NBTRACK_TRACKING_URI=$(STORE) \
	  $(VENV)/bin/papermill --cwd notebooks --no-progress-bar $(DEMO_NB) build/demo/01-quickstart.ipynb
	@echo
	@echo "Done. The runs are in $(STORE) (artifacts in $(CURDIR)/mlruns)."
	@echo "Executed notebook: build/demo/01-quickstart.ipynb"
	@echo "Browse them:  $(VENV)/bin/mlflow ui --backend-store-uri $(STORE)   then open http://127.0.0.1:5000"

test: $(VENV)/.dev-installed chromium
	$(PY) -m pytest -q --durations=25
	NBTRACK_TRACKING_URI=sqlite:///$(CURDIR)/build/nbval/mlflow.db $(PY) -m pytest -q --nbval notebooks \
	  --nbval-sanitize-with nbtrack/nbval_sanitize.cfg -p no:cacheprovider

lint:
	$(VENV)/bin/ruff check nbtrack tests benchmarks
	$(VENV)/bin/ruff format --check nbtrack tests benchmarks
	$(VENV)/bin/lint-imports

format:
	$(VENV)/bin/ruff format nbtrack tests benchmarks
	$(VENV)/bin/ruff check --fix nbtrack tests benchmarks

bench: $(VENV)/.dev-installed
	$(PY) benchmarks/bench_cell.py

clean:
	rm -rf build mlflow.db mlruns artifacts
