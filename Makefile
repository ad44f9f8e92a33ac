# Two entry points do all the set-up on a fresh machine:
#   make demo   install, then transcribe the project's own sample audio and print WER
#   make test   install, then run the test suite
# Everything lives in .venv; Debian packages (espeak-ng and flite, used to synthesize test,
# sample and extra training speech) are installed with apt-get when missing (needs root, as in CI).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo bench system-deps

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

system-deps:
	@command -v espeak-ng >/dev/null && command -v flite >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng flite >/dev/null; }

test: install
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/python -m asr demo
