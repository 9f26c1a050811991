# osaurus — `make serve` to run, `make test` to test. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROTOS := $(wildcard proto/osaurus/v1/*.proto)

.PHONY: setup serve test test-unit bench lint typecheck proto proto-check buf-lint check clean

KERNEL := osaurus/engine/native/_kernels.mlx-version
KERNEL_SRC := $(wildcard osaurus/engine/native/*.cpp osaurus/engine/native/*.h) \
	osaurus/engine/native/CMakeLists.txt osaurus/engine/native/build.py

setup: $(STAMP) $(KERNEL)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev,native]'
	@# A real BLAS makes MLX's CPU backend ~30x faster at matmul (see README); best effort.
	-@$(BIN)/python -m osaurus.engine.blas --install
	touch $(STAMP)

# The native CPU kernel (C++, an MLX extension), built from source for this machine. Without
# a compiler the server still runs, on MLX's slower kernels, and says so in its log and status.
$(KERNEL): $(STAMP) $(KERNEL_SRC)
	$(BIN)/python -m osaurus.engine.native.build || \
		echo "osaurus: the native kernel did not build (see above): quantized models will be slow"

serve: setup
	$(BIN)/osaurus serve

test: setup
	$(BIN)/python -m pytest -q

# The fast part: no real model, no server process (seconds; see the e2e marker in tests/conftest.py).
test-unit: setup
	$(BIN)/python -m pytest -q -m "not e2e"

# osaurus beside llama.cpp's llama-server and mlx_lm.server, in one run: bench/README.md.
bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.vs_llama
	$(BIN)/python -m bench.embeddings
	$(BIN)/python -m bench.api_features
	$(BIN)/python -m bench.dashboard

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy on osaurus/ and rest_bridge/ (settings in pyproject.toml; the generated code excluded).
typecheck: setup
	$(BIN)/mypy

proto: setup
	$(BIN)/python -m grpc_tools.protoc -I proto --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)

# The committed generated code must be what `make proto` writes.
proto-check: proto
	git diff --exit-code -- osaurus/v1 || (echo "osaurus/v1 is stale: run make proto and commit" && exit 1)
	test -z "$$(git status --porcelain -- osaurus/v1)" || (echo "untracked generated files in osaurus/v1" && exit 1)

# Pinned: a new buf release may add lint rules.
BUF_VERSION := 1.75.0
buf-lint:
	cd proto && npx --yes @bufbuild/buf@$(BUF_VERSION) lint

check: lint typecheck proto-check buf-lint

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache osaurus/engine/native/build
	rm -f osaurus/engine/native/_kernels*.so $(KERNEL)
