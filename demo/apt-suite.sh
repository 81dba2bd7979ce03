#!/usr/bin/env bash
# demo/apt-suite.sh SUITE COMMAND...: apt-get / apt-cache against ANOTHER Debian suite's package lists (e.g. trixie on
# a bookworm host) kept in a private directory, without touching the host's apt sources or state:
#
#   demo/apt-suite.sh trixie update                      fetch trixie's lists into $K8S_TEST_CACHE/apt-trixie
#   demo/apt-suite.sh trixie policy PKG...               apt-cache policy (the candidate is the suite's version)
#   demo/apt-suite.sh trixie madison PKG...              apt-cache madison (every version the suite offers)
#   demo/apt-suite.sh trixie download DIR PKG[=VER]...   apt-get download the .debs into DIR (nothing installed)
#   demo/apt-suite.sh trixie extract DIR PKG=VER         download + dpkg-deb -x into DIR/PKG (prints DIR/PKG)
#   demo/apt-suite.sh trixie closure PKG...              the packages PKG... need at run time (Depends and
#                                                        Pre-Depends, recursively; one name=version per line)
#
# Lists are fetched on first use and when older than a day. Mirror: K8S_TEST_MIRROR or deb.debian.org; signatures are
# checked with the host's debian-archive-keyring. Needs apt-get, apt-cache and dpkg-deb (a minimal Debian).
LIB_SCRIPT=apt-suite
# shellcheck source=demo/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -ge 2 ] || die "usage: demo/apt-suite.sh SUITE update|policy|download|extract ..."
SUITE=$1
CMD=$2
shift 2
[[ "$SUITE" =~ ^[a-z]+(-[a-z]+)?$ ]] || die "bad suite name '$SUITE'" "a Debian suite such as trixie"
CACHE=${K8S_TEST_CACHE:-/var/cache/k8s-image-test}
STATE=$CACHE/apt-$SUITE
MIRROR=${K8S_TEST_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
need_commands apt-get apt-cache dpkg-deb

mkdir -p "$STATE/lists/partial" "$STATE/cache/archives/partial"
# An empty dpkg status: what the host has installed (from any repository) must not shadow the suite's versions.
[ -f "$STATE/status" ] || : >"$STATE/status"
printf 'deb [signed-by=%s] %s %s main\n' "$KEYRING" "$MIRROR" "$SUITE" >"$STATE/sources.list"
APT=(-o "Dir::Etc::sourcelist=$STATE/sources.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$STATE/lists"
  -o "Dir::Cache=$STATE/cache" -o "Dir::State::status=$STATE/status" -o "APT::Get::List-Cleanup=0")

update() {
  step "apt-get update for $SUITE (private lists in $STATE)" "it needs the mirror $MIRROR and the keyring $KEYRING"
  with_system_path apt-get "${APT[@]}" update -qq
  touch "$STATE/.updated"
}
fresh=$(find "$STATE/.updated" -mmin -1440 2>/dev/null || true)
if [ "$CMD" = update ] || [ -z "$fresh" ]; then update; fi

case $CMD in
  update) ;;
  policy) with_system_path apt-cache "${APT[@]}" policy "$@" ;;
  madison) with_system_path apt-cache "${APT[@]}" madison "$@" ;;
  closure)
    with_system_path apt-cache "${APT[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances "$@" | grep -v '^ ' | grep -v '^<' | sort -u |
      while read -r pkg; do
        ver=$(with_system_path apt-cache "${APT[@]}" policy "$pkg" | awk '/Candidate:/ { print $2 }')
        [ -z "$ver" ] || [ "$ver" = "(none)" ] || echo "$pkg=$ver"
      done
    ;;
  download | extract)
    [ $# -ge 2 ] || die "usage: demo/apt-suite.sh $SUITE $CMD DIR PKG[=VER]..."
    dir=$1
    shift
    mkdir -p "$dir"
    [ "$(id -u)" != 0 ] || ! id -u _apt >/dev/null 2>&1 || chown _apt "$dir"
    step "apt-get download $* from $SUITE" "apt-get's message is above; a pinned version may have left the suite"
    (cd "$dir" && with_system_path apt-get "${APT[@]}" download -qq "$@")
    if [ "$CMD" = extract ]; then
      [ $# -eq 1 ] || die "extract takes one package"
      pkg=${1%%=*}
      deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
      [ -n "$deb" ] || die "apt-get download left no .deb for $pkg in $dir"
      rm -rf "$dir/$pkg.tmp"
      dpkg-deb -x "$deb" "$dir/$pkg.tmp"
      rm -rf "${dir:?}/$pkg"
      mv "$dir/$pkg.tmp" "$dir/$pkg"
      echo "$dir/$pkg"
    fi
    ;;
  *) die "unknown command '$CMD'" "update, policy, madison, closure, download or extract" ;;
esac
