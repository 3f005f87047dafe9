# The two commands a newcomer needs:
#   make demo   set up .venv and train a small CNN on the CIFAR-10 sample shipped inside the package
#   make test   set up .venv (building the Cython kernels) and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever the build inputs change (the Cython sources included).  The demo
# installs only what a user's `pip install '.[plot]'` gives (so it runs as a user's would);
# the tests add the test extra and the mpi extra (tests/test_distributed.py runs `mpiexec -n 2`;
# kept out of the test extra so that `pip install '.[test]'` alone stays free of MPI).
$(VENV)/.installed-%: $(BIN)/activate pyproject.toml setup.py $(wildcard minicnn/_ext/*.pyx) $(wildcard minicnn/_ext/*.h)
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	touch $@

demo: $(VENV)/.installed-plot
	$(BIN)/minicnn train --model small_cnn --epochs 30 --batch-size 64 --overwrite --out runs/demo
	$(BIN)/minicnn plot runs/demo

test: $(VENV)/.installed-test,mpi
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed-plot
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/minicnn bench

clean:
	rm -rf $(VENV) build *.egg-info minicnn/_ext/*.c minicnn/_ext/*.so
