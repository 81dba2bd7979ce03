#!/usr/bin/env bash
# demo/build.sh: builds the release binaries, the two demo container images (demo/make-artifacts.sh), then the demo
# image layer from manifests/demo.toml into out/demo/ — imagebuilder builds Kubernetes, etcd, containerd, runc,
# crictl and the CNI plugins from their Go modules on the way (one line per component; cached: only the first run
# pays) — then unpacks the layer and runs `k8s-agent check` on the unpacked tree, the check the Packer pipeline runs.
# Needs the Rust toolchain, Go (go1.26.8 on these machines: /usr/local/go/bin) and apt-get (demo/ensure-packages.sh
# main installs the rest). Go's module and build caches live in the test cache (K8S_TEST_CACHE/go), shared with the
# tests.
LIB_SCRIPT=build
# shellcheck source=demo/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
out=${OUT:-out/demo}
cache=${K8S_TEST_CACHE:-/var/cache/k8s-image-test}
# Go is on these machines in /usr/local/go/bin, which a non-login shell may not have on PATH.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then PATH=$PATH:/usr/local/go/bin; fi
need_commands cargo go tar sha256sum

t0=$(ms_now)
step "cargo build --release (imagebuilder, k8s-agent)" \
  "the compiler's message is above; a first build takes several minutes on 2 cores"
cargo build --release --locked -p imagebuilder -p k8s-agent
t_cargo=$(ms_now)

step "making the demo container images (demo/make-artifacts.sh)"
./demo/make-artifacts.sh
t_artifacts=$(ms_now)

step "imagebuilder build --manifest manifests/demo.toml (Go components from their modules)" \
  "imagebuilder's error and hint are above; a cold build of every Go component takes about 20 min on 2 cores"
export GOMODCACHE=${GOMODCACHE:-$cache/go/mod} GOCACHE=${GOCACHE:-$cache/go/build}
nice -n 10 ./target/release/imagebuilder build --manifest manifests/demo.toml --out "$out" --cache "${CACHE:-out/cache}"
t_layer=$(ms_now)

step "checking the built layer (sha256sum -c, k8s-agent check on the unpacked tree)"
tree=$(mktemp -d)
on_exit "rm -rf '$tree'"
tar -xzf "$out/layer.tar.gz" -C "$tree"
(cd "$out" && sha256sum -c --quiet layer.tar.gz.sha256)
./target/release/k8s-agent check --root "$tree"
log "demo layer: $out/layer.tar.gz ($(du -h "$out/layer.tar.gz" | cut -f1)), SBOM $out/sbom.spdx.json, lock $out/lock.json"
log "build times: cargo $(((t_cargo - t0) / 1000)) s, demo images $(((t_artifacts - t_cargo) / 1000)) s, components + layer $(((t_layer - t_artifacts) / 1000)) s, check $((($(ms_now) - t_layer) / 1000)) s"
