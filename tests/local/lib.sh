# shellcheck shell=bash
# tests/local/lib.sh: what the local-cluster tests share (sourced): pass/fail counting and reading a node's state.
#   check DESCRIPTION COMMAND...   runs COMMAND, counts and prints ok/FAIL
#   inside NODE COMMAND...         runs COMMAND in the node's namespaces (nsenter on its PID 1)
#   json NODE                      the node's `k8s-agent status --json --no-units` (empty when it cannot answer)
#   field PATH                     a field of the JSON on stdin (a.b.0.c; "" when missing)
LC=${LC:-demo/local-cluster.sh}
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
field() {
  python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = (v[int(k)] if int(k) < len(v) else None) if isinstance(v, list) else (v or {}).get(k)
print("" if v is None else v)' "$1"
}
