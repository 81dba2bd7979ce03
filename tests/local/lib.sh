# shellcheck shell=bash
# tests/local/lib.sh: what the local-cluster tests share (sourced): pass/fail counting and reading a node's state.
#   check DESCRIPTION COMMAND...   runs COMMAND, counts and prints ok/FAIL
#   inside NODE COMMAND...         runs COMMAND in the node's namespaces (nsenter on its PID 1)
#   json NODE                      the node's `k8s-agent status --json --no-units` (empty when it cannot answer)
#   field NAME                     a field of the status JSON on stdin ("" when null), read by $TEST_JSON into the
#                                  agent's own StatusReport (tests/support: the names it knows; an unknown one, or
#                                  JSON of another shape, fails)
#   TEST_JSON                      tests/support's k8s-test-json; unset: target/debug/k8s-test-json, built here
#                                  with cargo when cargo is on PATH (a no-op when current; `cargo test --workspace`
#                                  builds it too)
LC=${LC:-demo/local-cluster.sh}
if [ -z "${TEST_JSON:-}" ]; then
  TEST_JSON=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/debug/k8s-test-json
  if command -v cargo >/dev/null 2>&1; then
    (cd "$(dirname "${BASH_SOURCE[0]}")/../.." && cargo build --locked --quiet -p k8s-test-support)
  fi
fi
[ -x "$TEST_JSON" ] || { echo "tests/local/lib.sh: no $TEST_JSON (cargo build -p k8s-test-support)" >&2; exit 2; }
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { # description command...
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
inside() {
  local n=$1
  shift
  nsenter -t "$($LC leader "$n")" -a -- "$@"
}
json() { inside "$1" /usr/bin/k8s-agent status --json --no-units 2>/dev/null || true; }
field() { "$TEST_JSON" status "$1"; }
