#!/usr/bin/env bash
# bench/seeds-provisioner.sh: the baseline for bench/layer.sh, a shell provisioner that does what the seeds' scripts
# did, written the way a careful shell author would write it (no sleeps, no needless work), over the download
# artifact set bench/layer.sh makes from the demo layer (bench/layer-artifacts.py: the programs manifests/demo.toml
# builds, packed the way their upstream releases publish them, plus demo/artifacts/'s images and containerd config):
#
#   bench/seeds-provisioner.sh SRC OUT.tar.gz [AGENT_BIN]
#   bench/seeds-provisioner.sh --list      (the artifact file names, one a line)
#
#   SRC        where the artifacts and their published SHA256SUMS are: a directory (or file:///dir/), copied with
#              cp, or an http(s):// base URL, downloaded with one curl invocation (-fsSL, connection reused)
#   OUT        the layer to write (tar | gzip -6 -n, the level imagebuilder uses)
#   AGENT_BIN  the k8s-agent binary to install as /usr/bin/k8s-agent (default target/release/k8s-agent)
#
# Steps: fetch every artifact and SHA256SUMS, `sha256sum -c` the artifacts against the published sums (every name
# must be listed), install single files with `install -m`, archive members with `tar -x` into their target
# directories, then the node content (units/, dropins/, sysctl.d/, modules-load.d/, files/ with the same node paths
# and modes as imagebuilder; README*/dotfiles skipped; `systemctl enable`-style WantedBy= links), the agent, and
# finally `tar c | gzip -6` of the staged tree (sorted, 0:0, fixed mtime: the flags cost nothing and make the
# output comparable). Like the seeds, it writes no lock, no SBOM and runs no checks.
#
# The artifact list below mirrors the manifest bench/layer.sh generates from manifests/demo.toml (a seeds script
# hard-codes it, versions in the names; bench/layer.sh compares it with --list before measuring); bench/layer.sh
# checks that the tree this script produces has the same files, modes and bytes as imagebuilder's layer (minus
# /usr/share/k8s-image/, which only imagebuilder writes).
#
# Prints one line "phases fetch=S verify=S install=S pack=S" (seconds) on stdout.
set -euo pipefail

# name|install spec: "file PATH MODE" or "tar DIR MODE STRIP MEMBER..."
ARTIFACTS=(
    "kube-apiserver|file /usr/bin/kube-apiserver 0755"
    "kube-controller-manager|file /usr/bin/kube-controller-manager 0755"
    "kube-scheduler|file /usr/bin/kube-scheduler 0755"
    "kube-proxy|file /usr/bin/kube-proxy 0755"
    "kubeadm|file /usr/bin/kubeadm 0755"
    "kubectl|file /usr/bin/kubectl 0755"
    "kubelet|file /usr/bin/kubelet 0755"
    "etcd-v3.7.3-linux-amd64.tar.gz|tar /usr/bin 0755 1 etcd-v3.7.3-linux-amd64/etcd etcd-v3.7.3-linux-amd64/etcdctl"
    "containerd-2.4.2-linux-amd64.tar.gz|tar /usr/bin 0755 1 bin/containerd bin/ctr bin/containerd-shim-runc-v2"
    "runc.amd64|file /usr/bin/runc 0755"
    "crictl|file /usr/bin/crictl 0755"
    "cni-plugins-linux-amd64-v1.10.0.tgz|tar /opt/cni/bin 0755 0 ./loopback ./bridge ./host-local ./portmap"
    # the container images, copied as they are (a shell script cannot check a manifest digest inside an archive)
    "pause-3.10.1.oci.tar|file /usr/share/k8s-image/images/pause.tar 0644"
    "weave-kube-standin-2.8.1.oci.tar|file /usr/share/k8s-image/images/weave-kube.tar 0644"
    # installed after files/, so it replaces files/etc/containerd/config.toml (demo.toml: replace_content = true)
    "containerd-config.toml|file /etc/containerd/config.toml 0644"
)
if [ "${1:-}" = --list ]; then
    for a in "${ARTIFACTS[@]}"; do printf '%s\n' "${a%%|*}"; done
    exit 0
fi
[ $# -ge 2 ] || {
    echo "usage: $0 SRC OUT.tar.gz [AGENT_BIN] | --list" >&2
    exit 2
}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=${1%/}
out=$2
agent_bin=${3:-$root/target/release/k8s-agent}
mtime=${SOURCE_DATE_EPOCH:-1767225600}

now() { printf '%s' "$EPOCHREALTIME"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dl=$work/dl
stage=$work/root
mkdir -p "$dl" "$stage"

# --- fetch ---------------------------------------------------------------------------------------------------------
t0=$(now)
names=()
for a in "${ARTIFACTS[@]}"; do names+=("${a%%|*}"); done
case $src in
http://* | https://*)
    urls=("$src/SHA256SUMS")
    for n in "${names[@]}"; do urls+=("$src/$n"); done
    (cd "$dl" && curl -fsSL --remote-name-all "${urls[@]}")
    ;;
*)
    dir=${src#file://}
    cp -- "$dir/SHA256SUMS" "${names[@]/#/$dir/}" "$dl/"
    ;;
esac

# --- verify against the published sums -----------------------------------------------------------------------------
t1=$(now)
for n in "${names[@]}"; do
    grep -qE "^[0-9a-f]{64} [ *]$n\$" "$dl/SHA256SUMS" || {
        echo "seeds-provisioner: $n is not listed in SHA256SUMS" >&2
        exit 1
    }
done
(cd "$dl" && sha256sum -c --quiet --strict --ignore-missing SHA256SUMS)

# --- install: artifacts, node content, agent -------------------------------------------------------------------------
t2=$(now)
content() { # SRC_DIR DEST_DIR: every file below SRC_DIR, mode 0755 if executable else 0644
    local from=$1 to=$2 f rel mode
    [ -d "$from" ] || return 0
    while IFS= read -r -d '' f; do
        rel=${f#"$from"/}
        mode=0644
        [ -x "$f" ] && mode=0755
        install -D -m "$mode" "$f" "$stage$to/$rel"
    done < <(find "$from" -type f ! -name '.*' ! -name 'README*' -print0)
}
content "$root/units" /usr/lib/systemd/system
content "$root/dropins" /usr/lib/systemd/system
content "$root/sysctl.d" /usr/lib/sysctl.d
content "$root/modules-load.d" /usr/lib/modules-load.d
content "$root/files" ""
for unit in "$root"/units/*.service; do # what `systemctl enable` links: WantedBy= of [Install]
    u=$(basename "$unit")
    # shellcheck disable=SC2013 # WantedBy= takes a space-separated list: splitting into words is meant
    for target in $(awk '/^\[/ { s = ($0 == "[Install]") } s && /^WantedBy=/ { sub(/^WantedBy=/, ""); print }' "$unit"); do
        mkdir -p "$stage/etc/systemd/system/$target.wants"
        ln -s "/usr/lib/systemd/system/$u" "$stage/etc/systemd/system/$target.wants/$u"
    done
done
for a in "${ARTIFACTS[@]}"; do
    n=${a%%|*}
    read -r -a spec <<<"${a#*|}"
    case ${spec[0]} in
    file) install -D -m "${spec[2]}" "$dl/$n" "$stage${spec[1]}" ;;
    tar)
        mkdir -p "$stage${spec[1]}"
        tar -xzf "$dl/$n" -C "$stage${spec[1]}" --no-same-owner --strip-components="${spec[3]}" "${spec[@]:4}"
        for m in "${spec[@]:4}"; do chmod "${spec[2]}" "$stage${spec[1]}/${m##*/}"; done
        ;;
    esac
done
install -D -m 0755 "$agent_bin" "$stage/usr/bin/k8s-agent"

# --- pack ----------------------------------------------------------------------------------------------------------
t3=$(now)
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" -cf - . | gzip -6 -n >"$out"
t4=$(now)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v e="$t4" \
    'BEGIN { printf "phases fetch=%.3f verify=%.3f install=%.3f pack=%.3f\n", b - a, c - b, d - c, e - d }'
