# voicecli developer commands. `make install` once, then `make run` / `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run ask serve test lint bench bench-long clean

# Its own stamp, written last: a venv that failed half-way (no python3-venv) is made again.
CREATED := $(VENV)/.created
$(CREATED):
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $(CREATED)

# Reinstall only when the dependencies change (a stamp file, not a pip run per target).
STAMP := $(VENV)/.installed
$(STAMP): pyproject.toml | $(CREATED)
	$(BIN)/pip install --quiet -e '.[dev,local]'
	touch $(STAMP)

install: $(STAMP)

# The main job: a spoken conversation. With no API key configured it talks to the embedded
# local assistant (offline); `q` quits. `make ask` is the one-shot, scriptable form.
run: install
	$(BIN)/voicecli talk

PROMPT ?= Hello from voicecli! What can you do?
ask: install
	$(BIN)/voicecli ask "$(PROMPT)"

serve: install
	$(BIN)/voicecli serve --port 8765

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check voicecli tests bench
	$(BIN)/ruff format --check voicecli tests bench
	$(BIN)/mypy voicecli

# The quick set (about 2 minutes); bench-long needs PulseAudio and takes about 20 minutes.
bench: install
	$(BIN)/python bench/serve_connect.py
	$(BIN)/python bench/playout.py
	$(BIN)/python bench/dashboard.py

bench-long: install
	$(BIN)/python bench/ask.py --runs 20
	$(BIN)/python bench/assistant.py
	$(BIN)/python bench/reconnect.py
	$(BIN)/python bench/talk_latency.py --seconds 60 --repeats 3 --minutes 10

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
