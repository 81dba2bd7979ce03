# shellcheck shell=bash
# demo/lib.sh: sourced by the scripts of the main command (demo/*.sh, tests/nspawn/*.sh) and the Packer test scripts.
# It makes them fail fast and fail once:
#
#   - `set -Eeuo pipefail` + `inherit_errexit`: the first failing command stops the script, also inside functions
#     and `$(...)`;
#   - the ERR trap prints ONE message for the whole run: the step (set with `step "what" "hint"`), the command that
#     failed, its exit status and file:line, and the hint. Scripts started by a script share a marker file
#     ($K8S_FAIL_MARK), so only the innermost script's failure is reported and the callers exit quietly with its
#     status. Inside a subshell (`$(...)`, `( … ) &`) a failing command only ends the subshell: the script
#     reports the command that ran it. A child script whose failure is expected runs as `tolerate CMD…` (its
#     message, if any, does not silence the caller's);
#   - `on_exit CMD`: cleanups run when the script exits, last registered first (half-made directories, mounts);
#   - `die "what" ["hint"]`: the same one message for failures found by a check instead of a command.
#
# Scripts that return a value on stdout call `stdout_is_result` first: from then on stdout is stderr, and only
# `result VALUE` writes to the real stdout, so a tool's progress line can never end up in a caller's `$(...)`.
#
# Tools get the system's PATH where they spawn programs of their own (apt-get, debootstrap, chroot, nspawn, nsenter
# into a node): `with_system_path TOOL ARGS...` finds TOOL on the caller's PATH (so the fresh-machine check sees it)
# and runs it with SYSTEM_PATH. See tests/fresh-machine/check.sh.

set -Eeuo pipefail
shopt -s inherit_errexit

LIB_SCRIPT=${LIB_SCRIPT:-$(basename "$0")}
STEP="checking what it needs"
STEP_HINT=""
SYSTEM_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
_lib_exit_cmds=()

# The outermost script owns the marker (removed at its exit); nested scripts inherit it.
if [ -z "${K8S_FAIL_MARK:-}" ]; then
  K8S_FAIL_MARK=$(mktemp "${TMPDIR:-/tmp}/k8s-fail.XXXXXX")
  rm -f "$K8S_FAIL_MARK"
  export K8S_FAIL_MARK
  _lib_owns_mark=1
else
  _lib_owns_mark=0
fi

log() { echo "$LIB_SCRIPT: $*" >&2; }

# step "what this part does" ["what to do when it fails"]
step() {
  STEP=$1
  STEP_HINT=${2:-}
}

_lib_report() { # message hint
  if [ -e "$K8S_FAIL_MARK" ]; then return 0; fi
  : >"$K8S_FAIL_MARK" 2>/dev/null || true
  log "error: $STEP: $1"
  if [ -n "${2:-}" ]; then log "hint: $2"; fi
}

die() { # message [hint]
  _lib_report "$1" "${2:-$STEP_HINT}"
  exit 1
}

_lib_on_err() {
  local rc=$? line=$1 cmd=$2 src=${3:-$0}
  trap - ERR
  # In a subshell: end it; the script reports the command that ran it.
  if [ "$BASH_SUBSHELL" -gt 0 ]; then exit "$rc"; fi
  case $cmd in *$'\n'*) cmd="${cmd%%$'\n'*} …" ;; esac
  _lib_report "\`$cmd\` failed with exit status $rc (${src#"$PWD"/}:$line)" "$STEP_HINT"
  exit "$rc"
}
trap '_lib_on_err "$LINENO" "$BASH_COMMAND" "${BASH_SOURCE[0]}"' ERR

_lib_on_exit() {
  local rc=$? i
  trap - ERR
  set +e
  # shellcheck disable=SC2034 # read by the cleanups registered with on_exit
  LIB_EXIT_STATUS=$rc
  for ((i = ${#_lib_exit_cmds[@]} - 1; i >= 0; i--)); do eval "${_lib_exit_cmds[$i]}"; done
  if [ "$_lib_owns_mark" = 1 ]; then rm -f "$K8S_FAIL_MARK"; fi
  exit "$rc"
}
trap _lib_on_exit EXIT

# on_exit 'command string' — run at exit (success or failure), last registered first; $LIB_EXIT_STATUS is the
# script's exit status then.
on_exit() { _lib_exit_cmds+=("$1"); }
# Drop the last registered cleanup (it was for a temporary that has been renamed into place).
on_exit_pop() { unset '_lib_exit_cmds[${#_lib_exit_cmds[@]}-1]'; }

# tolerate CMD...: run a command (usually another script of this project) whose failure the caller accepts; a
# failure message it prints does not mark the run as reported.
tolerate() {
  local mark
  mark=$(mktemp -u "${TMPDIR:-/tmp}/k8s-fail-tolerated.XXXXXX")
  K8S_FAIL_MARK=$mark "$@" || true
  rm -f "$mark"
}

# stdout_is_result: from here on, stdout is stderr; `result` writes to the real stdout (fd 3).
# Background children must not inherit fd 3 (a caller's `$(...)` would wait for them): start them with `3>&-`.
stdout_is_result() { exec 3>&1 1>&2; }
result() { printf '%s\n' "$*" >&3; }

# need_commands CMD...: stop before doing anything when a program is missing, naming the package list.
need_commands() {
  local c missing=()
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    die "missing program(s): ${missing[*]} (not found)" \
      "run ./demo/ensure-packages.sh (as root) — it installs the Debian packages of demo/debian-packages.txt"
  fi
}

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root" "network namespaces, systemd-nspawn, cgroups, chroot and apt-get need root: use sudo"
}

# with_system_path TOOL ARGS...: TOOL from the caller's PATH, run with the system's PATH for what it spawns.
with_system_path() {
  local tool
  tool=$(type -P "$1") || die "$1 is not installed" "run ./demo/ensure-packages.sh"
  shift
  PATH=$SYSTEM_PATH "$tool" "$@"
}

# Remove a directory tree a failed step left, unmounting what was mounted inside it first (deepest first), never
# crossing into another file system.
remove_tree() {
  local dir=$1 mnt
  [ -e "$dir" ] || return 0
  awk -v prefix="$dir/" 'index($5, prefix) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
  rm -rf --one-file-system "$dir"
}

ms_now() { date +%s%3N; }
