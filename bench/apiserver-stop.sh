#!/usr/bin/env bash
# bench/apiserver-stop.sh: how long a master takes to stop kube-apiserver, and to shut down for a reboot, with the
# image's `--shutdown-send-retry-after=true` beside kube-apiserver's default, in the same run on the same master.
#
#   bench/apiserver-stop.sh [N]    N (default 2) of each: `systemctl stop kube-apiserver`, and `systemctl reboot`
#                                  of the master (tests/nspawn/node.sh's "shut down in … ms")
#
# A local cluster of 1 master + 1 minion (demo/local-cluster.sh up 1). Before each measure kube-apiserver runs for
# 20 s, so that the clients that keep watches open (the minion's kubelet, the controller manager, the scheduler) are
# connected, as on any working master. The baseline is the default, set back for the measure only by a runtime
# drop-in in the master's /run (`KUBE_APISERVER_ARGS=--shutdown-send-retry-after=false`, the last flag wins); the
# image's unit is not changed. Prints one table. Needs root and the demo layer (./demo/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
LC=demo/local-cluster.sh
N=${1:-2}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
[ -f "${LAYER:-out/demo/layer.tar.gz}" ] || ./demo/build.sh
# shellcheck source=tests/local/lib.sh
. tests/local/lib.sh
trap '$LC down >/dev/null 2>&1 || true' EXIT
$LC down >/dev/null 2>&1 || true
work=$(mktemp -d)
$LC up 1 >"$work/up.log" 2>&1 || { tail -n 30 "$work/up.log"; exit 1; }
ms() { date +%s%3N; }

setting() { # image|default: the runtime drop-in, then kube-apiserver restarted into it
  if [ "$1" = default ]; then
    inside master sh -c 'mkdir -p /run/systemd/system/kube-apiserver.service.d &&
      echo "KUBE_APISERVER_ARGS=--shutdown-send-retry-after=false" >/run/bench-apiserver.env &&
      printf "[Service]\nEnvironmentFile=/run/bench-apiserver.env\n" >/run/systemd/system/kube-apiserver.service.d/bench.conf'
  else
    inside master rm -f /run/systemd/system/kube-apiserver.service.d/bench.conf /run/bench-apiserver.env
  fi
  inside master systemctl daemon-reload
  inside master systemctl restart kube-apiserver
}
serving() { # kube-apiserver answers /readyz, then 20 s for the watches
  local deadline=$(($(date +%s) + 120))
  until inside master /usr/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=3s get --raw /readyz >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "kube-apiserver not ready in 120 s" >&2; exit 1; }
    sleep 0.5
  done
  sleep 20
}
# shellcheck disable=SC2016 # expanded in the master's shell
flag_is() { inside master sh -c 'tr "\0" " " </proc/$(systemctl show -P MainPID kube-apiserver)/cmdline' | grep -o -- '--shutdown-send-retry-after=[a-z]*' | tail -1; }

for s in default image; do
  for _ in $(seq 1 "$N"); do
    setting "$s"
    serving
    echo "$s: $(flag_is)" >&2
    t0=$(ms)
    inside master systemctl stop kube-apiserver
    echo "$(($(ms) - t0))" >>"$work/stop-$s"
    inside master systemctl start kube-apiserver
  done
  for _ in $(seq 1 "$N"); do
    setting "$s"
    serving
    $LC reboot master >"$work/reboot.log" 2>&1 || { tail -n 20 "$work/reboot.log"; exit 1; }
    sed -n 's/.*master: shut down in \([0-9]*\) ms.*/\1/p' "$work/reboot.log" >>"$work/shutdown-$s"
    sed -n 's/.*master: rebooted and Ready again in \([0-9]*\) ms.*/\1/p' "$work/reboot.log" >>"$work/ready-$s"
  done
done
list() { paste -sd/ "$work/$1"; }
echo
echo "| measure (ms, each of $N) | image: --shutdown-send-retry-after=true | kube-apiserver's default, same run |"
echo "|---|---|---|"
echo "| \`systemctl stop kube-apiserver\` | $(list stop-image) | $(list stop-default) |"
echo "| \`systemctl reboot\` of the master: shutdown | $(list shutdown-image) | $(list shutdown-default) |"
echo "| \`systemctl reboot\` of the master: reboot → Ready again | $(list ready-image) | $(list ready-default) |"
rm -rf "$work"
