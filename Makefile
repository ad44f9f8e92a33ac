# Two entry points do all the set-up on a fresh machine:
#   make demo   install, then transcribe the project's own sample audio and print WER
#   make test   install, then run the test suite
# Everything lives in .venv; Debian packages (espeak-ng, flite and festival, used to synthesize test,
# sample and extra training speech; chromium and chromium-driver, for the browser test of `asr serve`;
# cmake, g++, zlib and boost to build KenLM's tools) are installed with apt-get when missing
# (needs root, as in CI).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo bench system-deps

install: $(STAMP) $(BIN)/lmplz

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Festival and its three English voices speak synthetic training speech (asr synth, the recipes' stage 1);
# Chromium and its WebDriver run the browser test of `asr serve`; cmake, g++, zlib and boost build
# KenLM's lmplz and build_binary (`asr lm build`).
SYSTEM_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
	chromium chromium-driver cmake g++ zlib1g-dev libboost-program-options-dev libboost-system-dev \
	libboost-thread-dev
FESTIVAL_VOICES := /usr/share/festival/voices

system-deps:
	@command -v espeak-ng >/dev/null && command -v flite >/dev/null && command -v text2wave >/dev/null && \
		command -v chromium >/dev/null && command -v chromedriver >/dev/null && \
		command -v cmake >/dev/null && command -v g++ >/dev/null && test -f /usr/include/boost/program_options.hpp && \
		test -d $(FESTIVAL_VOICES)/english/kal_diphone -a -d $(FESTIVAL_VOICES)/english/ked_diphone \
			-a -d $(FESTIVAL_VOICES)/us/cmu_us_slt_arctic_hts || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; }

# KenLM's lmplz (`asr lm build`) and build_binary are not on PyPI as programs: build them
# from the C++ sources of the kenlm sdist (the Boost unit-test library is only for its tests).
KENLM := kenlm-0.3.0
KENLM_BUILD := $(VENV)/kenlm-build
$(BIN)/lmplz: | $(STAMP)
	rm -rf $(KENLM_BUILD) && mkdir -p $(KENLM_BUILD)
	$(BIN)/pip download --quiet --no-deps --no-binary kenlm $(subst -,==,$(KENLM)) -d $(KENLM_BUILD)
	tar xzf $(KENLM_BUILD)/$(KENLM).tar.gz -C $(KENLM_BUILD)
	sed -i '/^  unit_test_framework$$/d' $(KENLM_BUILD)/$(KENLM)/CMakeLists.txt
	cmake -S $(KENLM_BUILD)/$(KENLM) -B $(KENLM_BUILD)/build -DCMAKE_BUILD_TYPE=Release >/dev/null
	$(MAKE) --no-print-directory -C $(KENLM_BUILD)/build -j2 lmplz build_binary >/dev/null
	cp $(KENLM_BUILD)/build/bin/build_binary $(BIN)/
	cp $(KENLM_BUILD)/build/bin/lmplz $(BIN)/
	rm -rf $(KENLM_BUILD)

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/python -m asr demo

# Every benchmark prints its figures (benchmarks/README.md holds a run's table). The
# speechocean762 manifests are made when missing, from a copy if SPEECHOCEAN762 names one
# (make bench SPEECHOCEAN762=DIR), else from OpenSLR's archive, downloaded into the recipe's
# downloads/; the peer recognizers install into their own git-ignored venv on first use.
# features.py runs with numpy's best BLAS kernel, so librosa is not handicapped (see benchmarks/README.md).
BENCH_DATA := recipes/speechocean762/data
BENCH_SOURCE = $(if $(SPEECHOCEAN762),--corpus-dir $(SPEECHOCEAN762),--root recipes/speechocean762/downloads)

bench: install
	@test -f $(BENCH_DATA)/train.jsonl -a -f $(BENCH_DATA)/dev.jsonl || \
		$(BIN)/asr prepare speechocean762 $(BENCH_SOURCE) --manifest-dir $(BENCH_DATA)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python -m benchmarks.features
	$(BIN)/python -m benchmarks.train_step
	$(BIN)/python -m benchmarks.transcribe
	$(BIN)/python -m benchmarks.long_audio
