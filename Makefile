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
  libopenmpi-dev openmpi-bin python3-mpi4py zlib1g-dev \
  clang-14 libclang-rt-14-dev libfuzzer-14-dev python3-hypothesis \
  jupyter-notebook python3-notebook chromium chromium-driver python3-selenium python3-pandas python3-scipy

.PHONY: deps venv install build demo test test-cpp test-python test-tsan test-asan asan-build fuzz test-cuda-emulator notebook notebooks bench clean ort

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
	$(MAKE) test-asan
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

# AddressSanitizer + UndefinedBehaviorSanitizer (clang-14), in its own build tree: the library, the C++ tests
# and examples under ctest, the Python tests that feed the library the most varied input (the op table, ONNX
# export and import, checkpoints, bad input) against the instrumented extension in the uninstrumented
# interpreter (the ASan runtime preloaded; Python's own allocations are not leak-checked), and each libFuzzer
# target for 30 seconds. Any report stops the program: halt_on_error, no recovery from undefined behaviour.
ASAN_BUILD := build-asan
ASAN_ENV = ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=0:detect_stack_use_after_return=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
FUZZ_ENV = ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
FUZZERS := fuzz_onnx_import fuzz_npz fuzz_program
FUZZ_SECONDS ?= 600
FUZZ_RUNS ?= 1000000
asan-build: venv
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DXGRAD_SANITIZE=address,undefined -DXGRAD_FUZZ=ON -DXGRAD_CUDA=OFF -DXGRAD_MPI=OFF \
	  -DPython_EXECUTABLE=$(CURDIR)/$(PY) -DXGRAD_PYTHON_OUTPUT_DIR=$(CURDIR)/$(ASAN_BUILD)/python/xgrad >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cp -r python/xgrad/*.py python/xgrad/sklearn $(ASAN_BUILD)/python/xgrad/

test-asan: asan-build ort
	cd $(ASAN_BUILD) && $(ASAN_ENV) ctest --output-on-failure -E install_and_consume
	runtime=$$(clang++-14 -print-resource-dir)/lib/linux/libclang_rt.asan-x86_64.so; \
	PYTHONPATH=$(CURDIR)/$(ASAN_BUILD)/python LD_PRELOAD=$$runtime $(ASAN_ENV) $(PY) -m pytest -q -p no:cacheprovider \
	  tests/python/test_ops.py tests/python/test_onnx.py tests/python/test_import.py tests/python/test_checkpoint_errors.py tests/python/test_failed_runs.py \
	  tests/python/test_checkpoint_interop.py tests/python/test_api.py tests/python/test_linear.py \
	  --deselect tests/python/test_onnx.py::test_every_registered_op_is_exported_by_some_table_case
	$(MAKE) fuzz FUZZ_SECONDS=30 FUZZ_RUNS=-1

# Each libFuzzer target for 1,000,000 executions or 10 minutes, whichever comes first (make test-asan: 30
# seconds each), from the seed corpora (tests/fuzz/seeds.py: ONNX backend models, checkpoints, feeds), the
# inputs that once failed (tests/fuzz/regressions/<target>) and what earlier runs found
# (build-asan/fuzz/<target>/corpus). Prints each target's executions and coverage; any crash, leak, timeout
# or sanitizer report fails, and the input is left in build-asan/fuzz/<target>/.
fuzz: asan-build
	$(PY) tests/fuzz/seeds.py $(ASAN_BUILD)/fuzz
	@# libFuzzer's own runtime links ahead of the shared ASan runtime: preloaded, it comes first again.
	@runtime=$$(clang++-14 -print-resource-dir)/lib/linux/libclang_rt.asan-x86_64.so; \
	for f in $(FUZZERS); do \
	  d=$(ASAN_BUILD)/fuzz/$$f; mkdir -p $$d/corpus; \
	  LD_PRELOAD=$$runtime $(FUZZ_ENV) $(ASAN_BUILD)/$$f $$d/corpus $$d/seeds tests/fuzz/regressions/$$f -max_total_time=$(FUZZ_SECONDS) -runs=$(FUZZ_RUNS) \
	    -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix=$$d/ > $$d/log.txt 2>&1 \
	    || { tail -60 $$d/log.txt; echo "$$f FAILED: input and log in $$d"; exit 1; }; \
	  echo "$$f: $$(grep -o 'stat::number_of_executed_units: [0-9]*' $$d/log.txt | grep -o '[0-9]*$$') executions," \
	    "$$(grep -E '^#[0-9]+.*(DONE|pulse)' $$d/log.txt | tail -1 | grep -o 'cov: [0-9]* ft: [0-9]*')," \
	    "corpus $$(ls $$d/corpus | wc -l) inputs"; \
	done

# The CUDA backend on the CPU emulator of CUDA (cuda/emulator/), in its own build tree: the emulator's own checks,
# the C++ device tests and the Python CUDA tests (every op-table case on "cuda" against the CPU). Kernels really
# run (block by block, threads as fibers), with guard pages after device allocations and host access to device
# memory trapped; the speed means nothing. On a machine with a GPU the main build runs the same tests on it.
EMU_BUILD := build-cuda-emulator
test-cuda-emulator: venv
	cmake -S . -B $(EMU_BUILD) -DXGRAD_CUDA_EMULATOR=ON -DXGRAD_BUILD_EXAMPLES=OFF -DPython_EXECUTABLE=$(CURDIR)/$(PY) \
	  -DXGRAD_PYTHON_OUTPUT_DIR=$(CURDIR)/$(EMU_BUILD)/python/xgrad >/dev/null
	cmake --build $(EMU_BUILD) -j $(JOBS) --target xgrad_cuda_emulator_tests xgrad_device_tests _xgrad xgrad_mpi
	cp -r python/xgrad/*.py python/xgrad/sklearn $(EMU_BUILD)/python/xgrad/
	$(EMU_BUILD)/xgrad_cuda_emulator_tests
	$(EMU_BUILD)/xgrad_device_tests
	PYTHONPATH=$(CURDIR)/$(EMU_BUILD)/python $(PY) -c "import xgrad; assert xgrad.cuda.is_emulated(), xgrad.__file__"
	PYTHONPATH=$(CURDIR)/$(EMU_BUILD)/python $(PY) -m pytest -q -p no:cacheprovider tests/python/test_cuda.py \
	  tests/python/test_cuda_optable.py tests/python/test_cuda_kernels.py
	@# device programs reducing through host buffers across two processes (mpirun), on the emulated GPU
	PYTHONPATH=$(CURDIR)/$(EMU_BUILD)/python $(PY) -m pytest -q -p no:cacheprovider tests/python/test_distributed.py -k device_programs

# Jupyter Notebook on 127.0.0.1 in notebooks/, run by the venv's interpreter so that it lists the "xgrad" kernel
# the notebooks name; open the printed URL (it carries the token), pick a notebook, Cell > Run All. Ctrl-C stops it.
NOTEBOOK_PORT ?= 8888
notebook: install ort
	@echo "Jupyter Notebook in notebooks/: open the http://127.0.0.1:... URL printed below (Ctrl-C stops the server)"
	$(PY) -m notebook --no-browser --ip=127.0.0.1 --port=$(NOTEBOOK_PORT) --notebook-dir=notebooks \
	  $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

# Runs the notebooks in notebooks/ in the venv's kernel (also part of `make test`); executed copies and their
# plots go to build/notebooks/.
notebooks: install ort
	$(PY) -m pytest -q tests/python/test_notebooks.py tests/python/test_notebook_browser.py

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
	rm -rf $(BUILD) $(TSAN_BUILD) $(ASAN_BUILD) $(EMU_BUILD) $(VENV) python/xgrad.egg-info
