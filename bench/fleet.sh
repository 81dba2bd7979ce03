#!/usr/bin/env bash
# bench/fleet.sh [--seed N] [OUT_DIR]: the fleet simulation (fleetsim: every node driven by k8s-agent's own
# `plan::next`) for every default scenario, its Markdown table on stdout (the one in docs/benchmarks.md), and two
# plots (PNG, gnuplot):
#   OUT_DIR/fleet-ready.png   Ready nodes over time, one line per scenario
#   OUT_DIR/fleet-qps.png     resolver queries per second over time (log scale), one line per scenario
# OUT_DIR defaults to docs/img. The CSVs the plots are drawn from stay in $FLEET_CSV_DIR (default /tmp/fleet-csv). About 40 s of
# simulation on this 2-core machine, plus the release build the first time. Installs gnuplot-nox if it is missing
# (root) — a plotting tool only this script uses.
set -euo pipefail
cd "$(dirname "$0")/.."
seed=1
if [ "${1:-}" = --seed ]; then seed=$2; shift 2; fi
out=${1:-docs/img}
if ! command -v gnuplot >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "bench/fleet.sh: gnuplot is missing: apt-get install gnuplot-nox (or run as root)" >&2; exit 2; }
  echo "bench/fleet.sh: installing gnuplot-nox (the plots)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null
fi
csv=${FLEET_CSV_DIR:-${TMPDIR:-/tmp}/fleet-csv}
rm -rf "$csv"
mkdir -p "$csv"
cargo run --quiet --release --locked -p fleetsim -- --seed "$seed" --csv "$csv"

# One gnuplot `plot` clause per scenario, titled from scenarios.csv.
clauses() { # suffix column-title
  local first=1 k name
  while IFS=, read -r k name; do
    [ "$first" = 1 ] || printf ', '
    first=0
    printf "'%s/%s-%s.csv' using 1:2 with lines lw 2 title \"%s\" noenhanced" "$csv" "$k" "$1" "${name//\"/}"
  done <"$csv/scenarios.csv"
}
gnuplot <<GNUPLOT
set datafile separator ","
set key outside below vertical font ",9"
set grid
set terminal pngcairo size 1400,900 font "DejaVu Sans,11"
set output "$out/fleet-ready.png"
set title "Ready nodes over time (fleetsim, seed $seed: every node driven by k8s-agent's plan::next)" noenhanced
set xlabel "seconds since the first launch"
set ylabel "nodes Ready"
plot $(clauses ready)
set output "$out/fleet-qps.png"
set title "Resolver queries per second over time (fleetsim, seed $seed)" noenhanced
set ylabel "queries / s (log)"
set logscale y
plot $(clauses qps)
GNUPLOT
echo "bench/fleet.sh: wrote $out/fleet-ready.png and $out/fleet-qps.png (data: $csv)" >&2
