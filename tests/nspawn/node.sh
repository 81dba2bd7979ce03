#!/usr/bin/env bash
# Boot one "node": a systemd-nspawn container running real systemd as its PID 1, on a host whose PID 1 is not systemd.
#
# Usage:
#   tests/nspawn/node.sh up NAME ROOTFS [extra systemd-nspawn args...]   prints the container's PID 1 (the "leader")
#   tests/nspawn/node.sh reboot NAME                                      reboots a persistent node; prints the new leader
#   tests/nspawn/node.sh down NAME                                        stops it and removes everything `up` made
#   tests/nspawn/node.sh leader NAME                                      prints the leader PID of a running node
#   tests/nspawn/node.sh kill NAME                                        pulls the plug: SIGKILL, no shutdown; keeps its disk
#   tests/nspawn/node.sh start NAME                                       boots a killed persistent node; prints the new leader
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
#   - with K8S_TEST_PERSISTENT=1 a node that can reboot: instead of --volatile=overlay, node.sh mounts an overlayfs
#     at /run/k8s-test/NAME/root (lowerdir the read-only ROOTFS, upperdir and workdir upper/ and work/ next to it)
#     and boots -D that, without --volatile: the node's writes (/etc, /var/lib, …) survive `reboot`, and /run is a
#     fresh tmpfs each boot (nspawn mounts it), as on a real machine;
#   - with K8S_TEST_CONTAINERS=1, the node can run containers itself (see delegate_inside below);
#   - the state dir /run/k8s-test/NAME: `leader` (container PID 1), `nspawn` (systemd-nspawn's PID), `netns`,
#     `cgroups` (one directory a line), `console.log` (every boot appended), `mode` (volatile or persistent),
#     `containers` (K8S_TEST_CONTAINERS), `nspawn-args` and `nspawn-env` (systemd-nspawn's arguments and SYSTEMD_NSPAWN_*
#     environment, NUL-separated, for `reboot`), `exit` ("PID STATUS" of the last systemd-nspawn that exited); persistent:
#     `upper`, `work`, `root` (the overlay) and, with K8S_TEST_CONTAINERS=1, `containerd`.
# `up` waits (bounded by K8S_TEST_BOOT_TIMEOUT, default 30 s) until `systemctl is-system-running` in the container says
# running or degraded and the container's D-Bus socket exists; reach it from the host at
# unix:path=/proc/<leader>/root/run/dbus/system_bus_socket, or run its binaries with `nsenter -t <leader> -a -- CMD`.
# `reboot` (persistent nodes only) runs `systemctl reboot` inside the node — a real shutdown: units stop, their
# ExecStop= commands run — waits (bounded by K8S_TEST_SHUTDOWN_TIMEOUT, default 60 s) for systemd-nspawn to exit with
# status 133 (the container rebooted), then starts systemd-nspawn again with the same arguments in the same netns (what
# the caller wired into it stays, like a machine's NIC) and cgroups, and waits for the boot as `up` does; the
# `leader` and `nspawn` files then name the new processes (`leader` is absent while the node is down). A failed
# `reboot` leaves the state dir for `down`.
# `kill` pulls the plug: SIGKILL to systemd-nspawn and to everything in the node's cgroups at once (cgroup.kill where the
# kernel has it, then SIGKILL to every PID left in any of the node's cgroups until none is left, bounded): nothing
# inside shuts down, no ExecStop= runs, nothing is flushed by the node. It waits until nspawn and every process are
# gone, removes `leader` and `nspawn` and the sub-cgroups of the dead boot, and keeps everything else: the state dir,
# the persistent overlay (upper/, work/, root mounted) and `containerd`, the netns and what the caller wired into it,
# the cgroups. `start` (persistent nodes that are not running: after `kill`, or after a `reboot` that ended in a
# power-off) boots it again as the second half of `reboot` does — the same systemd-nspawn arguments and environment,
# the same netns and cgroups — and prints the new leader. A volatile node cannot be killed and started (its root went
# with nspawn): `kill` refuses it.
# A failed `up` cleans up after itself (it runs `down`). `down` is idempotent and safe after a failed or half `up` or
# `reboot`: SIGTERM to nspawn (the container powers off), bounded wait (K8S_TEST_STOP_TIMEOUT, default 10 s), SIGKILL,
# kill leftovers in the cgroups, rmdir the cgroups depth-first, delete the netns, unmount what is mounted in the state
# dir (the overlay), remove the state dir. `up` on a NAME whose state dir still exists (a run that was killed) first
# runs `down`.
LIB_SCRIPT=node.sh
# shellcheck source=demo/lib.sh
. "$(dirname "$0")/../../demo/lib.sh"

STATE_ROOT=/run/k8s-test
PREFIX=k8s-test-
BOOT_TIMEOUT=${K8S_TEST_BOOT_TIMEOUT:-30}
STOP_TIMEOUT=${K8S_TEST_STOP_TIMEOUT:-10}
SHUTDOWN_TIMEOUT=${K8S_TEST_SHUTDOWN_TIMEOUT:-60}
SELF=$(readlink -f "$0")

usage() {
  sed -n '3,9p' "$SELF" >&2
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
  # (2>/dev/null: it may exit between the checks, e.g. while `reboot` waits for it.)
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "--machine=$name"
}

cgroup_pids() {
  local dir
  for dir in "$@"; do
    [ -d "$dir" ] || continue
    find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done
}

# SIGKILL whatever is still in the node's cgroups (the container's processes if nspawn was killed), bounded.
kill_cgroup_procs() { # name dirs...
  local name=$1 left i
  shift
  for ((i = 0; i < 50; i++)); do
    left=$(cgroup_pids "$@")
    [ -z "$left" ] && break
    # shellcheck disable=SC2086 # one PID a word
    kill -KILL $left 2>/dev/null || true
    sleep 0.1
  done
  [ -z "$left" ] || log "$name: processes still in its cgroups: $(echo "$left" | tr '\n' ' ')"
}

# The exit status of systemd-nspawn PID, as its supervisor (see launch) wrote it; waits up to 2 s for it. Empty if
# unknown.
nspawn_exit_status() { # state pid
  local i line
  for ((i = 0; i < 20; i++)); do
    line=$(cat "$1/exit" 2>/dev/null || true)
    if [ "${line%% *}" = "$2" ]; then
      echo "${line#* }"
      return
    fi
    sleep 0.1
  done
}

# Mount points inside DIR, deepest first.
mounts_under() { # dir
  awk -v prefix="$1/" 'index($5, prefix) == 1 { print $5 }' /proc/self/mountinfo | sort -r
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
    # Its supervisor writes the exit status, then exits: let it finish before the state dir goes.
    nspawn_exit_status "$state" "$pid" >/dev/null
  fi

  kill_cgroup_procs "$name" "${dirs[@]}"
  # What a killed systemd-nspawn leaves on the host (it removes them itself when it exits normally): its per-machine
  # propagation directory and, persistent, the lock file of the node's own root directory.
  rm -rf --one-file-system "/run/systemd/nspawn/propagate/$name"
  if mountpoint -q "$state/root" 2>/dev/null; then
    rm -f "/run/systemd/nspawn/locks/inode-$(stat -c %d:%i "$state/root")"
  fi

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
  # The persistent node's overlay (and anything else mounted in the state dir); never remove files through a mount.
  local mnt
  while read -r mnt; do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" || {
      log "$name: could not unmount $mnt"
      ok=0
    }
  done < <(mounts_under "$state")
  rm -rf --one-file-system "$state" || ok=0
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

# Start systemd-nspawn with the arguments and environment `up` saved in the state dir, in the node's cgroups, and wait
# (bounded by K8S_TEST_BOOT_TIMEOUT) until it has booted. Used by `up` and `reboot`. Writes the state dir's `nspawn`
# and `leader`; sets LEADER.
LEADER=""
launch() { # name
  local name=$1 state=$STATE_ROOT/$1
  local -a dirs args envs
  mapfile -t dirs <"$state/cgroups"
  mapfile -d '' -t args <"$state/nspawn-args"
  mapfile -d '' -t envs <"$state/nspawn-env"
  local containers
  containers=$(cat "$state/containers")
  rm -f "$state/leader" "$state/nspawn"
  local start_us=${EPOCHREALTIME/./}
  # The supervisor (not in the node's cgroups) runs systemd-nspawn, writes its PID, and when it exits writes
  # "PID STATUS" to `exit`: nspawn outlives this script, and `reboot` (another run) needs its exit status.
  (
    (
      for dir in "${dirs[@]}"; do echo "$BASHPID" >"$dir/cgroup.procs"; done
      for v in $(compgen -e); do case $v in SYSTEMD_NSPAWN_*) unset "$v" ;; esac; done
      for kv in "${envs[@]}"; do export "${kv?}"; done
      nspawn_bin=$(type -P systemd-nspawn)
      PATH=$SYSTEM_PATH exec "$nspawn_bin" "${args[@]}"
    ) &
    pid=$!
    echo "$pid" >"$state/nspawn.tmp"
    mv "$state/nspawn.tmp" "$state/nspawn"
    rc=0
    wait "$pid" || rc=$?
    echo "$pid $rc" >"$state/exit"
  ) </dev/null >>"$state/console.log" 2>&1 3>&- &

  local deadline=$((SECONDS + BOOT_TIMEOUT)) nspawn="" leader="" status=""
  local nsenter_bin
  nsenter_bin=$(type -P nsenter)
  while :; do
    if [ -z "$nspawn" ]; then nspawn=$(cat "$state/nspawn" 2>/dev/null || true); fi
    if [ -n "$nspawn" ]; then
      kill -0 "$nspawn" 2>/dev/null ||
        die "$name: systemd-nspawn exited during boot (status $(nspawn_exit_status "$state" "$nspawn")); console log:$(echo; tail -n 30 "$state/console.log")"
    fi
    if [ -n "$nspawn" ] && [ -z "$leader" ]; then
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
  if [ "$containers" = 1 ] && [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ]; then
    delegate_inside "$leader"
  fi
  if [ "$status" = degraded ]; then
    log "$name: booted degraded; failed units: $(with_system_path nsenter -t "$leader" -a -- systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"
  fi
  log "$name: booted in $(((${EPOCHREALTIME/./} - start_us) / 1000)) ms, leader $leader ($status)"
  LEADER=$leader
}

cmd_up() {
  local name=$1 rootfs=$2
  shift 2
  local state=$STATE_ROOT/$name netns=$PREFIX$name
  local persistent=${K8S_TEST_PERSISTENT:-0} containers=${K8S_TEST_CONTAINERS:-0}
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

  local root=$rootfs
  local -a mode_args=(--volatile=overlay)
  if [ "$persistent" = 1 ]; then
    echo persistent >"$state/mode"
    rootfs=$(readlink -f "$rootfs")
    case $rootfs in *[,:]*) die "rootfs path '$rootfs' has a ',' or ':' (overlayfs mount options cannot take it)" ;; esac
    mkdir -p "$state/upper" "$state/work" "$state/root"
    mount -t overlay "$PREFIX$name" -o "lowerdir=$rootfs,upperdir=$state/upper,workdir=$state/work" "$state/root" ||
      die "cannot mount the overlay root of $name at $state/root (lower $rootfs)"
    root=$state/root
    mode_args=()
  else
    echo volatile >"$state/mode"
  fi
  echo "$containers" >"$state/containers"
  local -a container_args=()
  if [ "$containers" = 1 ]; then
    container_args=(--capability=all --system-call-filter=add_key --system-call-filter=keyctl
      --system-call-filter=request_key --system-call-filter=bpf)
    # containerd's overlayfs snapshots cannot sit on the node's own overlay root: an overlay upper directory on
    # overlayfs is refused ("failed to mount rootfs component: invalid argument"). Volatile: a tmpfs; persistent: a
    # directory of the state dir (not on overlayfs), so containerd's content survives a reboot too.
    if [ "$persistent" = 1 ]; then
      mkdir -m 0711 "$state/containerd"
      container_args+=(--bind="$state/containerd:/var/lib/containerd")
    else
      container_args+=(--tmpfs=/var/lib/containerd:mode=0711)
    fi
  fi

  ip netns add "$netns"
  echo "$netns" >"$state/netns"
  ip -n "$netns" link set lo up

  local -a args=(--quiet --boot --directory="$root" --machine="$name" --register=no --keep-unit "${mode_args[@]}"
    --link-journal=no --console=read-only --network-namespace-path="/run/netns/$netns" --resolv-conf=off
    --timezone=off "${container_args[@]}" "$@")
  printf '%s\0' "${args[@]}" >"$state/nspawn-args"
  local v
  : >"$state/nspawn-env"
  for v in $(compgen -e); do
    case $v in SYSTEMD_NSPAWN_*) printf '%s=%s\0' "$v" "${!v}" >>"$state/nspawn-env" ;; esac
  done
  : >"$state/console.log"
  launch "$name"
  UP_DONE=1
  result "$LEADER"
}

cmd_reboot() {
  local name=$1 state=$STATE_ROOT/$1 pid="" leader="" rc i
  step "rebooting node $name" "see its console log: $state/console.log; tests/nspawn/node.sh down $name cleans up"
  [ -d "$state" ] || die "$name: not running (no state dir $state)" "boot it with K8S_TEST_PERSISTENT=1 tests/nspawn/node.sh up"
  [ "$(cat "$state/mode" 2>/dev/null || true)" = persistent ] ||
    die "$name: cannot reboot a node booted without K8S_TEST_PERSISTENT=1: its root is systemd-nspawn's --volatile=overlay tmpfs, which is thrown away when nspawn exits, so it would come back as a new machine, not a rebooted one" \
      "boot it with K8S_TEST_PERSISTENT=1 tests/nspawn/node.sh up ..."
  if [ -f "$state/nspawn" ]; then pid=$(cat "$state/nspawn"); fi
  if [ -f "$state/leader" ]; then leader=$(cat "$state/leader"); fi
  { is_our_nspawn "$pid" "$name" && [ -n "$leader" ]; } ||
    die "$name: not running (systemd-nspawn ${pid:-?} is gone, or no leader)" "tests/nspawn/node.sh down $name, then up"
  local t0=${EPOCHREALTIME/./}
  log "$name: systemctl reboot (leader $leader, systemd-nspawn $pid)"
  # systemd may drop the D-Bus connection once the reboot has begun ("Call to Reboot failed: Connection reset by
  # peer", exit status 1): what counts is whether nspawn exits.
  local said=""
  with_system_path nsenter -t "$leader" -a -- systemctl reboot || said=" (\`systemctl reboot\` failed with status $?)"
  for ((i = 0; i < SHUTDOWN_TIMEOUT * 10; i++)); do
    is_our_nspawn "$pid" "$name" || break
    sleep 0.1
  done
  if is_our_nspawn "$pid" "$name"; then
    die "$name: still shutting down after ${SHUTDOWN_TIMEOUT}s$said (systemd-nspawn $pid runs); console log:$(echo; tail -n 30 "$state/console.log")" \
      "K8S_TEST_SHUTDOWN_TIMEOUT raises the bound; tests/nspawn/node.sh down $name stops it"
  fi
  rm -f "$state/leader"
  rc=$(nspawn_exit_status "$state" "$pid")
  [ "$rc" = 133 ] ||
    die "$name: systemd-nspawn exited with status ${rc:-unknown}, not 133 (a reboot): the node powered off or failed instead of rebooting; not starting it again; console log:$(echo; tail -n 30 "$state/console.log")" \
      "tests/nspawn/node.sh down $name cleans up"
  local down_ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
  log "$name: shut down in $down_ms ms (systemd-nspawn exit status 133: reboot)"

  # A fresh boot in the same cgroups: nothing left in them, and none of the old boot's sub-cgroups.
  local -a dirs
  mapfile -t dirs <"$state/cgroups"
  kill_cgroup_procs "$name" "${dirs[@]}"
  local dir
  for dir in "${dirs[@]}"; do
    [ -d "$dir" ] || die "$name: its cgroup $dir is gone"
    find "$dir" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  printf '\n=== node.sh reboot: %s ===\n' "$(date -u +%FT%TZ)" >>"$state/console.log"
  launch "$name"
  log "$name: rebooted in $(((${EPOCHREALTIME/./} - t0) / 1000)) ms (shutdown $down_ms ms), leader $LEADER"
  result "$LEADER"
}

# Empty the node's cgroups of a dead boot's sub-cgroups (what is left after its processes are gone).
clear_sub_cgroups() { # name
  local -a dirs
  mapfile -t dirs <"$STATE_ROOT/$1/cgroups"
  kill_cgroup_procs "$1" "${dirs[@]}"
  local dir
  for dir in "${dirs[@]}"; do
    [ -d "$dir" ] || die "$1: its cgroup $dir is gone"
    find "$dir" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

cmd_kill() {
  local name=$1 state=$STATE_ROOT/$1 pid="" i
  [ -d "$state" ] || die "$name: no such node (no state dir $state)"
  [ "$(cat "$state/mode" 2>/dev/null || true)" = persistent ] ||
    die "$name: cannot kill and start a node booted without K8S_TEST_PERSISTENT=1 (its root is a tmpfs that goes with systemd-nspawn)"       "tests/nspawn/node.sh down $name"
  if [ -f "$state/nspawn" ]; then pid=$(cat "$state/nspawn"); fi
  is_our_nspawn "$pid" "$name" || die "$name: not running (systemd-nspawn ${pid:-?} is gone)" "tests/nspawn/node.sh start $name"
  local -a dirs
  mapfile -t dirs <"$state/cgroups"
  local t0=${EPOCHREALTIME/./} dir left
  # All at once: nspawn (in the node's cgroups itself) and the container, by the kernel where it can (cgroup v2's
  # cgroup.kill, recursive), and by PID for the rest (cgroup v1 hierarchies).
  kill -KILL "$pid" 2>/dev/null || true
  for dir in "${dirs[@]}"; do
    if [ -f "$dir/cgroup.kill" ]; then echo 1 >"$dir/cgroup.kill" 2>/dev/null || true; fi
  done
  left=$(cgroup_pids "${dirs[@]}")
  # shellcheck disable=SC2086 # one PID a word
  if [ -n "$left" ]; then kill -KILL $left 2>/dev/null || true; fi
  kill_cgroup_procs "$name" "${dirs[@]}"
  for ((i = 0; i < 100; i++)); do
    is_our_nspawn "$pid" "$name" || break
    sleep 0.05
  done
  ! is_our_nspawn "$pid" "$name" || die "$name: systemd-nspawn $pid survived SIGKILL"
  left=$(cgroup_pids "${dirs[@]}")
  [ -z "$left" ] || die "$name: processes still in its cgroups after SIGKILL: $(echo "$left" | tr '\n' ' ')"
  rm -f "$state/leader" "$state/nspawn"
  # The supervisor records "PID 137"; let it finish.
  nspawn_exit_status "$state" "$pid" >/dev/null
  # What a killed systemd-nspawn leaves on the host (as `down`): its propagation directory and its root's lock file.
  rm -rf --one-file-system "/run/systemd/nspawn/propagate/$name"
  if mountpoint -q "$state/root" 2>/dev/null; then
    rm -f "/run/systemd/nspawn/locks/inode-$(stat -c %d:%i "$state/root")"
  fi
  clear_sub_cgroups "$name"
  printf '\n=== node.sh kill: %s ===\n' "$(date -u +%FT%TZ)" >>"$state/console.log"
  log "$name: killed in $(((${EPOCHREALTIME/./} - t0) / 1000)) ms (systemd-nspawn $pid and every process of the node)"
}

cmd_start() {
  local name=$1 state=$STATE_ROOT/$1 pid=""
  step "starting node $name" "see its console log: $state/console.log; tests/nspawn/node.sh down $name cleans up"
  [ -d "$state" ] || die "$name: no such node (no state dir $state)" "boot it with K8S_TEST_PERSISTENT=1 tests/nspawn/node.sh up"
  [ "$(cat "$state/mode" 2>/dev/null || true)" = persistent ] ||
    die "$name: cannot start a node booted without K8S_TEST_PERSISTENT=1" "tests/nspawn/node.sh down $name, then up"
  if [ -f "$state/nspawn" ]; then pid=$(cat "$state/nspawn"); fi
  ! is_our_nspawn "$pid" "$name" || die "$name: already running (systemd-nspawn $pid)" "tests/nspawn/node.sh kill $name first"
  mountpoint -q "$state/root" || die "$name: its overlay root $state/root is not mounted" "tests/nspawn/node.sh down $name, then up"
  [ -e "/run/netns/$(cat "$state/netns")" ] || die "$name: its network namespace $(cat "$state/netns") is gone"
  local t0=${EPOCHREALTIME/./}
  clear_sub_cgroups "$name"
  printf '\n=== node.sh start: %s ===\n' "$(date -u +%FT%TZ)" >>"$state/console.log"
  launch "$name"
  log "$name: started in $(((${EPOCHREALTIME/./} - t0) / 1000)) ms, leader $LEADER"
  result "$LEADER"
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
  reboot)
    [ $# -eq 1 ] || usage
    check_name "$1"
    need_root
    need_commands systemd-nspawn nsenter pgrep timeout
    stdout_is_result
    cmd_reboot "$1"
    ;;
  kill)
    [ $# -eq 1 ] || usage
    check_name "$1"
    need_root
    cmd_kill "$1"
    ;;
  start)
    [ $# -eq 1 ] || usage
    check_name "$1"
    need_root
    need_commands systemd-nspawn nsenter pgrep timeout
    stdout_is_result
    cmd_start "$1"
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
