#!/usr/bin/env bash
# demo/make-artifacts.sh: makes demo/artifacts/, what manifests/demo.toml bakes that is not built by imagebuilder from
# Go modules: the demo's containerd config (the image's, with the sandbox image below) and two container images:
#   - pause-3.10.1.oci.tar: the sandbox image, this workspace's pause program (pause/, static, built reproducibly:
#     paths remapped, so another checkout gives the same bytes and the digest demo.toml pins);
#   - busybox-1.37.0.oci.tar: the workload image for tests (Debian 13's busybox-static with its applets as symbolic
#     links: sh, ping, wget, nslookup, nc, …): what the e2e runs in pods to check pod traffic, Services and DNS.
# Both are packed by `imagebuilder oci-image` (deterministic: same inputs, same bytes). SHA256SUMS lists them; the
# manifest pins each through it. Everything else in the image (Kubernetes, etcd, containerd, runc, crictl, the CNI
# plugins) is built by `imagebuilder build` from its Go module.
#
#   demo/make-artifacts.sh            # idempotent; a second run rewrites nothing
#
# busybox-static comes from Debian 13 (trixie) through demo/apt-suite.sh (trixie's lists in a private directory,
# the host's apt sources untouched; extracted, never installed), at the version pinned below.
LIB_SCRIPT=make-artifacts
# shellcheck source=demo/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
out="$here/artifacts"

# mtime of every tar entry (2026-01-01T00:00:00Z); fixed so the archives do not depend on when they were made.
readonly MTIME=1767225600
readonly ARCH=amd64
readonly SUITE=trixie
readonly BUSYBOX_PIN="1:1.37.0-6+b9"

need_commands apt-get apt-cache dpkg-deb sha256sum cargo cmp
start_ns=$(date +%s%N)
mkdir -p "$out/.build"

# --- busybox (the workload image's one program) -----------------------------------------------------------------------------
busybox=$out/.build/busybox
if [[ ! -x "$busybox" || "$(cat "$out/.build/busybox.pin" 2>/dev/null)" != "$BUSYBOX_PIN" ]]; then
    step "downloading Debian $SUITE busybox-static=$BUSYBOX_PIN (demo/apt-suite.sh)" \
        "it needs the Debian mirror; if the version is gone, update BUSYBOX_PIN in demo/make-artifacts.sh"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/make-artifacts.XXXXXX")
    on_exit "rm -rf '$tmp'"
    chmod 0755 "$tmp"
    extracted=$("$here/apt-suite.sh" "$SUITE" extract "$tmp" "busybox-static=$BUSYBOX_PIN")
    [[ -f "$extracted/usr/bin/busybox" ]] || die "busybox-static has no usr/bin/busybox"
    install -m 0755 "$extracted/usr/bin/busybox" "$out/.build/.busybox.tmp"
    mv -f "$out/.build/.busybox.tmp" "$busybox"
    printf '%s\n' "$BUSYBOX_PIN" >"$out/.build/busybox.pin"
fi

# --- container images (OCI archives, made deterministically by `imagebuilder oci-image`) -----------------------------
step "building pause (static) and the demo's container images" "the compiler's or imagebuilder's message is above"
target=${CARGO_TARGET_DIR:-$root/target}
rustflags=$(printf '%s\x1f%s\x1f%s' -Ctarget-feature=+crt-static "--remap-path-prefix=$root=/build" \
    "--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo")
(cd "$root" && CARGO_ENCODED_RUSTFLAGS=$rustflags cargo build --release --quiet --locked -p pause \
    --target x86_64-unknown-linux-gnu)
(cd "$root" && cargo build --release --quiet --locked -p imagebuilder)
pause_bin=$target/x86_64-unknown-linux-gnu/release/pause
imagebuilder=$target/release/imagebuilder
PAUSE_IMAGE=pause-3.10.1.oci.tar
BUSYBOX_IMAGE="busybox-1.37.0.oci.tar"
# The applets the tests use (and a few an operator reaches for in a debugging pod).
BUSYBOX_APPLETS=(sh ash cat echo env hostname ip ls nc nslookup ping ps sleep true wget)
declare -A IMAGE_DIGEST=()
make_image() { # out-name imagebuilder-args...
    local name=$1 printed
    shift
    printed=$("$imagebuilder" oci-image --created "$MTIME" --arch "$ARCH" --out "$out/.$name.tmp" "$@")
    IMAGE_DIGEST[$name]=${printed%% *}
    if cmp -s "$out/.$name.tmp" "$out/$name"; then rm -f "$out/.$name.tmp"; else mv -f "$out/.$name.tmp" "$out/$name"; fi
}
make_image "$PAUSE_IMAGE" --ref localhost/k8s-image/pause:3.10.1 --file "$pause_bin:/pause:0755" \
    --entrypoint /pause --user 65535:65535 --label org.k8s-image.source=workspace:pause
links=()
for a in "${BUSYBOX_APPLETS[@]}"; do links+=(--symlink "/bin/$a:busybox"); done
make_image "$BUSYBOX_IMAGE" --ref localhost/k8s-image/busybox:1.37.0 --file "$busybox:/bin/busybox:0755" \
    "${links[@]}" --env PATH=/bin --cmd sh --label "org.k8s-image.source=debian:busybox-static=$BUSYBOX_PIN"
# The image's containerd config with the sandbox image it pins set to the demo's pause (the image's own names
# registry.k8s.io/pause:3.10.1, which the demo does not bake). Made from files/etc/containerd/config.toml, so the two
# cannot drift apart.
CONTAINERD_CONFIG=containerd-config.toml
{
    printf '# DEMO: files/etc/containerd/config.toml with the sandbox image of the demo (demo/make-artifacts.sh).\n'
    sed "s|sandbox = 'registry.k8s.io/pause:3.10.1'|sandbox = 'localhost/k8s-image/pause:3.10.1'|" \
        "$root/files/etc/containerd/config.toml"
} >"$out/.$CONTAINERD_CONFIG.tmp"
grep -q "^ *sandbox = 'localhost/k8s-image/pause:3.10.1'" "$out/.$CONTAINERD_CONFIG.tmp" ||
    die "files/etc/containerd/config.toml no longer pins registry.k8s.io/pause:3.10.1" \
        "update the sed expression in demo/make-artifacts.sh to the sandbox line it has now"
if cmp -s "$out/.$CONTAINERD_CONFIG.tmp" "$out/$CONTAINERD_CONFIG"; then rm -f "$out/.$CONTAINERD_CONFIG.tmp"; else
    mv -f "$out/.$CONTAINERD_CONFIG.tmp" "$out/$CONTAINERD_CONFIG"; fi
ARTIFACTS=("$CONTAINERD_CONFIG" "$PAUSE_IMAGE" "$BUSYBOX_IMAGE")

# Anything else in the directory is left over from older demos (Debian repacks, stand-in binaries): SHA256SUMS lists
# exactly the artifacts.
shopt -s nullglob
for f in "$out"/*; do
    base=$(basename "$f")
    [[ "$base" == SHA256SUMS ]] && continue
    if ! printf '%s\n' "${ARTIFACTS[@]}" | grep -qxF -- "$base"; then
        log "removing stale $base"
        rm -rf -- "$f"
    fi
done
sums=$(cd "$out" && sha256sum -- "${ARTIFACTS[@]}")
if [[ "$(cat "$out/SHA256SUMS" 2>/dev/null)" != "$sums" ]]; then
    printf '%s\n' "$sums" >"$out/.SHA256SUMS.tmp"
    mv -f "$out/.SHA256SUMS.tmp" "$out/SHA256SUMS"
fi
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
log "demo artifacts in ${out#"$root"/} ($((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000))) s)"
printf '  %-36s %s\n' "$CONTAINERD_CONFIG" "files/etc/containerd/config.toml, sandbox = the demo's pause" \
    "$PAUSE_IMAGE" "OCI image of this workspace's pause (static), manifest ${IMAGE_DIGEST[$PAUSE_IMAGE]}" \
    "$BUSYBOX_IMAGE" "OCI image of Debian's busybox-static (workload for tests), manifest ${IMAGE_DIGEST[$BUSYBOX_IMAGE]}" >&2
