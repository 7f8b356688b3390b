# Set-up and entry points. `make demo` and `make test` work on a fresh Debian 12 machine.
VENV := .venv
PY := $(VENV)/bin/python
BUILD := build
JOBS ?= $(shell nproc)

APT_PACKAGES := cmake g++ make pkg-config libxtensor-dev libxtensor-blas-dev xtl-dev libxsimd-dev libopenblas-dev libdnnl-dev \
  pybind11-dev python3-pybind11 python3-dev python3-venv python3-pip python3-setuptools python3-wheel \
  python3-numpy python3-pytest python3-sklearn python3-tqdm libgtest-dev googletest python3-torch \
  libonnx-dev python3-onnx libonnx-testdata libprotobuf-dev protobuf-compiler \
  python3-matplotlib python3-nbclient python3-nbformat python3-ipykernel python3-graphviz graphviz \
  libopenmpi-dev openmpi-bin python3-mpi4py zlib1g-dev

.PHONY: deps venv install build demo test test-cpp test-python test-tsan test-cuda-emulator notebooks bench clean ort

# Installs the Debian packages that are missing (apt-get update only when needed).
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

# Debian's interpreter (numpy lives there), in a venv that sees the system packages.
# pip.conf turns build isolation off (no PyPI here); the option's value is inverted.
$(PY): | deps
	/usr/bin/python3 -m venv --system-site-packages $(VENV)
	printf '[install]\nno-build-isolation = false\n' > $(VENV)/pip.conf

# The Jupyter kernel "xgrad" runs the venv's interpreter; the notebook tests execute with it.
KERNEL := $(VENV)/share/jupyter/kernels/xgrad/kernel.json
$(KERNEL): | $(PY)
	$(PY) -Xfrozen_modules=off -m ipykernel install --sys-prefix --name xgrad --display-name "Python 3 (xgrad)" --env PYDEVD_DISABLE_FILE_VALIDATION 1 >/dev/null

venv: deps $(PY) $(KERNEL)

install: venv
	$(PY) -m pip install --no-deps --no-build-isolation -q .

build: install
	cmake --build $(BUILD) -j $(JOBS)

# ONNX Runtime (CPU) for the Python tests: the npm package onnxruntime-node, pinned by
# tools/onnxruntime/package-lock.json. Installs Node.js and npm from Debian when missing; runs npm ci
# only when node_modules is missing or the lock changed (the stamp lives inside node_modules). The
# package's install script would download GPU files: skipped (here and in tools/onnxruntime/.npmrc).
ORT_DIR := tools/onnxruntime
ORT_STAMP := $(ORT_DIR)/node_modules/.xgrad-ort-stamp

ort: $(ORT_STAMP)

$(ORT_STAMP): $(ORT_DIR)/package.json $(ORT_DIR)/package-lock.json $(ORT_DIR)/.npmrc | deps
	@missing=$$(command -v node >/dev/null 2>&1 || echo nodejs; command -v npm >/dev/null 2>&1 || echo npm); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	cd $(ORT_DIR) && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
	touch $@

demo: install
	$(PY) examples/linear_regression.py

test: build ort
	$(MAKE) test-tsan
	$(MAKE) test-cuda-emulator
	cd $(BUILD) && ctest --output-on-failure
	$(PY) -m pytest -q tests/python

# The concurrency test (8 threads x 2,000 calls on one Program) against a ThreadSanitizer build of the
# library, in its own build tree; any data race fails it. Without Python, examples or CUDA, to stay quick.
TSAN_BUILD := build-tsan
test-tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXGRAD_SANITIZE=thread -DXGRAD_BUILD_PYTHON=OFF \
	  -DXGRAD_BUILD_EXAMPLES=OFF -DXGRAD_CUDA=OFF >/dev/null
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target xgrad_concurrency_tests
	@# setarch -R: GCC 12's TSan cannot map its shadow memory under high mmap randomization (newer kernels).
	norandom=$$(setarch $$(uname -m) -R true 2>/dev/null && echo "setarch $$(uname -m) -R"); \
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  $$norandom $(TSAN_BUILD)/xgrad_concurrency_tests

# The CUDA backend on the CPU emulator of CUDA (cuda/emulator/), in its own build tree: the emulator's own checks,
# the C++ device tests and the Python CUDA tests (every op-table case on "cuda" against the CPU). Kernels really
# run (block by block, threads as fibers), with guard pages after device allocations and host access to device
# memory trapped; the speed means nothing. On a machine with a GPU the main build runs the same tests on it.
EMU_BUILD := build-cuda-emulator
test-cuda-emulator: venv
	cmake -S . -B $(EMU_BUILD) -DXGRAD_CUDA_EMULATOR=ON -DXGRAD_BUILD_EXAMPLES=OFF -DPython_EXECUTABLE=$(CURDIR)/$(PY) \
	  -DXGRAD_PYTHON_OUTPUT_DIR=$(CURDIR)/$(EMU_BUILD)/python/xgrad >/dev/null
	cmake --build $(EMU_BUILD) -j $(JOBS) --target xgrad_cuda_emulator_tests xgrad_device_tests _xgrad xgrad_mpi
	cp python/xgrad/*.py $(EMU_BUILD)/python/xgrad/
	$(EMU_BUILD)/xgrad_cuda_emulator_tests
	$(EMU_BUILD)/xgrad_device_tests
	PYTHONPATH=$(CURDIR)/$(EMU_BUILD)/python $(PY) -c "import xgrad; assert xgrad.cuda.is_emulated(), xgrad.__file__"
	PYTHONPATH=$(CURDIR)/$(EMU_BUILD)/python $(PY) -m pytest -q -p no:cacheprovider tests/python/test_cuda.py \
	  tests/python/test_cuda_optable.py tests/python/test_cuda_kernels.py
	@# device programs reducing through host buffers across two processes (mpirun), on the emulated GPU
	PYTHONPATH=$(CURDIR)/$(EMU_BUILD)/python $(PY) -m pytest -q -p no:cacheprovider tests/python/test_distributed.py -k device_programs

# Runs the notebooks in notebooks/ in the venv's kernel (also part of `make test`); executed copies and their
# plots go to build/notebooks/.
notebooks: install ort
	$(PY) -m pytest -q tests/python/test_notebooks.py

bench: install ort
	cmake --build $(BUILD) -j $(JOBS) --target bench_infer
	$(PY) bench/bench_overhead.py
	$(PY) bench/bench_elementwise.py
	$(PY) bench/bench_startup.py
	$(PY) bench/bench_matmul.py
	$(PY) bench/bench_conv.py
	$(PY) bench/bench_train.py
	$(PY) bench/bench_serve.py
	$(PY) bench/bench_distributed.py
	$(PY) bench/bench_cuda.py

clean:
	rm -rf $(BUILD) $(TSAN_BUILD) $(EMU_BUILD) $(VENV) python/xgrad.egg-info
