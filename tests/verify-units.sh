#!/usr/bin/env bash
# tests/verify-units.sh: checks every systemd unit and role drop-in of the node content with `systemd-analyze verify`.
# Owned by the node content; run from anywhere (paths are taken from this script's location), and by
# `cargo test -p imagebuilder --test node_content`.
#
# How: units/ and dropins/ are staged into a throw-away root exactly where the image puts them
# (/usr/lib/systemd/system/<unit> and /usr/lib/systemd/system/<unit>.d/role.conf), and systemd 252's
#   systemd-analyze verify --root=ROOT --man=no <unit name>
# loads each unit by name from ROOT's unit search path, the way PID 1 would on the node: the unit file plus its
# drop-ins, parsed and merged, and every ExecStart=/ExecStartPre=/... binary checked for being executable under ROOT.
# --root confines the lookup to ROOT, so ROOT also gets a copy of this host's packaged units
# (sysinit.target, multi-user.target, network-online.target, ...) standing in for the Debian 12 base image; without
# them every service fails on its default dependencies ("Unit sysinit.target not found").
#
# Pass/fail: `systemd-analyze verify` exits 0 on warnings (unknown keys, bad values are "ignoring" warnings), so its
# exit status is not enough. A unit passes only if verify exits 0 AND prints nothing at all. Nothing is filtered
# for the per-unit checks.
#
# Boot checks (two more lines): k8s-agent.service is enabled in ROOT with `systemctl --root enable` (its [Install]
# section at work), then `systemd-analyze verify multi-user.target` builds the boot transaction, once without
# cloud-init and once with stubs carrying the ordering of Debian 12's cloud-init 22.4.2 (cloud-final.service and
# cloud-init.target both After=multi-user.target; the generator's multi-user.target.wants/cloud-init.target link).
# This is what catches an ordering cycle between the agent and cloud-final. Filter, and the only one: in the boot
# checks, output lines that mention none of our units and are not part of a cycle report ("...cycle...",
# "Found dependency on ...") are about the host's own units, and are printed as "note" without failing the check
# (none appear on Debian 12 with systemd 252).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
units_src="$here/units"
dropins_src="$here/dropins"

# Units that belong to a role (no [Install], gated by dropins/<unit>.d/role.conf) and the one enabled unit.
role_units=(
    etcd.service kube-apiserver.service kube-controller-manager.service kube-scheduler.service
    containerd.service weave.service kubelet.service kube-proxy.service
)
agent_unit=k8s-agent.service

# Binaries the image provides (DESIGN.md: /usr/bin from the image layer, containerd's archive brings ctr; modprobe
# from the base distribution's kmod, mkdir from its coreutils). Deliberately a fixed list, not scraped from the units: a unit naming a binary the image does not ship
# (a typo, a /usr/local/bin path) must fail verify.
image_binaries=(
    /usr/bin/etcd /usr/bin/kube-apiserver /usr/bin/kube-controller-manager /usr/bin/kube-scheduler
    /usr/bin/kubelet /usr/bin/kube-proxy /usr/bin/containerd /usr/bin/ctr /usr/bin/k8s-agent
    /usr/sbin/modprobe /usr/bin/mkdir
)

if ! command -v systemd-analyze >/dev/null || ! command -v systemctl >/dev/null; then
    echo "verify-units: systemd-analyze and systemctl are required (Debian: apt-get install systemd)" >&2
    exit 1
fi

base_units=""
for d in /usr/lib/systemd/system /lib/systemd/system; do
    if [[ -f "$d/multi-user.target" && -f "$d/sysinit.target" ]]; then
        base_units="$d"
        break
    fi
done
if [[ -z "$base_units" ]]; then
    echo "verify-units: no systemd unit directory with multi-user.target on this host" >&2
    exit 1
fi

tmp="$(mktemp -d -t verify-units.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

# stage_root DIR: a merged-/usr root (like Debian 12) with the host's units, then ours on top.
stage_root() {
    local root="$1" unitdir="$1/usr/lib/systemd/system" u b
    mkdir -p "$unitdir" "$root/usr/bin" "$root/usr/sbin" "$root/etc/systemd/system"
    ln -s usr/lib "$root/lib"
    ln -s usr/bin "$root/bin"
    ln -s usr/sbin "$root/sbin"
    cp -a "$base_units/." "$unitdir/"
    # The host must not leak a unit or drop-in of the same name into what we check.
    for u in "$units_src"/*.service; do
        u="$(basename "$u")"
        rm -rf "${unitdir:?}/$u" "$unitdir/$u.d" "$unitdir/$u.wants" "$unitdir/$u.requires"
        install -m 0644 "$units_src/$u" "$unitdir/$u"
    done
    for d in "$dropins_src"/*.service.d; do
        mkdir -p "$unitdir/$(basename "$d")"
        install -m 0644 "$d"/*.conf "$unitdir/$(basename "$d")/"
    done
    # Placeholders exist only for the verifier, which checks that each ExecStart= binary is an executable file
    # under the root; they are never run and never part of the image.
    for b in "${image_binaries[@]}"; do
        printf '#!/bin/sh\n# placeholder for systemd-analyze verify\nexit 0\n' >"$root$b"
        chmod 0755 "$root$b"
    done
}

# stage_cloud_init ROOT: stubs with the ordering of Debian 12's cloud-init (cloud-init 22.4.2-1+deb12u4,
# lib/systemd/system/cloud-final.service and cloud-init.target; only the [Unit]/[Install] lines that order them).
stage_cloud_init() {
    local root="$1" unitdir="$1/usr/lib/systemd/system"
    cat >"$unitdir/cloud-final.service" <<'EOF'
[Unit]
Description=Execute cloud user/final scripts (stub for verify-units.sh)
After=network-online.target cloud-config.service rc-local.service
After=multi-user.target
Before=apt-daily.service
Wants=network-online.target cloud-config.service

[Service]
Type=oneshot
ExecStart=/usr/bin/cloud-init modules --mode=final
RemainAfterExit=yes

[Install]
WantedBy=cloud-init.target
EOF
    cat >"$unitdir/cloud-init.target" <<'EOF'
[Unit]
Description=Cloud-init target (stub for verify-units.sh)
After=multi-user.target
EOF
    printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/cloud-init"
    chmod 0755 "$root/usr/bin/cloud-init"
    systemctl --root="$root" --quiet enable cloud-final.service
    # cloud-init-generator links cloud-init.target into multi-user.target.wants under /run/systemd/generator.early
    # at boot; verify does not run generators, so the same link goes into /etc.
    mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
    ln -s /usr/lib/systemd/system/cloud-init.target "$root/etc/systemd/system/multi-user.target.wants/cloud-init.target"
}

passed=0
failed=0

report() { # report STATUS LABEL [OUTPUT]
    if [[ "$1" == ok ]]; then
        passed=$((passed + 1))
        printf 'ok     %s\n' "$2"
    else
        failed=$((failed + 1))
        printf 'FAIL   %s\n' "$2"
    fi
    if [[ -n "${3:-}" ]]; then
        # shellcheck disable=SC2001 # prefix every line of a multi-line message
        sed 's/^/       | /' <<<"$3"
    fi
}

root="$tmp/root"
stage_root "$root"

# 1. Every unit, by name, with its drop-ins.
for path in "$units_src"/*.service; do
    unit="$(basename "$path")"
    label="$unit"
    if [[ -d "$dropins_src/$unit.d" ]]; then
        label="$unit + $(cd "$dropins_src" && printf '%s ' "$unit.d"/*.conf)"
        label="${label% }"
    fi
    if [[ " ${role_units[*]} " == *" $unit "* && ! -f "$dropins_src/$unit.d/role.conf" ]]; then
        report FAIL "$label" "role unit without dropins/$unit.d/role.conf"
        continue
    fi
    rc=0
    out="$(systemd-analyze verify --root="$root" --man=no "$unit" 2>&1)" || rc=$?
    if [[ $rc -ne 0 || -n "$out" ]]; then
        report FAIL "$label (verify exit $rc)" "$out"
        continue
    fi
    # The drop-in must be read by systemd's own lookup for this unit, not just exist on disk: append a canary key
    # to the staged copy, expect verify to complain about exactly that file and line, then restore the copy.
    missing=""
    if [[ -d "$dropins_src/$unit.d" ]]; then
        for conf in "$dropins_src/$unit.d"/*.conf; do
            staged="$root/usr/lib/systemd/system/$unit.d/$(basename "$conf")"
            printf '\nVerifyUnitsCanary=1\n' >>"$staged"
            canary_out="$(systemd-analyze verify --root="$root" --man=no "$unit" 2>&1)" || true
            install -m 0644 "$conf" "$staged"
            if ! grep -q "/$unit.d/$(basename "$conf"):[0-9]*: Unknown key 'VerifyUnitsCanary'" <<<"$canary_out"; then
                missing+="drop-in $unit.d/$(basename "$conf") is not applied to $unit by systemd's lookup"$'\n'
            fi
        done
    fi
    if [[ -n "$missing" ]]; then
        report FAIL "$label" "${missing%$'\n'}"
    else
        report ok "$label"
    fi
done

# 2. Boot transaction with k8s-agent.service enabled, without and with cloud-init.
boot_check() { # boot_check ROOT LABEL
    local root="$1" label="$2" out rc=0 line problems="" notes="" ours
    ours="$(cd "$units_src" && printf '%s|' *.service)"
    ours="${ours%|}"
    ours="${ours//./\\.}"
    if ! out="$(systemctl --root="$root" --quiet enable "$agent_unit" 2>&1)"; then
        report FAIL "$label" "systemctl --root enable $agent_unit failed: $out"
        return
    fi
    if [[ ! -L "$root/etc/systemd/system/multi-user.target.wants/$agent_unit" ]]; then
        report FAIL "$label" "enabling $agent_unit did not link it into multi-user.target.wants"
        return
    fi
    out="$(systemd-analyze verify --root="$root" --man=no multi-user.target 2>&1)" || rc=$?
    while IFS= read -r line; do
        [[ -z "$line" ]] && continue
        if grep -Eqi "cycle|Found dependency on|$ours" <<<"$line"; then
            problems+="$line"$'\n'
        else
            notes+="note (host unit, ignored): $line"$'\n'
        fi
    done <<<"$out"
    if [[ $rc -ne 0 || -n "$problems" ]]; then
        problems+="$notes"
        report FAIL "$label (verify exit $rc)" "${problems%$'\n'}"
    else
        report ok "$label" "${notes%$'\n'}"
    fi
}

boot_check "$root" "boot: multi-user.target with $agent_unit enabled, no cloud-init"

root_ci="$tmp/root-cloud-init"
stage_root "$root_ci"
stage_cloud_init "$root_ci"
boot_check "$root_ci" "boot: multi-user.target with $agent_unit enabled, cloud-init (Debian 12 ordering), no cycle"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
