# Two entry points do all the set-up on a fresh machine:
#   make demo   install, then transcribe the project's own sample audio and print WER
#   make test   install, then run the test suite
# Everything lives in .venv; Debian packages (espeak-ng, flite and festival, used to synthesize test,
# sample and extra training speech; chromium and chromium-driver, for the browser test of `asr serve`)
# are installed with apt-get when missing (needs root, as in CI).

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

# Festival and its three English voices speak synthetic training speech (asr synth, the recipes' stage 1);
# Chromium and its WebDriver run the browser test of `asr serve`.
SYSTEM_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
	chromium chromium-driver
FESTIVAL_VOICES := /usr/share/festival/voices

system-deps:
	@command -v espeak-ng >/dev/null && command -v flite >/dev/null && command -v text2wave >/dev/null && \
		command -v chromium >/dev/null && command -v chromedriver >/dev/null && \
		test -d $(FESTIVAL_VOICES)/english/kal_diphone -a -d $(FESTIVAL_VOICES)/english/ked_diphone \
			-a -d $(FESTIVAL_VOICES)/us/cmu_us_slt_arctic_hts || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; }

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/python -m asr demo

# Every benchmark prints its figures (benchmarks/README.md holds a run's table). The
# speechocean762 manifests are made from $(SPEECHOCEAN762) when missing; the peer
# recognizers install into their own git-ignored venv on first use. features.py runs
# with numpy's best BLAS kernel, so librosa is not handicapped (see benchmarks/README.md).
SPEECHOCEAN762 ?= ../shared/data/speechocean762
BENCH_DATA := recipes/speechocean762/data

bench: install
	@test -f $(BENCH_DATA)/train.jsonl -a -f $(BENCH_DATA)/dev.jsonl || \
		$(BIN)/asr prepare speechocean762 --corpus-dir $(SPEECHOCEAN762) --manifest-dir $(BENCH_DATA)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/transcribe.py
	$(BIN)/python benchmarks/long_audio.py
