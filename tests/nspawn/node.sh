#!/usr/bin/env bash
# Boot one "node": a systemd-nspawn container running real systemd as its PID 1, on a host whose PID 1 is not systemd.
#
# Usage:
#   tests/nspawn/node.sh up NAME ROOTFS [extra systemd-nspawn args...]   prints the container's PID 1 (the "leader")
#   tests/nspawn/node.sh down NAME                                        stops it and removes everything `up` made
#   tests/nspawn/node.sh leader NAME                                      prints the leader PID of a running node
#
# What `up` makes, all named after NAME (see ../../../shared/TESTING.md for why each piece is needed):
#   - cgroups /sys/fs/cgroup/{systemd,unified}/k8s-test-NAME (cgroup v1 + unified hybrid; on a pure cgroup v2 host
#     /sys/fs/cgroup/k8s-test-NAME): without its own cgroup, units inside fail with "Failed at step CGROUP";
#   - a network namespace k8s-test-NAME (/run/netns/k8s-test-NAME) with only loopback up; the caller adds veths,
#     bridges and addresses from outside (`ip link set X netns k8s-test-NAME`, `ip -n k8s-test-NAME addr add ...`);
#   - systemd-nspawn -b -D ROOTFS -M NAME --register=no --keep-unit --volatile=overlay (the read-only ROOTFS is shared
#     by all nodes, every write goes to a tmpfs overlay that disappears with the node), --console=read-only with the
#     console written to /run/k8s-test/NAME/console.log; extra args (e.g. --bind=SRC:DST, --bind-ro=..., --setenv=...)
#     are passed through;
#   - with K8S_TEST_CONTAINERS=1, the node can run containers itself (see delegate_inside below);
#   - the state dir /run/k8s-test/NAME: `leader` (container PID 1), `nspawn` (systemd-nspawn's PID), `netns`,
#     `cgroups` (one directory a line), `console.log`.
# `up` waits (bounded by K8S_TEST_BOOT_TIMEOUT, default 30 s) until `systemctl is-system-running` in the container says
# running or degraded and the container's D-Bus socket exists; reach it from the host at
# unix:path=/proc/<leader>/root/run/dbus/system_bus_socket, or run its binaries with `nsenter -t <leader> -a -- CMD`.
# A failed `up` cleans up after itself (it runs `down`). `down` is idempotent and safe after a failed or half `up`:
# SIGTERM to nspawn (the container powers off), bounded wait, SIGKILL, kill leftovers in the cgroups, rmdir the
# cgroups depth-first, delete the netns, remove the state dir. `up` on a NAME whose state dir still exists (a run that
# was killed) first runs `down`.
LIB_SCRIPT=node.sh
# shellcheck source=demo/lib.sh
. "$(dirname "$0")/../../demo/lib.sh"

STATE_ROOT=/run/k8s-test
PREFIX=k8s-test-
BOOT_TIMEOUT=${K8S_TEST_BOOT_TIMEOUT:-30}
STOP_TIMEOUT=${K8S_TEST_STOP_TIMEOUT:-10}
SELF=$(readlink -f "$0")

usage() {
  sed -n '3,6p' "$SELF" >&2
  exit 2
}

check_name() {
  # A hostname label: nspawn's -M, a netns name, a cgroup dir name and a path component all at once.
  [[ "$1" =~ ^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$ ]] ||
    die "invalid node name '$1': use 1-40 of [a-z0-9-], not starting or ending with '-'"
}

# The cgroup directories a node gets: one per hierarchy nspawn/systemd need.
cgroup_dirs() {
  local name=$1
  if [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then
    echo "/sys/fs/cgroup/$PREFIX$name"
    return
  fi
  local h
  for h in systemd unified; do
    if [ -d "/sys/fs/cgroup/$h" ]; then echo "/sys/fs/cgroup/$h/$PREFIX$name"; fi
  done
  if [ "${K8S_TEST_CONTAINERS:-0}" = 1 ]; then
    # Every v1 controller hierarchy, each node dir under this script's own cgroup there (so nothing leaves the
    # cgroup a supervisor put us in).
    for h in $(v1_controllers); do
      echo "/sys/fs/cgroup/$h$(own_cgroup "$h")/$PREFIX$name" | sed 's|//*|/|g'
    done
  fi
}

# The cgroup v1 controller hierarchies mounted on this host (cpu, memory, pids, …), by mount point name.
v1_controllers() {
  awk '$3 == "cgroup" && $2 ~ "^/sys/fs/cgroup/" && $4 !~ /name=/ { sub("^/sys/fs/cgroup/", "", $2); print $2 }' \
    /proc/self/mounts | sort -u
}

# This process's cgroup in the hierarchy mounted at /sys/fs/cgroup/<h> ("" for the root).
own_cgroup() {
  local h=$1 controllers path
  while IFS=: read -r _ controllers path; do
    case ",$controllers," in *",${h%%,*},"*) [ "$path" = / ] || printf '%s' "$path"; return ;; esac
  done </proc/self/cgroup
}

# K8S_TEST_CONTAINERS=1: the node can run containers itself (containerd + runc inside). On a cgroup v1 hybrid host
# nspawn mounts the controller hierarchies read-only in the container; the node gets its own subtree of each (made
# and joined before nspawn starts) and, once booted, fresh read-write mounts of them inside its cgroup namespace,
# rooted at that subtree — so it can make cgroups below its own and nowhere else. runc also needs every capability
# and the keyring and bpf system calls. Measured here (TESTING.md has the failures without each piece).
delegate_inside() { # leader
  local h
  for h in $(v1_controllers); do
    with_system_path nsenter -t "$1" -m -- mount -t cgroup -o "rw,nosuid,nodev,noexec,$h" cgroup "/sys/fs/cgroup/$h" ||
      die "cannot mount the $h controller read-write inside the node"
  done
}

# True when PID is alive and is the systemd-nspawn of node NAME (guards against a reused PID).
is_our_nspawn() {
  local pid=$1 name=$2
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd-nspawn ] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF -- "--machine=$name"
}

cgroup_pids() {
  local dir
  for dir in "$@"; do
    [ -d "$dir" ] || continue
    find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done
}

cmd_down() {
  local name=$1 state=$STATE_ROOT/$1 pid="" netns=$PREFIX$1 i
  local -a dirs
  # The cgroups `up` made (its list survives in the state dir), else what `up` would make now.
  if [ -s "$state/cgroups" ]; then
    mapfile -t dirs <"$state/cgroups"
  else
    mapfile -t dirs < <(K8S_TEST_CONTAINERS=1 cgroup_dirs "$name")
  fi

  if [ -f "$state/nspawn" ]; then pid=$(cat "$state/nspawn"); fi
  if is_our_nspawn "$pid" "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
      is_our_nspawn "$pid" "$name" || break
      sleep 0.1
    done
    if is_our_nspawn "$pid" "$name"; then
      log "$name: systemd-nspawn ($pid) did not stop in ${STOP_TIMEOUT}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi

  # Whatever is left in the node's cgroups (the container's processes if nspawn was killed).
  local left
  for ((i = 0; i < 50; i++)); do
    left=$(cgroup_pids "${dirs[@]}")
    [ -z "$left" ] && break
    # shellcheck disable=SC2086 # one PID a word
    kill -KILL $left 2>/dev/null || true
    sleep 0.1
  done
  [ -z "$left" ] || log "$name: processes still in its cgroups: $(echo "$left" | tr '\n' ' ')"

  local dir ok=1
  for dir in "${dirs[@]}"; do
    [ -d "$dir" ] || continue
    for ((i = 0; i < 20; i++)); do
      find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$dir" ] || break
      sleep 0.1
    done
    if [ -d "$dir" ]; then
      log "$name: could not remove cgroup $dir"
      ok=0
    fi
  done

  if [ -e "/run/netns/$netns" ]; then
    ip netns delete "$netns" || ok=0
  fi
  rm -rf "$state"
  [ "$ok" = 1 ] || exit 1
}

UP_NAME=""
UP_DONE=0
up_failed() {
  if [ "$UP_DONE" = 0 ] && [ -n "$UP_NAME" ]; then
    log "$UP_NAME: up failed; cleaning up"
    cmd_down "$UP_NAME" || true
  fi
}

cmd_up() {
  local name=$1 rootfs=$2
  shift 2
  local state=$STATE_ROOT/$name netns=$PREFIX$name
  [ -d "$rootfs" ] || die "rootfs '$rootfs' is not a directory (make one with tests/nspawn/rootfs.sh)"
  [ -x "$rootfs/lib/systemd/systemd" ] || [ -x "$rootfs/usr/lib/systemd/systemd" ] ||
    die "rootfs '$rootfs' has no systemd (make one with tests/nspawn/rootfs.sh)"
  if [ -e "$state" ]; then
    log "$name: state dir $state exists (an earlier run did not stop it); tearing that node down first"
    cmd_down "$name"
  fi

  mkdir -p "$state"
  # From here on, a failure tears everything down again.
  UP_NAME=$name
  on_exit up_failed
  step "booting node $name" "see its console log: $state/console.log"

  local -a dirs
  mapfile -t dirs < <(cgroup_dirs "$name")
  [ "${#dirs[@]}" -gt 0 ] || die "no usable cgroup hierarchy under /sys/fs/cgroup"
  printf '%s\n' "${dirs[@]}" >"$state/cgroups"
  local dir
  for dir in "${dirs[@]}"; do
    mkdir -p "$dir"
    # A new cpuset cgroup starts with no CPUs and no memory nodes: give it its parent's.
    if [ -f "$dir/cpuset.cpus" ] && [ -z "$(cat "$dir/cpuset.cpus")" ]; then
      cat "$(dirname "$dir")/cpuset.cpus" >"$dir/cpuset.cpus"
      cat "$(dirname "$dir")/cpuset.mems" >"$dir/cpuset.mems"
    fi
  done
  local -a container_args=()
  if [ "${K8S_TEST_CONTAINERS:-0}" = 1 ]; then
    container_args=(--capability=all --system-call-filter=add_key --system-call-filter=keyctl
      --system-call-filter=request_key --system-call-filter=bpf
      # containerd's overlayfs snapshots cannot sit on the node's own overlay root (--volatile=overlay): an overlay
      # upper directory on overlayfs is refused ("failed to mount rootfs component: invalid argument").
      --tmpfs=/var/lib/containerd:mode=0711)
  fi

  ip netns add "$netns"
  echo "$netns" >"$state/netns"
  ip -n "$netns" link set lo up

  local start_us=${EPOCHREALTIME/./}
  (
    for dir in "${dirs[@]}"; do echo "$BASHPID" >"$dir/cgroup.procs"; done
    nspawn_bin=$(type -P systemd-nspawn)
    PATH=$SYSTEM_PATH exec "$nspawn_bin" --quiet --boot --directory="$rootfs" --machine="$name" \
      --register=no --keep-unit --volatile=overlay --link-journal=no --console=read-only \
      --network-namespace-path="/run/netns/$netns" --resolv-conf=off --timezone=off "${container_args[@]}" "$@"
  ) </dev/null >"$state/console.log" 2>&1 3>&- &
  local nspawn=$!
  echo "$nspawn" >"$state/nspawn"

  local deadline=$((SECONDS + BOOT_TIMEOUT)) leader="" status=""
  local nsenter_bin
  nsenter_bin=$(type -P nsenter)
  while :; do
    kill -0 "$nspawn" 2>/dev/null ||
      die "$name: systemd-nspawn exited during boot; console log:$(echo; tail -n 30 "$state/console.log")"
    if [ -z "$leader" ]; then
      leader=$(pgrep -P "$nspawn" -x systemd | head -n 1 || true)
      if [ -n "$leader" ]; then echo "$leader" >"$state/leader"; fi
    fi
    if [ -n "$leader" ]; then
      # --wait blocks until boot finished; bounded by the time left. Before the manager listens it fails at once.
      status=$(PATH=$SYSTEM_PATH timeout "$((deadline - SECONDS > 1 ? deadline - SECONDS : 1))" \
        "$nsenter_bin" -t "$leader" -a -- systemctl is-system-running --wait 2>/dev/null || true)
      case "$status" in
        running | degraded)
          [ -S "/proc/$leader/root/run/dbus/system_bus_socket" ] && break
          ;;
      esac
    fi
    [ "$SECONDS" -lt "$deadline" ] ||
      die "$name: not booted after ${BOOT_TIMEOUT}s (leader=${leader:-none}, is-system-running=${status:-?}); console log:$(echo; tail -n 30 "$state/console.log")"
    sleep 0.2
  done
  if [ "${K8S_TEST_CONTAINERS:-0}" = 1 ] && [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ]; then
    delegate_inside "$leader"
  fi
  UP_DONE=1
  if [ "$status" = degraded ]; then
    log "$name: booted degraded; failed units: $(with_system_path nsenter -t "$leader" -a -- systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"
  fi
  log "$name: booted in $(((${EPOCHREALTIME/./} - start_us) / 1000)) ms, leader $leader ($status)"
  result "$leader"
}

cmd_leader() {
  local state=$STATE_ROOT/$1
  [ -f "$state/leader" ] || die "$1: not running (no $state/leader)"
  cat "$state/leader"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
  up)
    [ $# -ge 2 ] || usage
    check_name "$1"
    need_root
    need_commands systemd-nspawn ip nsenter pgrep timeout
    stdout_is_result
    cmd_up "$@"
    ;;
  down)
    [ $# -eq 1 ] || usage
    check_name "$1"
    cmd_down "$1"
    ;;
  leader)
    [ $# -eq 1 ] || usage
    check_name "$1"
    cmd_leader "$1"
    ;;
  *) usage ;;
esac
