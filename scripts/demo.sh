#!/usr/bin/env bash
# The main job: deploy and call the demo contracts with `aivm call`, in a fresh state directory.
set -euo pipefail
AIVM=${1:?path to the aivm binary}
WASM=${2:?directory with the compiled contracts}
STATE=$(mktemp -d)
trap 'rm -rf "$STATE"' EXIT
ALICE=$(printf 'a1%.0s' {1..32})
BOB=$(printf 'b0%.0s' {1..32})

step() { echo; echo "\$ aivm call $*"; "$AIVM" call "$@" --state "$STATE"; }

echo "== token: mint 1000 to alice, send 250 to bob =="
step "$WASM/token.wasm" instantiate --args '{"supply": 1000}' --caller "$ALICE"
step "$WASM/token.wasm" transfer --args "{\"to\": \"$BOB\", \"amount\": 250}" --caller "$ALICE"
step "$WASM/token.wasm" balance_of --args "\"$BOB\""

echo; echo "== ai-demo: int8 MATMUL -> SOFTMAX -> KL against a reference =="
step "$WASM/ai_demo.wasm" set_reference --args '{"probs": [21845, 21845, 21846]}'
step "$WASM/ai_demo.wasm" infer --args '{"m": 1, "k": 4, "n": 3, "a": [12, -7, 3, 100], "b": [1, 0, -1, 2, 1, 0, 0, 3, 1, 1, 1, 1], "scale_q16": 4096}'

echo; echo "== a failing call: overdraft reverts, exit status 1, state unchanged =="
set +e
step "$WASM/token.wasm" transfer --args "{\"to\": \"$ALICE\", \"amount\": 999999}" --caller "$BOB"
echo "exit status: $?"
