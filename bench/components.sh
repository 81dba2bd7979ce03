#!/usr/bin/env bash
# bench/components.sh: the Go component builds of manifests/demo.toml (Kubernetes, etcd, containerd, runc, crictl,
# the CNI plugins, each from its Go module by imagebuilder), cold and warm, side by side in one run, and whether two
# builds give the same bytes:
#
#   cold   a fresh GOCACHE and a fresh imagebuilder cache (the Go module cache is kept: modules are downloaded once
#          and verified by Go; `go mod download` of the whole closure takes ~10 s here, COLD_MODULES=1 empties it too)
#   relink the same fresh imagebuilder cache emptied again, GOCACHE warm: every program is linked again from the
#          compiled packages (what a change of version stamps or ldflags costs)
#   warm   imagebuilder's program cache filled: nothing is built, the kept programs' sha256 are re-checked
#
# Reproducibility: the cold build runs in other directories, with another build cache, than the one the demo uses
# (out/cache, $K8S_TEST_CACHE/go/build); every program's sha256 must equal the demo build's (when out/demo/lock.json
# exists) and the relink's.
#
#   bench/components.sh            (cold: ~20 min on 2 cores; run it on an otherwise idle machine)
#   RESULTS=FILE bench/components.sh
#
# Prints one row per component: cold, relink and warm seconds (from imagebuilder's own "built in" lines), size, and
# whether the sha256 matched. Needs the release imagebuilder and tests/support's k8s-test-json, which reads the locks
# (both built here unless NO_BUILD=1), Go, the demo artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
IB=${IMAGEBUILDER:-target/release/imagebuilder}
cache=${K8S_TEST_CACHE:-/var/cache/k8s-image-test}
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then PATH=$PATH:/usr/local/go/bin; fi
note() { printf 'bench/components.sh: %s\n' "$*" >&2; }
[ "${NO_BUILD:-}" = 1 ] || cargo build --release --locked --quiet -p imagebuilder -p k8s-agent
# The locks are read with tests/support's k8s-test-json (the lock's own type, core::image_info::ImageLock).
TEST_JSON=${TEST_JSON:-target/debug/k8s-test-json}
[ "${NO_BUILD:-}" = 1 ] || cargo build --locked --quiet -p k8s-test-support
[ -f demo/artifacts/SHA256SUMS ] || ./demo/make-artifacts.sh >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-components.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOMODCACHE=$cache/go/mod
[ "${COLD_MODULES:-0}" != 1 ] || export GOMODCACHE=$work/gomod

# One build of the demo manifest; its per-component lines go to $work/<label>.log.
build() { # label gocache ibcache
    local label=$1 t0 t1
    t0=$(date +%s%N)
    GOCACHE=$2 nice -n 10 "$IB" build --manifest manifests/demo.toml --out "$work/out-$label" --cache "$3" \
        --agent-bin target/release/k8s-agent >"$work/$label.out" 2>"$work/$label.log" || {
        cat "$work/$label.log" >&2
        exit 1
    }
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000)) >"$work/$label.total"
}

load() { cut -d' ' -f1 /proc/loadavg; }
note "cold build (fresh GOCACHE, fresh imagebuilder cache; load $(load)) — about 20 min on 2 cores"
build cold "$work/gocache" "$work/ibcache"
note "relink (GOCACHE warm, imagebuilder's program cache emptied; load $(load))"
rm -rf "$work/ibcache/go/bin"
build relink "$work/gocache" "$work/ibcache"
note "warm (everything cached; load $(load))"
build warm "$work/gocache" "$work/ibcache"

seconds() { # label component → "123.4" or "cached"
    local l
    l=$(grep -E "^$2: (built in|cached build)" "$work/$1.log" | head -n 1 || true)
    case $l in
    *"built in"*) sed -E 's/.*built in ([0-9.]+) s.*/\1/' <<<"$l" ;;
    *cached*) echo cached ;;
    *) echo "?" ;;
    esac
}
# sha256 of every file an artifact installed, from a lock.
files_of() { # lock artifact
    "$TEST_JSON" lock files "$2" <"$1"
}
size_of() { # lock artifact → MB of its files in the layer tree
    "$TEST_JSON" lock size_mb "$2" "$work/out-cold/tree" <"$1"
}
mkdir -p "$work/out-cold/tree"
tar -xzf "$work/out-cold/layer.tar.gz" -C "$work/out-cold/tree"
mapfile -t components < <("$TEST_JSON" lock go_artifacts <"$work/out-cold/lock.json")

report=$work/report.md
all_same=1
{
    echo "## Go component builds ($(date -u +%Y-%m-%d), $(nproc) cores, $(go version | cut -d' ' -f3), load at the end $(load))"
    echo
    echo "| component | module@version | cold s | relink s | warm | MB | same sha256 (cold = relink$([ -f out/demo/lock.json ] && echo ' = demo build')) |"
    echo "|---|---|---|---|---|---|---|"
    for c in "${components[@]}"; do
        mod=$("$TEST_JSON" lock go_module "$c" <"$work/out-cold/lock.json")
        cold=$(files_of "$work/out-cold/lock.json" "$c")
        same=yes
        [ "$cold" = "$(files_of "$work/out-relink/lock.json" "$c")" ] || same=NO
        if [ -f out/demo/lock.json ] && [ "$cold" != "$(files_of out/demo/lock.json "$c")" ]; then same=NO; fi
        [ "$same" = yes ] || echo "$c" >>"$work/differs"
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$c" "$mod" "$(seconds cold "$c")" "$(seconds relink "$c")" \
            "$(seconds warm "$c")" "$(size_of "$work/out-cold/lock.json" "$c")" "$same"
    done
    printf '| **whole imagebuilder build** | | %.0f | %.0f | %.1f s | | |\n' \
        "$(($(cat "$work/cold.total") / 1000))" "$(($(cat "$work/relink.total") / 1000))" \
        "$(awk '{ print $1 / 1000 }' "$work/warm.total")"
    echo
    echo "The layer: $(du -h "$work/out-cold/layer.tar.gz" | cut -f1) gzipped; layer sha256 cold $(cut -c1-16 "$work/out-cold/layer.tar.gz.sha256"), relink $(cut -c1-16 "$work/out-relink/layer.tar.gz.sha256"), warm $(cut -c1-16 "$work/out-warm/layer.tar.gz.sha256")."
    if [ -s "$work/differs" ]; then
        echo "**A program differs between builds: $(tr '\n' ' ' <"$work/differs")**"
    else
        echo "Every program has the same sha256 in every build."
    fi
} >"$report"
[ ! -s "$work/differs" ] || all_same=0
tee "${RESULTS:-/dev/null}" <"$report"
[ "$all_same" = 1 ]
