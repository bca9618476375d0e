# The book's commands. `make book` and `make test` are the two a new user needs.
PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
PROFILE  ?= tiny
PARAMS   ?=
CHAPTERS := 00_task 01_identical_paths 02_accuracy_vs_circuit 03_limited_transfer 04_cost
EXECUTED := chapters
BOOKFLAGS ?= --warningiserror --keep-going

.PHONY: setup book chapter execute html test test-fast golden runs bench clean

setup: $(VENV)/.installed

# The pip section of environment.yml, installed into .venv (conda is not needed).
$(VENV)/.installed: environment.yml pyproject.toml
	$(PYTHON) -m venv $(VENV)
	sed -n '/- pip:/,$$p' environment.yml | tail -n +2 | grep -E '^ +- ' | sed -E 's/^ +- //; s/ +#.*//' > $(VENV)/requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r $(VENV)/requirements.txt
	touch $@

# Execute every chapter with papermill at PROFILE, then build the HTML book.
book: setup
	@for ch in $(CHAPTERS); do $(MAKE) --no-print-directory execute CH=$$ch || exit 1; done
	$(MAKE) --no-print-directory html

# Re-execute one chapter with parameter overrides, then rebuild the HTML:
#   make chapter CH=02_accuracy_vs_circuit PARAMS="-p seeds '[0,1,2]'"
chapter: setup
	@test -n "$(CH)" || (echo "CH is required; one of: $(CHAPTERS)" && exit 2)
	$(MAKE) --no-print-directory execute CH=$(CH)
	$(MAKE) --no-print-directory html

execute:
	@echo "$(CHAPTERS)" | tr ' ' '\n' | grep -qx "$(CH)" || (echo "CH=$(CH) is not a chapter; allowed values: $(CHAPTERS)" && exit 2)
	@mkdir -p build/src $(EXECUTED)
	$(BIN)/jupytext --quiet --to ipynb -o build/src/$(CH).ipynb book/$(CH).py
	$(BIN)/papermill --log-level WARNING build/src/$(CH).ipynb $(EXECUTED)/$(CH).ipynb -p profile $(PROFILE) $(PARAMS)

html:
	$(BIN)/jupyter-book build . $(BOOKFLAGS)
	@echo "Open _build/html/index.html in a browser."

# Unit tests (slow tier included) and nbval over the golden notebooks, in a fresh results store.
test: setup
	$(BIN)/python -m pytest --runslow --nbval-lax tests

test-fast: setup
	$(BIN)/python -m pytest tests

# Re-make the golden notebooks (tiny profile, seeded, fresh results store) that nbval checks.
golden: setup
	@mkdir -p build/src tests/golden
	@store=$$(mktemp -d); for ch in $(CHAPTERS); do \
	  $(BIN)/jupytext --quiet --to ipynb -o build/src/$$ch.ipynb book/$$ch.py && \
	  GROKCIRCUITS_RESULTS=$$store $(BIN)/papermill --log-level WARNING build/src/$$ch.ipynb tests/golden/$$ch.ipynb -p profile tiny || exit 1; \
	done; rm -rf $$store

# On a GPU machine, with plain Python (torch and numpy only): train every run the chapters need at
# PROFILE, with the chapters' default parameters. Commit results/$(PROFILE) (its checkpoints are
# ignored), and `make book PROFILE=$(PROFILE)` renders those runs on any machine without retraining.
WORKERS ?= 5
runs:
	@for ch in 00 01 02 03; do PYTHONPATH=src $(PYTHON) -m grokcircuits chapter $$ch --profile $(PROFILE) --workers $(WORKERS) || exit 1; done

# Throughput benchmark (needs a GPU; plain Python).
bench:
	PYTHONPATH=src $(PYTHON) -m grokcircuits.bench

clean:
	rm -rf _build build $(EXECUTED) results/tiny
