#!/usr/bin/env bash
# The README's main command: builds the release binaries, makes the offline demo artifacts from Debian packages,
# builds the demo image layer from manifests/demo.toml into out/demo/, then unpacks it and runs `k8s-agent check`
# on the unpacked tree, the same check the Packer pipeline runs on a node.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/demo}

cargo build --release --locked -p imagebuilder -p k8s-agent -p k8s-standin
./demo/make-artifacts.sh
./target/release/imagebuilder build --manifest manifests/demo.toml --out "$out" --cache "${CACHE:-out/cache}"

tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
tar -xzf "$out/layer.tar.gz" -C "$tree"
(cd "$out" && sha256sum -c layer.tar.gz.sha256)
./target/release/k8s-agent check --root "$tree"
echo "demo layer: $out/layer.tar.gz ($(du -h "$out/layer.tar.gz" | cut -f1)), SBOM $out/sbom.spdx.json, lock $out/lock.json"
