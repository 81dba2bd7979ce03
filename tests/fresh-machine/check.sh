#!/usr/bin/env bash
# tests/fresh-machine/check.sh [--tier main] -- COMMAND...: run COMMAND as a fresh machine would, with a PATH that
# holds ONLY the programs of
#   - a minimal Debian: the installed packages of Priority `required` (what debootstrap --variant=minbase installs),
#   - the packages of the tier in demo/debian-packages.txt (default `main`: what ./demo/up.sh installs itself) and
#     what apt installs with them (their Depends and Pre-Depends, recursively),
#   - the Rust toolchain's directory (cargo, rustc: rustup's proxies) and the Go toolchain's (go: /usr/local/go/bin on
#     these machines; both come with the machine, not from Debian),
# so that a script of the main command calling a program whose package is not in the list fails here with
# "command not found", and this check fails with a message naming the program. It needs the packages installed
# (.ci/run installs them first); a package that is installed but not listed is NOT visible in the jail.
#
# Programs that spawn programs of their own (apt-get, debootstrap, chroot, systemd-nspawn, nsenter into a node) are
# run by the scripts through `with_system_path` (demo/lib.sh): the tool itself must be in the jail, what it spawns is
# its package's business. Exit status: COMMAND's, or 3 when a program outside the list was used.
LIB_SCRIPT=fresh-machine-check
# shellcheck source=demo/lib.sh
. "$(dirname "$0")/../../demo/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)

tier=main
if [ "${1:-}" = --tier ]; then tier=$2; shift 2; fi
[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || die "usage: tests/fresh-machine/check.sh [--tier main] -- COMMAND..."

step "listing the programs of a minimal Debian + the $tier packages"
cargo_bin=$(dirname "$(type -P cargo)") || die "cargo is not on PATH" "install the Rust toolchain (rustup)"
go_bin=$(dirname "$(PATH=$PATH:/usr/local/go/bin type -P go)") || die "go is not on PATH" "install Go (go1.26.8)"
jail=$(mktemp -d "${TMPDIR:-/tmp}/fresh-path.XXXXXX")
on_exit "rm -rf '$jail'"
required=$(dpkg-query -W -f='${Package} ${Priority} ${db:Status-Status}\n' | awk '$2 == "required" && $3 == "installed" { print $1 }')
listed=$("$root/demo/ensure-packages.sh" --list "$tier")
for p in $listed; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed ||
    die "$p (tier $tier) is not installed" "run demo/ensure-packages.sh $tier first"
done
# What apt installs with the listed packages (Depends and Pre-Depends, recursively; not Recommends: the project
# installs with --no-install-recommends) comes with them: python3's /usr/bin/python3 is python3-minimal's.
# shellcheck disable=SC2086 # one package a word
closure=$(apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances $listed 2>/dev/null | grep -v -e '^ ' -e '^<' | sed 's/:.*//')
mapfile -t packages < <(printf '%s\n' "$required" "$closure" | sort -u)
# Every path the packages own, with the directory canonicalised (/bin → /usr/bin on a merged-/usr system).
owned=$jail/.owned
{ dpkg-query -L "${packages[@]}" 2>/dev/null || true; } | while read -r f; do
  case $f in /bin/* | /sbin/* | /usr/bin/* | /usr/sbin/* | /usr/local/bin/* | /usr/local/sbin/*)
    printf '%s/%s\n' "$(readlink -f "$(dirname "$f")")" "$(basename "$f")" ;;
  esac
done | sort -u >"$owned"
# The host's programs that belong to those packages; alternatives (/usr/bin/awk → /etc/alternatives/awk → mawk)
# count for the package of their final target.
count=0
for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
  [ -d "$dir" ] || continue
  for f in "$dir"/*; do
    name=$(basename "$f")
    if [ ! -x "$f" ] || [ -d "$f" ] || [ -e "$jail/$name" ]; then continue; fi
    canon="$(readlink -f "$dir")/$name"
    if ! grep -qxF -- "$canon" "$owned"; then
      case $(readlink "$f" 2>/dev/null) in
        /etc/alternatives/*) grep -qxF -- "$(readlink -f "$f")" "$owned" || continue ;;
        *) continue ;;
      esac
    fi
    ln -s "$f" "$jail/$name"
    count=$((count + 1))
  done
done
log "PATH holds $count programs of ${#packages[@]} packages (minimal Debian + tier $tier), $cargo_bin and $go_bin"

step "running $* with that PATH"
out=$jail/.output
rc=0
PATH="$jail:$cargo_bin:$go_bin" K8S_FRESH_PATH_CHECK=1 "$@" 2>&1 | tee "$out" || rc=${PIPESTATUS[0]}
notfound=$({
  grep -oE '[A-Za-z0-9_.+-]+: command not found' "$out" | sed -E 's/: command not found//'
  sed -nE 's/.*missing program\(s\): (.*) \(not found\).*/\1/p' "$out" | tr ' ' '\n'
} | sort -u | tr '\n' ' ' || true)
if [ -n "$notfound" ]; then
  log "error: the main command used program(s) outside demo/debian-packages.txt ($tier) and a minimal Debian: $notfound"
  log "hint: add the Debian package that provides each (dpkg -S \$(command -v PROGRAM)) to demo/debian-packages.txt"
  exit 3
fi
exit "$rc"
