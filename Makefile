# The book's commands. `make book` and `make test` are the two a new user needs.
PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
# The book renders the cpu profile's committed campaign by default (book/appendix/profiles.md, "The cpu profile");
# the tests and CI build the tiny one (make book PROFILE=tiny).
PROFILE  ?= cpu
PARAMS   ?=
EXECUTED := chapters
# The chapters and chapter 01's variant pages are defined once, in grokcircuits.pages.chapters; these
# read them (recursive variables: expanded in recipes, after `setup` has made the venv).
CHAPTERS = $(shell PYTHONPATH=src $(BIN)/python -m grokcircuits chapters)
VARIANTS = $(shell PYTHONPATH=src $(BIN)/python -m grokcircuits chapters --variants)
BOOKFLAGS ?= --warningiserror --keep-going

.PHONY: setup book chapter chapters execute variant html test test-fast golden runs bench clean

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
	$(MAKE) --no-print-directory variant
	$(MAKE) --no-print-directory html

# Every variant page: its chapter executed again with the variant's parameters (V=<page> for one).
variant:
	@for v in $(or $(V),$(VARIANTS)); do \
	  $(MAKE) --no-print-directory execute PAGE=$$v \
	    CH=$$(PYTHONPATH=src $(BIN)/python -m grokcircuits chapters --variant $$v --source) \
	    PARAMS="$$(PYTHONPATH=src $(BIN)/python -m grokcircuits chapters --variant $$v)" || exit 1; \
	done

# The chapter names, one line (CI reads them here).
chapters: setup
	@echo $(CHAPTERS)

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
	$(BIN)/papermill --log-level WARNING build/src/$(CH).ipynb $(EXECUTED)/$(or $(PAGE),$(CH)).ipynb -p profile $(PROFILE) $(PARAMS)

# The root page's "What this replication found" table (_summary.md) is read from the verdict files
# of the profile each executed chapter ran with.
html:
	$(BIN)/python -c "from grokcircuits.pages import book; book.write_summary('$(EXECUTED)', '_summary.md')"
	$(BIN)/jupyter-book build . $(BOOKFLAGS)
	@echo "Open _build/html/index.html in a browser."

# Unit tests (slow tier included) and nbval over the golden notebooks: TEST_WORKERS pytest-xdist
# workers at one torch thread each, one a core (threads spinning beside another busy process slow a
# CPU step many times). --dist loadscope with the scheduler of tests/conftest.py keeps every golden
# notebook on one worker, in order, in that worker's one fresh results store (chapter 04 reads the
# runs the chapters before it trained); every other test module goes to whichever worker is free.
# TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest --runslow --nbval-lax -n $(TEST_WORKERS) --dist loadscope --durations=10 tests

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
WORKERS ?= 16
runs:
	@for ch in 00 01 02 03; do PYTHONPATH=src $(PYTHON) -m grokcircuits chapter $$ch --profile $(PROFILE) --workers $(WORKERS) || exit 1; done

# The GPU kit (needs a GPU; plain Python, torch and numpy only): the engine's captured step, ensembles
# of 1, 5 and 15, the paper-width recursive model and the GPT reference against the engine, a resumed
# run, floors. At most 4 minutes on one H100; writes results/bench/latest.json. `make bench` is the same.
KIT_BUDGET ?= 210
.PHONY: gpu-check sweep
gpu-check:
	PYTHONPATH=src $(PYTHON) -m grokcircuits bench --budget-seconds $(KIT_BUDGET)
bench: gpu-check

# The sweep that finds where the recursive model groks (plain Python): trains grid GRID as ensembles
# and stops at BUDGET seconds, storing unfinished runs as incomplete; writes results/sweep/GRID/table.json
# (and .csv) and prints it. GRID=first fits one command of at most 7 minutes on one H100.
GRID   ?= toy
BUDGET ?= 360
SWEEP_ARGS ?=
sweep:
	PYTHONPATH=src $(PYTHON) -m grokcircuits sweep --grid $(GRID) --budget-seconds $(BUDGET) $(SWEEP_ARGS)

# The campaign (plain Python, THREADS torch threads, default 1 so that work can go on beside it): every
# run the chapters plan at PROFILE, within BUDGET seconds; unfinished runs keep resumable checkpoints and
# the same command resumes them. Once every run is complete it executes every chapter, so that the probe
# results they read are stored beside the runs; commit results/$(PROFILE) (book/appendix/profiles.md, "The cpu profile").
THREADS ?= 1
.PHONY: campaign
campaign: setup
	@PYTHONPATH=src $(BIN)/python -m grokcircuits campaign --profile $(PROFILE) --budget-seconds $(BUDGET) --threads $(THREADS); \
	rc=$$?; if [ $$rc -eq 3 ]; then echo "campaign unfinished: commit results/$(PROFILE) with its resumable checkpoints, then run it again"; exit 0; fi; \
	test $$rc -eq 0 || exit $$rc; \
	for ch in $(CHAPTERS); do OMP_NUM_THREADS=$(THREADS) $(MAKE) --no-print-directory execute CH=$$ch || exit 1; done; \
	OMP_NUM_THREADS=$(THREADS) $(MAKE) --no-print-directory variant

clean:
	rm -rf _build build $(EXECUTED) results/tiny/checkpoints   # results/tiny itself may be committed

# --- Publishing online: the book from committed results, never retraining ------------------------
# TRAIN=0 (make book TRAIN=0; make publish sets it): a chapter whose runs are not in the results
# store stops, before any training, with the list of missing runs and the command that makes them.
# At the cpu profile TRAIN=0 is the default of the targets that render the book: its runs take hours
# (make campaign), the book reads them from git; TRAIN=1 trains what is missing. Every other target
# (the tests, the training targets) and every other profile train what is missing unless TRAIN=0.
RENDERING_GOALS := book chapter execute variant html
TRAIN           ?= $(if $(and $(filter cpu,$(PROFILE)),$(filter $(RENDERING_GOALS),$(MAKECMDGOALS))),0,1)
PUBLISH_PROFILE ?= cpu
PUBLISH_REMOTE  ?= origin
PUBLISH_BRANCH  ?= gh-pages
SKIP_BUILD      ?= 0
ifeq ($(TRAIN),0)
export GROKCIRCUITS_NO_TRAIN := 1
endif

.PHONY: results publish

# Train here every run the chapters need at PROFILE, into results/$(PROFILE) (tiny: minutes on a
# CPU), then execute every chapter once so that each probe result they read is stored beside the
# runs; then `git add results/$(PROFILE)`: checkpoints and verdicts stay ignored.
results: setup
	$(MAKE) --no-print-directory runs PYTHON=$(abspath $(BIN))/python
	@for ch in $(CHAPTERS); do $(MAKE) --no-print-directory execute CH=$$ch || exit 1; done
	$(MAKE) --no-print-directory variant
	@echo "Made results/$(PROFILE): commit it (git add results/$(PROFILE)); checkpoints and verdicts stay ignored."

# Build the book at PUBLISH_PROFILE from its committed results (TRAIN=0), then push _build/html to
# PUBLISH_BRANCH of PUBLISH_REMOTE with ghp-import (.nojekyll included). SKIP_BUILD=1 publishes the
# _build/html already there.
publish: setup
ifeq ($(SKIP_BUILD),0)
	$(BIN)/python -m grokcircuits.ops.publish check-results --profile $(PUBLISH_PROFILE)
	rm -rf _build
	$(MAKE) --no-print-directory book PROFILE=$(PUBLISH_PROFILE) TRAIN=0
endif
	$(BIN)/python -m grokcircuits.ops.publish prepare _build/html --branch $(PUBLISH_BRANCH)
	$(BIN)/ghp-import --no-jekyll --push --force --remote $(PUBLISH_REMOTE) --branch $(PUBLISH_BRANCH) \
	  --message "Publish the book (profile $(PUBLISH_PROFILE)) from $$(git rev-parse --short HEAD)" _build/html
	@echo "Published _build/html to $(PUBLISH_REMOTE) $(PUBLISH_BRANCH)."
