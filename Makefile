# Every target installs what it needs into .venv first, so a fresh clone needs nothing by hand.
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# RACE=1 runs any test target under the race detector: make test-2B RACE=1
# SIM=1 runs any test target, stress too, on simulated time with a fresh seed (the sim/ plugin,
# --sim): make test-2B SIM=1. SEED=N (implies SIM=1) uses seed N, to replay a failure or,
# with stress, to see whether N fails every time: make test-2B SEED=12345
SIMFLAGS := $(if $(SIM)$(SEED),--sim)$(if $(SEED), --sim-seed $(SEED))
PYTEST := $(VPY) -m pytest -s -q $(if $(RACE),--race) $(SIMFLAGS)
# Parallel runs used by `make stress`; override on the command line: make stress N=100 TESTS=2A
N       ?= 20
WORKERS ?= 2
TESTS   ?= 2A 2B 2C 2D 3A 3B 4A 4B

.PHONY: install test test-lab2 test-extra test-lab3 test-2A test-2B test-2C test-2D test-3A test-3B \
        test-lab4 test-4A test-4B \
        test-framework test-framework-lab test-browser stress bench skeleton clean

# `make skeleton DEST=dir` needs DEST; say so before anything is installed.
ifneq ($(filter skeleton,$(MAKECMDGOALS)),)
ifeq ($(strip $(DEST)),)
$(error usage: make skeleton DEST=dir  (dir must be empty or absent))
endif
endif

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# Quiet unless it fails: pip's and setuptools' warnings go to the log, shown on failure.
	@echo "installing into $(VENV) (log: $(VENV)/install.log)"
	@$(VPY) -m pip install -q --upgrade pip > $(VENV)/install.log 2>&1 && \
	 $(VPY) -m pip install -q -e '.[test]' >> $(VENV)/install.log 2>&1 || \
	 { cat $(VENV)/install.log; echo "make: installing into $(VENV) failed (log above)"; exit 1; }
	touch $(STAMP)

# The whole suite in real time, then the lab tests once more on simulated time with a fixed
# seed and the race detector, so that a change that breaks --sim, or a data race in any lab,
# fails here too (the lockset rule needs no real interleaving).  That pass is CPU-bound and
# each test's run depends only on the seed and its name, so it runs as two processes at once,
# one per core: kvraft's 3A tests, and the rest, whose output follows (a background command
# ignores Ctrl-C in sh, hence the trap).
SIM_RACE  := $(VPY) -m pytest -s -q --sim --sim-seed 1 --race tests/raft tests/kvraft tests/shardctrler tests/shardkv
SIM_CHECK := log=$$(mktemp); \
	$(SIM_RACE) -k "3B or not test_kvraft" > $$log 2>&1 & rest=$$!; \
	trap 'kill $$rest 2>/dev/null; rm -f $$log; exit 130' INT TERM; \
	$(SIM_RACE) -k "test_kvraft and not 3B"; first=$$?; \
	wait $$rest; second=$$?; cat $$log; rm -f $$log; \
	test $$first = 0 && test $$second = 0

test: $(STAMP)
	$(PYTEST) tests
	$(if $(SIMFLAGS),,$(SIM_CHECK))

# The framework's own tests pass whatever state the lab is in; the tests of the tools that run
# the lab's own Raft with a bug planted in it (marker needs_lab) pass once the lab does.
FRAMEWORK_TESTS := tests/labgob tests/labrpc tests/porcupine tests/mtests tests/dslogs tests/fidelity tests/sim tests/progress_plugin tests/timeline tests/lockwatch tests/interpose

test-framework: $(STAMP)
	$(PYTEST) -m "not needs_lab" $(FRAMEWORK_TESTS)

test-framework-lab: $(STAMP)
	$(PYTEST) -m needs_lab $(FRAMEWORK_TESTS)

# Timeline pages in headless Chromium (Debian's package chromium); not part of `make test`,
# since a clean machine has no browser.  Without Chromium it fails, saying how to install it.
test-browser: $(STAMP)
	$(PYTEST) --timeline-browser -m browser tests/timeline

# Lab 2 as Go runs it; the extra tests beyond Go's (marker extra) have a target of their own,
# and make test runs them too.
test-lab2: $(STAMP)
	$(PYTEST) -m "not extra" tests/raft

test-extra: $(STAMP)
	$(PYTEST) -m extra tests/raft

test-lab3: $(STAMP)
	$(PYTEST) tests/kvraft

test-2A test-2B test-2C test-2D: $(STAMP)
	$(PYTEST) tests/raft -k $(subst test-,,$@)

test-3A test-3B: $(STAMP)
	$(PYTEST) tests/kvraft -k $(subst test-,,$@)

test-lab4: $(STAMP)
	$(PYTEST) tests/shardctrler tests/shardkv

test-4A: $(STAMP)
	$(PYTEST) tests/shardctrler

test-4B: $(STAMP)
	$(PYTEST) tests/shardkv

stress: $(STAMP)
	$(VPY) mtests.py --workers $(WORKERS) -n $(N) $(SIMFLAGS) $(TESTS)

bench: $(STAMP)
	$(VPY) -m bench

# The student starting point: the project with the files under skeleton/<pkg>/ laid over
# <pkg>/ (see tools/skeleton.py).
skeleton: $(STAMP)
	$(VPY) tools/skeleton.py '$(DEST)'

clean:
	rm -rf $(VENV) mtests-out test-out
