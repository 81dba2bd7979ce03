#!/usr/bin/env bash
# A cluster of the node image on real (virtual) machines: boot the qcow2 made by `packer build -only=qemu.node` three
# times under QEMU — one master, two minions — each with its own kernel, cgroup v2 (systemd's default), a default route,
# CAP_SYS_RESOURCE, systemd-resolved, and nothing of the local cluster's lab configuration
# (docs/local-cluster.md, the lab's differences: no kubelet drop-in, no containerd override, no bind mounts), and
# check that the image is right as it is:
#   - the host checks pass with HOST_CHECKS=enforce on every machine (cgroup v2, overlay, br_netfilter, sysctls);
#   - both minions join and are Ready, kubelet on cgroup v2 with the systemd cgroup driver (kubepods.slice);
#   - a pod runs on each minion, its sandbox with the oom_score_adj kubelet asks for (-998: the lab must relax this);
#   - the pods ping each other across machines and talk TCP; a ClusterIP Service answers from the other machine;
#   - CoreDNS answers pods (kubernetes.default.svc.cluster.local) and forwards names outside the cluster to the
#     network's DNS server, though the host's /etc/resolv.conf names only systemd-resolved's stub.
#
# Usage: tests/packer/cluster-test.sh IMAGE.qcow2 VMLINUZ INITRD
# Env:   ACCEL (tcg, the default, or kvm where nested virtualisation works: this lab's /dev/kvm exists but fails
#        with "KVM internal error"), TIMEOUT (seconds for every agent to be Ready, default 2400: TCG is slow),
#        KEEP=1 keeps the work directory and leaves the machines running (stop: kill the qemu pids in it).
# Network: a network namespace `k8s-vm-net` with bridge br0 (10.81.0.1/24), one tap per machine, and dnsmasq on br0
# giving each machine its address by DHCP (fixed by MAC), a default route via 10.81.0.1 (which leads nowhere further:
# no NAT, nothing leaves the host) and the cluster's records: masters.vmtest.k8s → 10.81.0.10,
# minions.vmtest.k8s → 10.81.0.11 and 10.81.0.12. The machines are reached over SSH with a key made here, from the
# namespace. The image is booted with -snapshot (never modified).
set -euo pipefail
cd "$(dirname "$0")/../.."

[ $# -eq 3 ] || {
  sed -n '12p' "$0" >&2
  exit 2
}
IMAGE=$1 KERNEL=$2 INITRD=$3
ACCEL=${ACCEL:-tcg}
TIMEOUT=${TIMEOUT:-2400}
NS=k8s-vm-net
CLUSTER=vmtest
log() { echo "cluster-test.sh: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "run as root (network namespace, taps)"; exit 2; }
for tool in qemu-system-x86_64 mkfs.vfat mcopy dnsmasq ssh ssh-keygen openssl; do
  command -v "$tool" >/dev/null || {
    log "$tool is missing (tests/packer/install-qemu.sh; demo/ensure-packages.sh test)"
    exit 2
  }
done

work=$(mktemp -d /tmp/k8s-cluster-test.XXXXXX)
chmod 0700 "$work"
cleanup() {
  if [ "${KEEP:-}" = 1 ]; then
    log "kept $work and the machines (namespace $NS)"
    return
  fi
  local pidfile pid
  for pidfile in "$work"/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  sleep 1
  for pidfile in "$work"/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- the network: namespace, bridge, taps, dnsmasq (DHCP + the cluster's records)
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add br0 type bridge
ip -n "$NS" addr add 10.81.0.1/24 dev br0
ip -n "$NS" link set br0 up
nodes=(master minion1 minion2)
declare -A addr=([master]=10.81.0.10 [minion1]=10.81.0.11 [minion2]=10.81.0.12)
declare -A mac=([master]=52:54:00:81:00:10 [minion1]=52:54:00:81:00:11 [minion2]=52:54:00:81:00:12)
i=0
for n in "${nodes[@]}"; do
  ip -n "$NS" tuntap add "vmtap$i" mode tap
  ip -n "$NS" link set "vmtap$i" master br0 up
  i=$((i + 1))
done
{
  echo "${addr[master]} masters.$CLUSTER.k8s"
  echo "${addr[minion1]} minions.$CLUSTER.k8s"
  echo "${addr[minion2]} minions.$CLUSTER.k8s"
} >"$work/hosts"
dhcp_hosts=()
for n in "${nodes[@]}"; do dhcp_hosts+=(--dhcp-host="${mac[$n]},${addr[$n]},$n"); done
ip netns exec "$NS" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --addn-hosts="$work/hosts" \
  --interface=br0 --bind-interfaces --user=root --local=/k8s/ --local-ttl=1 --dhcp-range=10.81.0.100,10.81.0.200,1h \
  "${dhcp_hosts[@]}" --dhcp-option=option:router,10.81.0.1 --dhcp-option=option:dns-server,10.81.0.1 \
  --dhcp-leasefile="$work/leases" --log-facility="$work/dnsmasq.log" --pid-file="$work/dnsmasq.pid" >/dev/null 2>&1 &
for _ in $(seq 50); do [ -s "$work/dnsmasq.pid" ] && break; sleep 0.1; done
[ -s "$work/dnsmasq.pid" ] || { log "dnsmasq did not start: $(cat "$work/dnsmasq.log" 2>/dev/null)"; exit 1; }

# --- user data: the example files rendered as a launcher would, with the cluster's CA and token, HOST_CHECKS=enforce,
# plus a part that lets this test in over SSH (root, the key made here).
ssh-keygen -q -t ed25519 -N '' -C 'k8s-image cluster test' -f "$work/ssh_key"
umask 077
packer/render-user-data.sh new-cluster "$work/pki" 2>/dev/null
# shellcheck source=/dev/null
. "$work/pki/cluster.env"
render() { # role
  CLUSTER_NAME=$CLUSTER DNS_DOMAIN=k8s HOST_CHECKS=enforce CNI=bridge WEAVE_CONSENSUS=2 WEAVE_PEERS_RECORD=minions \
    KUBE_APISERVER_ARGS='' BOOTSTRAP_TOKEN=$BOOTSTRAP_TOKEN CA_CERT_HASH=$CA_CERT_HASH CA_CRT_FILE=$CA_CRT_FILE \
    CA_KEY_FILE=$CA_KEY_FILE packer/render-user-data.sh "$1"
}
i=0
for n in "${nodes[@]}"; do
  role=minion
  [ "$n" = master ] && role=master
  boundary="k8s-image-cluster-test-$$"
  {
    printf 'Content-Type: multipart/mixed; boundary="%s"\nMIME-Version: 1.0\n\n' "$boundary"
    printf -- '--%s\nContent-Type: text/cloud-config; charset="us-ascii"\n\n' "$boundary"
    render "$role"
    printf -- '\n--%s\nContent-Type: text/cloud-config; charset="us-ascii"\n\n' "$boundary"
    printf '#cloud-config\ndisable_root: false\nssh_authorized_keys:\n  - %s\n' "$(cat "$work/ssh_key.pub")"
    printf -- '\n--%s--\n' "$boundary"
  } >"$work/$n.user-data"
  printf 'instance-id: %s-%s\nlocal-hostname: %s\n' "$CLUSTER" "$n" "$n" >"$work/$n.meta-data"
  cp "$work/$n.user-data" "$work/user-data"
  cp "$work/$n.meta-data" "$work/meta-data"
  mkfs.vfat -n CIDATA -C "$work/$n.seed.img" 2048 >/dev/null
  mcopy -i "$work/$n.seed.img" "$work/user-data" "$work/meta-data" ::
  rm -f "$work/user-data" "$work/meta-data"
  mem=2048
  [ "$n" = master ] && mem=3072
  log "booting $n (${addr[$n]}, accelerator $ACCEL, ${mem} MiB; console: $work/$n.console.log)"
  ip netns exec "$NS" qemu-system-x86_64 -machine "accel=$ACCEL" -cpu max -m "$mem" -smp 2 -nodefaults \
    -no-user-config -display none -daemonize -pidfile "$work/$n.pid" \
    -drive "file=$IMAGE,if=virtio,format=qcow2,snapshot=on" \
    -drive "file=$work/$n.seed.img,if=virtio,format=raw,readonly=on" \
    -kernel "$KERNEL" -initrd "$INITRD" -append "root=/dev/vda rw console=ttyS0 net.ifnames=0" \
    -netdev "tap,id=n0,ifname=vmtap$i,script=no,downscript=no" -device "virtio-net-pci,netdev=n0,mac=${mac[$n]}" \
    -serial "file:$work/$n.console.log"
  i=$((i + 1))
done
umask 022
start=$(date +%s)

on() { # node command… (over SSH, from the namespace; each argument stays one word on the other side: root's shell
  # there is bash, which reads printf %q)
  local n=$1
  shift
  ip netns exec "$NS" ssh -q -i "$work/ssh_key" -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 "root@${addr[$n]}" "$(printf '%q ' "$@")"
}
kc() { on master kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=20s "$@"; }
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
check() { # what command…
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}
within() { # seconds command…
  local deadline=$(($(date +%s) + $1))
  shift
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 2
  done
  "$@"
}
fail_with_consoles() {
  local n
  for n in "${nodes[@]}"; do
    log "$n: last console lines"
    tr -d '\r' <"$work/$n.console.log" | tail -n 15 >&2
    on "$n" k8s-agent status 2>&1 | sed "s/^/  $n: /" >&2 || true
  done
}

# --- the cluster comes up by itself: every agent reports Ready (`k8s-agent status` exit 0)
for n in "${nodes[@]}"; do
  if within "$TIMEOUT" on "$n" k8s-agent status; then
    ok "$n: k8s-agent status says Ready ($(($(date +%s) - start)) s after the boot)"
  else
    bad "$n: k8s-agent status says Ready within ${TIMEOUT}s"
    fail_with_consoles
    echo "cluster: $passed passed, $failed failed"
    exit 1
  fi
done
t_ready=$(($(date +%s) - start))

cgroup_v2() { [ "$(on "$1" stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; }
node_ready() { [ "$(kc get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
for n in "${nodes[@]}"; do
  check "$n: cgroup v2 (/sys/fs/cgroup is cgroup2fs)" cgroup_v2 "$n"
  check "$n: a default route (as on a cloud)" on "$n" sh -c 'ip -4 route show default | grep -q "via 10.81.0.1"'
  check "$n: the host checks were enforced and passed (no WARN, no FAIL in status)" \
    on "$n" sh -c '! k8s-agent status --no-units | grep -E "^check +(WARN|FAIL)"'
  # shellcheck disable=SC2016 # expanded on the machine
  check "$n: no lab configuration (no kubelet drop-in but the agent's own, containerd does not restrict oom_score_adj)" \
    on "$n" sh -c '[ -z "$(ls -A /etc/kubernetes/kubelet/config.d 2>/dev/null | grep -v "^10-k8s-agent-")" ] && ! grep -q restrict_oom_score_adj /etc/containerd/config.toml'
  check "$n: /etc/resolv.conf is systemd-resolved's stub (as on Debian 13's cloud images)" \
    on "$n" grep -q '^nameserver 127.0.0.53' /etc/resolv.conf
done
for n in minion1 minion2; do
  check "$n: the agent points kubelet at resolved's upstream servers for pods (resolvConf drop-in)" \
    on "$n" grep -q '^resolvConf: /run/systemd/resolve/resolv.conf$' /etc/kubernetes/kubelet/config.d/10-k8s-agent-resolv-conf.conf
done
on master k8s-agent status --no-units 2>&1 | sed 's/^/  master: /'
on minion1 k8s-agent status --no-units 2>&1 | sed 's/^/  minion1: /'
for n in minion1 minion2; do
  check "$n: its Node is Ready" within 120 node_ready "$n"
  check "$n: kubelet's pods live in cgroup v2 under kubepods.slice (systemd driver)" on "$n" test -d /sys/fs/cgroup/kubepods.slice
done
kc get nodes -o wide 2>&1 | sed 's/^/  /'

# --- pods: one busybox pod per minion, an HTTP answer on 8080
# shellcheck disable=SC2016 # expanded in the pod
serve='while true; do printf "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello from %s\n" "$(hostname)" | nc -l -p 8080; done'
for n in minion1 minion2; do
  kc run "w-$n" --image=localhost/k8s-image/busybox:1.37.0 --image-pull-policy=Never --labels="app=w,node=$n" \
    --overrides="{\"spec\":{\"nodeName\":\"$n\",\"terminationGracePeriodSeconds\":1}}" --command -- sh -c "$serve" >/dev/null
done
pod_running() { [ "$(kc get pod "$1" -o jsonpath='{.status.phase}')" = Running ]; }
for n in minion1 minion2; do
  if within 180 pod_running "w-$n"; then ok "$n: a busybox pod is Running"; else
    bad "$n: a busybox pod is Running"
    kc describe pod "w-$n" 2>&1 | tail -n 12 | sed 's/^/    /' || true
  fi
  # The sandbox's pause process: kubelet asks for -998 (the lab relaxes this with restrict_oom_score_adj).
  # shellcheck disable=SC2016 # expanded on the machine
  adj=$(on "$n" sh -c 'for p in $(pgrep -x pause); do cat /proc/$p/oom_score_adj; done | sort -u | tr "\n" " "' || true)
  check "$n: pod sandboxes run with kubelet's oom_score_adj -998 (got: $adj)" grep -qw -- -998 <<<"$adj"
done
ip1=$(kc get pod w-minion1 -o jsonpath='{.status.podIP}' 2>/dev/null || true)
ip2=$(kc get pod w-minion2 -o jsonpath='{.status.podIP}' 2>/dev/null || true)
check "a pod on minion1 pings the pod on minion2 ($ip2)" kc exec w-minion1 -- ping -c 2 -W 3 "$ip2"
answer=$(kc exec w-minion2 -- wget -qO- -T 5 "http://$ip1:8080/" 2>&1 || true)
check "a pod on minion2 reaches the pod on minion1 over TCP (got: $answer)" grep -q 'hello from w-minion1' <<<"$answer"
kc create service clusterip w-minion1 --tcp=8080:8080 >/dev/null 2>&1 || true
kc set selector service w-minion1 'app=w,node=minion1' >/dev/null 2>&1 || true
svc=$(kc get service w-minion1 -o jsonpath='{.spec.clusterIP}' 2>/dev/null || true)
svc_answers() { kc exec w-minion2 -- wget -qO- -T 5 "http://$svc:8080/" | grep -q 'hello from w-minion1'; }
check "a ClusterIP Service ($svc) answers a pod on the other machine (kube-proxy)" within 60 svc_answers
dns_answers() { kc exec w-minion2 -- nslookup kubernetes.default.svc.cluster.local 10.96.0.10 | grep -q '10.96.0.1$'; }
check "CoreDNS answers a pod: kubernetes.default.svc.cluster.local → 10.96.0.1" within 120 dns_answers
# A name outside the cluster: CoreDNS forwards it to the resolver kubelet gave its pods (resolved's upstream, the
# network's dnsmasq), not to the host's stub 127.0.0.53, which no pod can reach.
outside_answers() { kc exec w-minion2 -- nslookup masters.$CLUSTER.k8s 10.96.0.10 | grep -q '10.81.0.10$'; }
check "a pod resolves a name outside the cluster through CoreDNS's forward (masters.$CLUSTER.k8s)" within 60 outside_answers

echo "cluster: $passed passed, $failed failed (all agents Ready ${t_ready}s after the machines were started; accelerator $ACCEL)"
[ "$failed" = 0 ]
