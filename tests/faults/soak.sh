#!/usr/bin/env bash
# tests/faults/soak.sh: the fault suite (tests/faults/run.sh) in a loop, outside CI, to find the faults that bite
# only sometimes (a fault lands in a different phase, or between two D-Bus calls, each round). One CI run of the
# suite is one sample; the daemon-reexec finding (docs/testing.md "Faults") failed about one run in ten.
#
#   tests/faults/soak.sh [--rounds N] [--until-fail] [--keep DIR]
#
#   --rounds N      how many rounds (default 5; one round takes about 4 min on 2 cores)
#   --until-fail    stop after the first round with a failure
#   --keep DIR      where each round's full output is kept (default /var/tmp/k8s-fault-soak); a failed round's log
#                   is named round-N.FAILED.log
#
# Prints, per round, the passed/failed counts, its duration and each failing row; then a summary table of every
# row that failed at least once, with how often. Exits non-zero when any round failed. Other knobs of run.sh
# (K8S_FAULTS_DBUS=1, …) pass through the environment.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=5
until_fail=no
keep=/var/tmp/k8s-fault-soak
while [ $# -gt 0 ]; do
  case $1 in
  --rounds)
    [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || {
      echo "soak: --rounds needs a positive whole number, got '${2:-}'" >&2
      exit 2
    }
    rounds=$2
    shift 2
    ;;
  --until-fail)
    until_fail=yes
    shift
    ;;
  --keep)
    [ -n "${2:-}" ] || {
      echo "soak: --keep needs a directory" >&2
      exit 2
    }
    keep=$2
    shift 2
    ;;
  -h | --help)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "soak: unknown argument '$1' (try --help)" >&2
    exit 2
    ;;
  esac
done
mkdir -p "$keep"

declare -A failed_rows=()
bad_rounds=0
for round in $(seq 1 "$rounds"); do
  log="$keep/round-$round.log"
  started=$(date +%s)
  if tests/faults/run.sh >"$log" 2>&1; then rc=0; else rc=$?; fi
  took=$(($(date +%s) - started))
  counts=$(grep -m1 '^faults: [0-9]* passed' "$log" || echo "faults: no result line (exit $rc)")
  echo "soak: round $round/$rounds: ${counts#faults: } in ${took} s"
  if [ "$rc" != 0 ]; then
    bad_rounds=$((bad_rounds + 1))
    mv "$log" "$keep/round-$round.FAILED.log"
    while IFS= read -r line; do
      echo "    $line"
      failed_rows["$line"]=$((${failed_rows["$line"]:-0} + 1))
    done < <(grep '^FAIL ' "$keep/round-$round.FAILED.log" || echo "FAIL (the suite stopped: see $keep/round-$round.FAILED.log)")
    [ "$until_fail" = no ] || {
      rounds=$round
      break
    }
  fi
done

echo
echo "soak: $rounds rounds, $bad_rounds with a failure (logs in $keep)"
if [ "$bad_rounds" -gt 0 ]; then
  echo "| failed | rounds |"
  echo "|---|---|"
  for line in "${!failed_rows[@]}"; do echo "| ${line#FAIL } | ${failed_rows[$line]} |"; done
  exit 1
fi
