#!/usr/bin/env bash
# demo/build.sh: builds the release binaries, makes the offline demo artifacts from Debian packages
# (demo/make-artifacts.sh), builds the demo image layer from manifests/demo.toml into out/demo/, then unpacks it and
# runs `k8s-agent check` on the unpacked tree, the same check the Packer pipeline runs on a node.
# Needs the Rust toolchain and apt-get (demo/ensure-packages.sh main installs the rest).
LIB_SCRIPT=build
# shellcheck source=demo/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
out=${OUT:-out/demo}
need_commands cargo tar sha256sum

step "cargo build --release (imagebuilder, k8s-agent, k8s-standin)" \
  "the compiler's message is above; a first build takes several minutes on 2 cores"
cargo build --release --locked -p imagebuilder -p k8s-agent -p k8s-standin

step "making the demo artifacts (demo/make-artifacts.sh)"
./demo/make-artifacts.sh

step "imagebuilder build --manifest manifests/demo.toml" "imagebuilder's error and hint are above"
./target/release/imagebuilder build --manifest manifests/demo.toml --out "$out" --cache "${CACHE:-out/cache}"

step "checking the built layer (sha256sum -c, k8s-agent check on the unpacked tree)"
tree=$(mktemp -d)
on_exit "rm -rf '$tree'"
tar -xzf "$out/layer.tar.gz" -C "$tree"
(cd "$out" && sha256sum -c --quiet layer.tar.gz.sha256)
./target/release/k8s-agent check --root "$tree"
log "demo layer: $out/layer.tar.gz ($(du -h "$out/layer.tar.gz" | cut -f1)), SBOM $out/sbom.spdx.json, lock $out/lock.json"
