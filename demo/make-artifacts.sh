#!/usr/bin/env bash
# demo/make-artifacts.sh: builds demo/artifacts/, the offline artifact directory that manifests/demo.toml points at.
#
# No internet needed: Debian 13 (trixie) packages, downloaded with demo/apt-suite.sh (trixie's package lists in a
# private directory, so a Debian 12 host's apt sources are not touched; never installed)
# are unpacked with dpkg-deb -x and repacked into files shaped like the upstream release assets; the names Debian
# does not ship are filled with the k8s-standin program (standin/, built with cargo --release), copied once per name.
# Finally SHA256SUMS lists every artifact; demo.toml pins each artifact through it.
#
#   demo/make-artifacts.sh            # idempotent; a second run only checks and rewrites nothing
#   FORCE=1 demo/make-artifacts.sh    # rebuild the Debian-derived artifacts even if they look current
#
# The Debian package versions are pinned below (PIN). If apt no longer offers a pinned version the script stops and
# says what to update: PIN here, the matching `version` in manifests/demo.toml and the table in demo/README.md.
# Tarballs are deterministic (sorted, owner 0:0, fixed mtime, gzip -n), so the same inputs give the same SHA256SUMS.
LIB_SCRIPT=make-artifacts
# shellcheck source=demo/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
out="$here/artifacts"
script="$here/$(basename "${BASH_SOURCE[0]}")"

# mtime of every tar entry (2026-01-01T00:00:00Z); fixed so the archives do not depend on when they were made.
readonly MTIME=1767225600
readonly ARCH=amd64

# The Debian suite the artifacts come from: the node root filesystem of the local cluster is the same suite.
readonly SUITE=trixie
# Debian 13 (amd64) packages and the exact versions the demo manifest records.
declare -A PIN=(
    [etcd-server]="3.5.16-4"
    [etcd-client]="3.5.16-4"
    [containernetworking-plugins]="1.1.1+ds1-3+b17"
    [kubectl]="1.32.3+ds-2"
    [containerd]="1.7.24~ds1-6+deb13u1"
    [runc]="1.1.15+ds1-2+b4"
    [busybox-static]="1:1.37.0-6+b9"
)
# Sorted package list (associative arrays have no order).
mapfile -t PKGS < <(printf '%s\n' "${!PIN[@]}" | LC_ALL=C sort)

# Names Debian does not ship (trixie has no cri-tools package, hence crictl): the stand-in is copied here.
readonly STANDINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubeadm crictl)

note() { log "$*"; }
need_commands apt-get apt-cache dpkg-deb tar gzip sha256sum cargo cmp

# Upstream version inside a Debian version: drop the epoch, the Debian revision, "+ds1"/"~ds1" repack suffixes,
# and keep what follows "+really" (1.20.5+really1.20.2-1.1+deb12u1 -> 1.20.2).
upstream() {
    local v=$1
    v=${v#*:}
    v=${v%-*}
    v=${v##*+really}
    v=${v%%[+~]*}
    printf '%s' "$v"
}

etcd_v=$(upstream "${PIN[etcd-server]}")
cni_v=$(upstream "${PIN[containernetworking-plugins]}")
containerd_v=$(upstream "${PIN[containerd]}")
[[ "${PIN[etcd-server]}" == "${PIN[etcd-client]}" ]] ||
    die "etcd-server (${PIN[etcd-server]}) and etcd-client (${PIN[etcd-client]}) must be pinned to the same version"

etcd_dir="etcd-v${etcd_v}-linux-${ARCH}"
ETCD_TGZ="${etcd_dir}.tar.gz"
CNI_TGZ="cni-plugins-linux-${ARCH}-v${cni_v}.tgz"
CONTAINERD_TGZ="containerd-${containerd_v}-linux-${ARCH}.tar.gz"
KUBECTL=kubectl
RUNC="runc.${ARCH}"
readonly DEBIAN_ARTIFACTS=("$ETCD_TGZ" "$CNI_TGZ" "$CONTAINERD_TGZ" "$KUBECTL" "$RUNC")

start_ns=$(date +%s%N)
mkdir -p "$out"

# What the Debian-derived artifacts were made from; when it matches, they are current and are not rebuilt.
stamp_file="$out/.debian-stamp"
want_stamp=$(
    printf 'format 1\nmtime %s\narch %s\nscript %s\n' "$MTIME" "$ARCH" "$(sha256sum <"$script" | cut -d' ' -f1)"
    for p in "${PKGS[@]}"; do printf 'pin %s=%s\n' "$p" "${PIN[$p]}"; done
)

debian_current() {
    [[ "${FORCE:-}" != 1 && -f "$stamp_file" && "$(cat "$stamp_file")" == "$want_stamp" ]] || return 1
    local f
    for f in "${DEBIAN_ARTIFACTS[@]}"; do [[ -s "$out/$f" ]] || return 1; done
    [[ -x "$out/.build/busybox" ]] || return 1
}

# Versions apt offers for a package (one per line), from the local package lists.
offered() {
    "$here/apt-suite.sh" "$SUITE" madison "$1" 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }' |
        LC_ALL=C sort -u
}

updated=0
apt_update() {
    ((updated)) && return 0
    note "package lists are missing or stale: running apt-get update"
    "$here/apt-suite.sh" "$SUITE" update || die "apt-get update ($SUITE) failed" "it needs the Debian mirror"
    updated=1
}

check_pins() {
    local p unknown=0 have cand
    for p in "${PKGS[@]}"; do [[ -n "$(offered "$p")" ]] || unknown=1; done
    if ((unknown)); then apt_update; fi
    local bad=()
    for p in "${PKGS[@]}"; do
        have=$(offered "$p")
        [[ -n "$have" ]] || die "Debian $SUITE has no package $p" "check the mirror (K8S_TEST_MIRROR) and the PIN table"
        if ! grep -qxF -- "${PIN[$p]}" <<<"$have"; then
            bad+=("$p: pinned ${PIN[$p]}, apt offers $(tr '\n' ' ' <<<"$have")")
            continue
        fi
        cand=$("$here/apt-suite.sh" "$SUITE" policy "$p" 2>/dev/null | awk '/Candidate:/ { print $2 }')
        if [[ -n "$cand" && "$cand" != "${PIN[$p]}" ]]; then
            note "note: $p ${PIN[$p]} is pinned; apt's candidate is $cand (the demo keeps the pin)"
        fi
    done
    if ((${#bad[@]})); then
        printf 'make-artifacts: error: apt does not offer the pinned Debian versions:\n' >&2
        printf '  %s\n' "${bad[@]}" >&2
        printf '  to move the demo to what apt offers, update PIN in %s,\n' "${script#"$root"/}" >&2
        printf '  the matching version lines in manifests/demo.toml and the table in demo/README.md, then run again.\n' >&2
        exit 1
    fi
}

# Writes stdin to $out/$1 through a temporary file, so an interrupted run never leaves a half-written artifact.
write_artifact() {
    local tmp="$out/.$1.tmp"
    cat >"$tmp"
    mv -f "$tmp" "$out/$1"
}

# Deterministic gzip'd tar of the given entries below directory $1.
det_tar() {
    local dir=$1
    shift
    tar -C "$dir" --sort=name --mtime="@$MTIME" --owner=0 --group=0 --numeric-owner --format=gnu -cf - "$@" | gzip -n
}

build_debian() {
    check_pins
    local tmp
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/make-artifacts.XXXXXX")
    on_exit "rm -rf '$tmp'"
    mkdir -p "$tmp/debs" "$tmp/x" "$tmp/stage"
    # apt drops privileges to _apt for downloads; let it write here (avoids the "unsandboxed" warning).
    chmod 0755 "$tmp"
    if [[ $(id -u) == 0 ]] && id -u _apt >/dev/null 2>&1; then chown _apt "$tmp/debs"; fi

    local specs=() p
    for p in "${PKGS[@]}"; do specs+=("$p=${PIN[$p]}"); done
    note "downloading ${#specs[@]} Debian packages: ${specs[*]}"
    step "apt-get download ${specs[*]}" "apt-get's message is above; it needs the Debian mirror"
    if ! "$here/apt-suite.sh" "$SUITE" download "$tmp/debs" "${specs[@]}"; then
        ((updated)) && die "apt-get download failed (see above)"
        apt_update
        "$here/apt-suite.sh" "$SUITE" download "$tmp/debs" "${specs[@]}"
    fi
    step "repacking the Debian packages into upstream-shaped artifacts"

    local deb
    for p in "${PKGS[@]}"; do
        deb=$(find "$tmp/debs" -maxdepth 1 -name "${p}_*.deb" -print -quit)
        [[ -n "$deb" ]] || die "apt-get download left no .deb for $p"
        # Extract only; installing would clash with the host's packages (and needs no root).
        mkdir -p "$tmp/x/$p"
        dpkg-deb -x "$deb" "$tmp/x/$p"
    done

    need() { [[ -f "$1" && ! -L "$1" ]] || die "expected file missing from the Debian package: ${1#"$tmp"/x/}"; }
    local f

    # etcd: upstream etcd-vX.Y.Z-linux-amd64.tar.gz holds etcd-vX.Y.Z-linux-amd64/{etcd,etcdctl,...}.
    mkdir -p "$tmp/stage/etcd/$etcd_dir"
    need "$tmp/x/etcd-server/usr/bin/etcd"
    need "$tmp/x/etcd-client/usr/bin/etcdctl"
    install -m 0755 "$tmp/x/etcd-server/usr/bin/etcd" "$tmp/x/etcd-client/usr/bin/etcdctl" "$tmp/stage/etcd/$etcd_dir/"
    chmod 0755 "$tmp/stage/etcd/$etcd_dir"
    det_tar "$tmp/stage/etcd" "$etcd_dir" | write_artifact "$ETCD_TGZ"

    # CNI plugins: upstream cni-plugins-linux-amd64-vX.Y.Z.tgz is `tar -C bin .`, so members are ./loopback etc.
    mkdir -p "$tmp/stage/cni"
    for f in "$tmp/x/containernetworking-plugins/usr/lib/cni/"*; do
        need "$f"
        install -m 0755 "$f" "$tmp/stage/cni/"
    done
    for f in loopback bridge host-local portmap; do need "$tmp/stage/cni/$f"; done
    chmod 0755 "$tmp/stage/cni"
    det_tar "$tmp/stage/cni" . | write_artifact "$CNI_TGZ"

    # containerd: upstream containerd-X.Y.Z-linux-amd64.tar.gz holds bin/containerd, bin/ctr, bin/containerd-shim-*.
    mkdir -p "$tmp/stage/containerd/bin"
    for f in "$tmp/x/containerd/usr/bin/"*; do
        need "$f"
        install -m 0755 "$f" "$tmp/stage/containerd/bin/"
    done
    for f in containerd ctr containerd-shim-runc-v2; do need "$tmp/stage/containerd/bin/$f"; done
    chmod 0755 "$tmp/stage/containerd/bin"
    det_tar "$tmp/stage/containerd" bin | write_artifact "$CONTAINERD_TGZ"

    # Single binaries, as upstream publishes kubectl and runc.amd64.
    need "$tmp/x/kubectl/usr/bin/kubectl"
    write_artifact "$KUBECTL" <"$tmp/x/kubectl/usr/bin/kubectl"
    need "$tmp/x/runc/usr/sbin/runc"
    write_artifact "$RUNC" <"$tmp/x/runc/usr/sbin/runc"
    chmod 0755 "$out/$KUBECTL" "$out/$RUNC"

    # busybox (statically linked) is not an artifact: it is the shell of the stand-in weave image below.
    need "$tmp/x/busybox-static/usr/bin/busybox"
    mkdir -p "$out/.build"
    install -m 0755 "$tmp/x/busybox-static/usr/bin/busybox" "$out/.build/busybox"

    printf '%s\n' "$want_stamp" >"$stamp_file"
}

if debian_current; then
    note "Debian-derived artifacts are current (pins unchanged); not downloading"
else
    build_debian
fi

# The stand-in: cargo decides whether anything needs rebuilding.
note "building the stand-in (cargo build --release -p k8s-standin)"
step "cargo build --release -p k8s-standin" "the compiler's message is above"
(cd "$root" && cargo build --release --quiet -p k8s-standin)
standin_bin="${CARGO_TARGET_DIR:-$root/target}/release/k8s-standin"
[[ -x "$standin_bin" ]] || die "no stand-in binary at $standin_bin"
copied=0
for name in "${STANDINS[@]}"; do
    if ! cmp -s "$standin_bin" "$out/$name"; then
        install -m 0755 "$standin_bin" "$out/.$name.tmp"
        mv -f "$out/.$name.tmp" "$out/$name"
        copied=$((copied + 1))
    fi
done

# --- container images (OCI archives, made deterministically by `imagebuilder oci-image`) ----------------------------
# The sandbox image: the pause program of this workspace (pause/), statically linked, built reproducibly (paths
# remapped, so another checkout or target directory gives the same bytes and the same image digest as
# manifests/demo.toml pins). A real component, not a stand-in.
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
WEAVE_IMAGE=weave-kube-standin-2.8.1.oci.tar
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
# The weave image is a STAND-IN: Weave Net's images cannot be fetched offline. busybox (Debian's busybox-static)
# runs two scripts with weave-kube's names, so the path archive → import → containerd + runc → a running container
# is the real one while the program is not.
# shellcheck disable=SC2016 # the script's own variables, expanded when it runs in the container
printf '#!/bin/busybox sh\necho "STAND-IN weave-kube (k8s-image demo, not Weave Net): IPALLOC_INIT=$IPALLOC_INIT KUBE_PEERS=$KUBE_PEERS"\ntrap "exit 0" TERM INT\nwhile :; do /bin/busybox sleep 3600 & wait $!; done\n' \
    >"$out/.build/launch.sh"
printf '#!/bin/busybox sh\necho "STAND-IN weave-kube init (k8s-image demo): no CNI plugin installed"\n' >"$out/.build/init.sh"
make_image "$WEAVE_IMAGE" --ref localhost/k8s-image/weave-kube-standin:2.8.1 \
    --file "$out/.build/busybox:/bin/busybox:0755" --file "$out/.build/launch.sh:/home/weave/launch.sh:0755" \
    --file "$out/.build/init.sh:/home/weave/init.sh:0755" --entrypoint /home/weave/launch.sh \
    --label org.k8s-image.standin=true
IMAGE_ARTIFACTS=("$PAUSE_IMAGE" "$WEAVE_IMAGE")

# Committed demo files (the containerd 1.7 config replacing the image's containerd 2.x one).
CONFIG_ARTIFACTS=(containerd-config-v2.toml)
for name in "${CONFIG_ARTIFACTS[@]}"; do
    if ! cmp -s "$root/demo/$name" "$out/$name"; then
        install -m 0644 "$root/demo/$name" "$out/.$name.tmp"
        mv -f "$out/.$name.tmp" "$out/$name"
    fi
done

# Anything else in the directory is left over from other pins; SHA256SUMS must list exactly the artifacts.
mapfile -t ARTIFACTS < <(printf '%s\n' "${DEBIAN_ARTIFACTS[@]}" "${STANDINS[@]}" "${IMAGE_ARTIFACTS[@]}" \
    "${CONFIG_ARTIFACTS[@]}" | LC_ALL=C sort)
shopt -s nullglob
for f in "$out"/*; do
    base=$(basename "$f")
    [[ "$base" == SHA256SUMS ]] && continue
    if ! printf '%s\n' "${ARTIFACTS[@]}" | grep -qxF -- "$base"; then
        note "removing stale $base"
        rm -rf -- "$f"
    fi
done

sums=$(cd "$out" && sha256sum -- "${ARTIFACTS[@]}")
if [[ ! -f "$out/SHA256SUMS" || "$(cat "$out/SHA256SUMS")" != "$sums" ]]; then
    printf '%s\n' "$sums" | write_artifact SHA256SUMS
    sums_state="written"
else
    sums_state="unchanged"
fi

elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
elapsed=$(printf '%d.%03d' $((elapsed_ms / 1000)) $((elapsed_ms % 1000)))
printf '\ndemo artifacts in %s (%ss; stand-in copies updated: %d; SHA256SUMS %s)\n' \
    "${out#"$root"/}" "$elapsed" "$copied" "$sums_state"
source_of() {
    case $1 in
    "$ETCD_TGZ") echo "debian etcd-server + etcd-client ${PIN[etcd-server]}" ;;
    "$CNI_TGZ") echo "debian containernetworking-plugins ${PIN[containernetworking-plugins]}" ;;
    "$CONTAINERD_TGZ") echo "debian containerd ${PIN[containerd]}" ;;
    "$KUBECTL") echo "debian kubectl ${PIN[kubectl]}" ;;
    "$RUNC") echo "debian runc ${PIN[runc]}" ;;
    "$PAUSE_IMAGE") echo "OCI image of this workspace's pause (static), manifest ${IMAGE_DIGEST[$1]}" ;;
    "$WEAVE_IMAGE") echo "STAND-IN OCI image (busybox-static + 2 scripts), manifest ${IMAGE_DIGEST[$1]}" ;;
    containerd-config-v2.toml) echo "demo/containerd-config-v2.toml" ;;
    *) echo "STAND-IN (k8s-standin, not the real binary)" ;;
    esac
}
for f in "${ARTIFACTS[@]}"; do
    printf '  %-40s %6s  %s\n' "$f" "$(du -h --apparent-size "$out/$f" | cut -f1)" "$(source_of "$f")"
done
