#!/usr/bin/env bash
# tests/fuzz/run.sh [--seconds S | --runs N | --minimise] [TARGET...]: builds the fuzz targets of fuzz/ (libFuzzer through
# libfuzzer-sys, coverage-guided) on the STABLE toolchain and runs each one, then prints a table: target, executions,
# seconds, executions/s, peak RSS, crashes.
#
# Why this tool: cargo-fuzz's default build needs nightly for -Zsanitizer=address; the coverage instrumentation
# libFuzzer needs is LLVM's SanitizerCoverage, which stable rustc enables with `-C passes=sancov-module` and
# `-C llvm-args=-sanitizer-coverage-*` (stable codegen options). Without ASan, memory safety comes from safe Rust;
# what the fuzzer hunts is panics (incl. overflow checks, on in fuzz/Cargo.toml), hangs (-timeout) and runaway
# memory (-rss_limit_mb, -malloc_limit_mb). AFL++ (cargo-afl) and honggfuzz work on stable too but need their own
# runtime built and a fork server; libFuzzer is in-process and fastest here.
#
# Corpora live in fuzz/corpus/<target>/ (seeds committed; a run adds what it finds). Crashes go to
# fuzz/artifacts/<target>/ and fail the run (exit 1). Default: 20 s per target (CI's short round); the long round is
# `tests/fuzz/run.sh --runs 10000000`. `--minimise` shrinks each corpus instead of fuzzing (libFuzzer -merge=1:
# the fewest inputs that keep all the coverage the corpus reached), so what a long round found can be committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=(-max_total_time=20)
if [ "${1:-}" = --seconds ]; then mode=(-max_total_time="$2"); shift 2; fi
if [ "${1:-}" = --runs ]; then mode=(-runs="$2"); shift 2; fi
minimise=no
if [ "${1:-}" = --minimise ]; then minimise=yes; shift; fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^k8s-image-fuzz$')
fi
command -v g++ >/dev/null || { echo "fuzz: g++ is missing: demo/ensure-packages.sh test" >&2; exit 2; }

export RUSTFLAGS="-C passes=sancov-module -C llvm-args=-sanitizer-coverage-level=4 \
-C llvm-args=-sanitizer-coverage-inline-8bit-counters -C llvm-args=-sanitizer-coverage-pc-table \
-C llvm-args=-sanitizer-coverage-trace-compares -C debug-assertions --cfg fuzzing"
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/fuzz/target}
echo "fuzz: building ${#targets[@]} targets (stable $(rustc --version | cut -d' ' -f2), SanitizerCoverage)" >&2
# --target: RUSTFLAGS then reach only the targets' code, not build scripts and proc-macros (which have no libFuzzer
# runtime to link the coverage callbacks against).
triple=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --manifest-path fuzz/Cargo.toml --target "$triple" --bins >&2

if [ "$minimise" = yes ]; then
  printf '%-18s %16s %16s\n' target "inputs before" "inputs after"
  for t in "${targets[@]}"; do
    dir=fuzz/corpus/$t
    merged=$(mktemp -d)
    before="$(find "$dir" -type f | wc -l) ($(du -sh "$dir" | cut -f1))"
    "$CARGO_TARGET_DIR/$triple/release/$t" -merge=1 -max_len=65536 -timeout=10 -rss_limit_mb=1024 \
      -malloc_limit_mb=512 "$merged" "$dir" >"$merged.log" 2>&1 || {
      echo "fuzz: merging $dir failed; last lines:" >&2
      tail -n 20 "$merged.log" >&2
      exit 1
    }
    # The merged set replaces the corpus (same file names: libFuzzer names inputs by their SHA-1).
    find "$dir" -type f -delete
    cp "$merged"/* "$dir"/
    printf '%-18s %16s %16s\n' "$t" "$before" "$(find "$dir" -type f | wc -l) ($(du -sh "$dir" | cut -f1))"
    rm -rf "$merged" "$merged.log"
  done
  exit 0
fi

status=0
printf '%-18s %14s %8s %12s %9s %8s  %s\n' target executions seconds "execs/s" "peak RSS" crashes notes
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  bin=$CARGO_TARGET_DIR/$triple/release/$t
  log=$(mktemp)
  start=$(date +%s%N)
  total=0 rss_max=0 crashes=0 rc=0 notes="" stalls=0
  # Segments until the round's budget is spent: libFuzzer stops at its first finding. A timeout is wall-clock, so
  # on a busy machine a fast input can trip it; such an artifact is run again alone: if it passes the timeout
  # there, it is kept aside (artifacts/<t>/load/), noted, and fuzzing goes on; if not, it is a finding (a hang).
  while :; do
    seg=("${mode[@]}")
    if [ "${mode[0]%%=*}" = -runs ]; then seg=(-runs=$((${mode[0]#-runs=} - total))); fi
    if [ "${mode[0]%%=*}" = -max_total_time ]; then
      left=$((${mode[0]#-max_total_time=} - ($(date +%s%N) - start) / 1000000000))
      [ "$left" -gt 0 ] || break
      seg=(-max_total_time="$left")
    fi
    rc=0
    "$bin" "fuzz/corpus/$t" -artifact_prefix="fuzz/artifacts/$t/" -timeout=10 -rss_limit_mb=1024 \
      -malloc_limit_mb=512 -max_len=65536 -print_final_stats=1 "${seg[@]}" >"$log" 2>&1 &
    pid=$!
    # Watchdog: libFuzzer prints a status line every few seconds; none for STALL_SECS means the process is stuck
    # (seen once: a wall-clock timeout under load deadlocked libFuzzer's own timeout handler, no CPU used for 45 min).
    stalled=0
    while kill -0 "$pid" 2>/dev/null; do
      sleep 5
      if [ $(($(date +%s) - $(stat -c %Y "$log"))) -gt "${STALL_SECS:-300}" ] && kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
        stalled=1
      fi
    done
    wait "$pid" || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
    total=$((total + ${runs:-0}))
    [ "${rss:-0}" -le "$rss_max" ] || rss_max=$rss
    [ "$rc" -ne 0 ] || break
    if [ "$stalled" = 1 ]; then
      stalls=$((stalls + 1))
      notes+="a stalled libFuzzer process killed after ${STALL_SECS:-300} s without output; "
      [ "$stalls" -ge 3 ] || continue
      crashes=$((crashes + 1)) # stalling every time is a finding, not load
      break
    fi
    new=$(find "fuzz/artifacts/$t" -maxdepth 1 -type f -newer "$log" -name 'timeout-*' | head -n 1)
    if [ -z "$new" ]; then new=$(find "fuzz/artifacts/$t" -maxdepth 1 -type f -cnewer "$log" | head -n 1); fi
    if [ -n "$new" ] && [[ "$(basename "$new")" == timeout-* ]]; then
      alone=$(date +%s%N)
      if "$bin" -timeout=10 "$new" >/dev/null 2>&1; then
        mkdir -p "fuzz/artifacts/$t/load"
        mv "$new" "fuzz/artifacts/$t/load/"
        notes+="a timeout under load, $((($(date +%s%N) - alone) / 1000000)) ms alone; "
        continue
      fi
    fi
    crashes=$((crashes + 1))
    break
  done
  ms=$((($(date +%s%N) - start) / 1000000 + 1))
  printf '%-18s %14s %8s %12s %7s MB %8s  %s\n' "$t" "$total" "$((ms / 1000))" "$((total * 1000 / ms))" \
    "$rss_max" "$crashes" "${notes%; }"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    status=1
    echo "fuzz: $t FAILED (exit $rc); last lines:" >&2
    tail -n 30 "$log" >&2
  fi
  rm -f "$log"
done
exit "$status"
