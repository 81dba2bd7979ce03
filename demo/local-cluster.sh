#!/usr/bin/env bash
# demo/local-cluster.sh: boot a local cluster of the built image on this machine — real systemd (systemd-nspawn),
# real cloud-init (NoCloud user data: packer/user-data/{master,minion}.yaml, the same files a cloud gets), real DNS
# (dnsmasq answering masters.<cluster>.k8s, minions.<cluster>.k8s and weave-core.<cluster>.k8s with the nodes'
# addresses; or, with K8S_LOCAL_DNS=bind, a BIND 9 primary with an EMPTY zone that the nodes fill themselves over
# RFC 2136 with a TSIG key from `tsig-keygen`, and empty again when they stop).
#
# Weave layout (packer/user-data/minion.yaml's default): the first min(3, MINIONS) minions are the core
# (WEAVE_CONSENSUS = that number, listed in weave-core.<cluster>.k8s and minions.…); later minions observe.
#
#   demo/local-cluster.sh up [--masters N] [--no-wait] [MINIONS]   boot N masters (1, the default, or 3 or 5: a
#                                          highly available control plane, CONTROL_PLANE_SIZE=N) + MINIONS minions
#                                          (default 2) and wait until all are Ready (--no-wait: until all have booted;
#                                          prints the node list "NODE ROLE IP")
#   demo/local-cluster.sh add-minion [--no-wait]  boot one more minion (its DNS record first, as an ASG would);
#                                          MINION_BOOTSTRAP_TOKEN / MINION_CA_CERT_HASH override its join values,
#                                          MINION_NSPAWN_ARGS adds systemd-nspawn arguments (e.g. a --bind-ro);
#                                          with K8S_LOCAL_DNS=bind, MINION_DNS_UPDATE_KEY_FILE gives it another
#                                          TSIG key file (`none`: user data writes none)
#   demo/local-cluster.sh add-master [--no-wait]  boot the next free masterK (a replacement or an extra master: a new
#                                          machine and address, the same user data as the others), its address in
#                                          the masters record first; waits until Ready (--no-wait: no); prints its name
#   demo/local-cluster.sh poweroff NODE    pull the plug (tests/nspawn/node.sh kill: SIGKILL to the node and all in it,
#                                          no shutdown, its link down); its disk, netns and address stay, and so does
#                                          its DNS record (`dns set masters IP...` removes a dead master)
#   demo/local-cluster.sh start NODE [--no-wait]  power a node on again (tests/nspawn/node.sh start: its disk kept)
#                                          and wait until Ready (--no-wait: print its new leader PID)
#   demo/local-cluster.sh reboot NODE [--no-wait]  reboot a node (tests/nspawn/node.sh reboot: `systemctl reboot`
#                                          inside, a real shutdown; its disk, netns and address stay) and wait until
#                                          its `k8s-agent status` is Ready again (--no-wait: print its new leader PID)
#   demo/local-cluster.sh status           `k8s-agent status` of every node
#   demo/local-cluster.sh down             stop everything; leaves no netns, bridge, cgroup, mount or process
#   demo/local-cluster.sh leader NODE      the PID 1 of a node (for nsenter -t PID -a)
#   demo/local-cluster.sh dns stop|start|set NAME [IP...]   fault injection: the DNS server down / up again, or
#                                          NAME.<cluster>.k8s answering exactly IP... (none: NXDOMAIN)
#   demo/local-cluster.sh rootfs           build (or reuse) the cached node root filesystem and print its path
#
# Needs root, the demo layer (out/demo/layer.tar.gz from demo/build.sh) and the Debian packages .ci/run installs.
# Nodes can run containers (K8S_TEST_CONTAINERS=1 for tests/nspawn/node.sh: their own cgroup controllers) and can
# reboot (K8S_TEST_PERSISTENT=1: each node's root is an overlay of its own on the shared rootfs, kept across a reboot).
# Layout: a hub network namespace `k8s-local-hub` with bridge br0 (10.79.0.1/24) and dnsmasq on 10.79.0.1:53; each
# node is tests/nspawn/node.sh's container in its own netns (k8s-test-<node>) with eth0 on br0: `master` 10.79.0.10,
# minionN 10.79.0.(10+N); with --masters N (or add-master) masterK 10.79.0.(K+1) for K = 2..8 (master2 10.79.0.3,
# master3 10.79.0.4, …). masters.<cluster>.k8s lists every master (powered off or not) until `dns set` says otherwise.
# The node root filesystem is cached: the Debian 13 base (tests/nspawn/rootfs.sh) + cloud-init + the lock's host
# packages (apt in a chroot, once), + the layer (per layer sha256); `k8s-agent check --no-live --root` gates it.
# State: /run/k8s-local (nodes, addresses, PKI, seeds, dnsmasq or named pid and log, the TSIG key).
# KUBE_APISERVER_ARGS (environment) is passed into the masters' role file (extra kube-apiserver flags).
# The nodes run real Kubernetes; what the lab configures on top of the image is under "the lab's differences" below.
LIB_SCRIPT=local-cluster
# shellcheck source=demo/lib.sh
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

CLUSTER=${CLUSTER:-local}
DOMAIN=k8s
# dnsmasq (records made by this script, as a cloud's bookkeeping would) or bind (the nodes register themselves).
LOCAL_DNS=${K8S_LOCAL_DNS:-dnsmasq}
case $LOCAL_DNS in dnsmasq | bind) ;; *) echo "K8S_LOCAL_DNS must be dnsmasq or bind, not '$LOCAL_DNS'" >&2; exit 2 ;; esac
STATE=/run/k8s-local
# A cluster that is up keeps the mode it was started with (add-minion, status, down).
if [ -f "$STATE/dns-mode" ]; then LOCAL_DNS=$(cat "$STATE/dns-mode"); fi
HUB=k8s-local-hub
CACHE=${K8S_TEST_CACHE:-/var/cache/k8s-image-test}
LAYER=${LAYER:-$here/out/demo/layer.tar.gz}
NODE_SH=$here/tests/nspawn/node.sh
NODE_STATE=/run/k8s-test   # node.sh's state dirs
AGENT=${AGENT:-$here/target/release/k8s-agent}

ms() { ms_now; }
# A node's own programs, with the node's PATH (not the caller's).
in_node() { # leader command...
  local leader=$1
  shift
  with_system_path nsenter -t "$leader" -a -- "$@"
}

# --- node root filesystem --------------------------------------------------------------------------------------

host_packages() {
  python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["host_packages"]))' \
    "$(dirname "$LAYER")/lock.json"
}

# Debian base + cloud-init + host packages, cached by suite and package list. Sets CLOUD_ROOTFS. (Not called in $(...):
# its cleanups must run in this shell.)
cloud_rootfs() {
  local base pkgs dir stamp tmp t0
  base=$("$here/tests/nspawn/rootfs.sh")
  step "reading the host packages from the image lock" "run ./demo/build.sh to make out/demo/lock.json"
  pkgs="cloud-init $(host_packages)"
  dir=$CACHE/rootfs-cloud-${K8S_TEST_SUITE:-trixie}
  stamp="packages=$pkgs base=$(head -n 1 "$base/.k8s-test-stamp")"
  CLOUD_ROOTFS=$dir
  if [ -f "$dir/.k8s-local-stamp" ] && [ "$(cat "$dir/.k8s-local-stamp")" = "$stamp" ]; then return; fi
  step "building the cloud-init rootfs $dir ($pkgs)" \
    "apt-get runs inside a chroot of $base and needs the Debian mirror; nothing was cached, the next run starts this step again"
  log "building $dir (cloud-init + $(host_packages)) — once"
  t0=$(ms)
  for stale in "$CACHE"/.rootfs-cloud.tmp.*; do remove_tree "$stale"; done
  tmp=$(mktemp -d "$CACHE/.rootfs-cloud.tmp.XXXXXX")
  on_exit "remove_tree '$tmp'"
  cp -a "$base/." "$tmp/"
  cp -L /etc/resolv.conf "$tmp/etc/resolv.conf"
  mount --bind /proc "$tmp/proc"
  # shellcheck disable=SC2086 # one package a word
  with_system_path chroot "$tmp" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends $pkgs >/dev/null && apt-get clean" >&2
  umount "$tmp/proc"
  rm -rf "$tmp/var/lib/apt/lists/"* "$tmp/var/lib/cloud"
  echo "$stamp" >"$tmp/.k8s-local-stamp"
  remove_tree "$dir"
  mv "$tmp" "$dir"
  on_exit_pop
  log "cloud rootfs built in $(($(ms) - t0)) ms"
}

# cloud rootfs + the layer, cached per layer sha256, checked by k8s-agent check. Sets NODE_ROOTFS.
node_rootfs() {
  local cloud sha dir tmp
  [ -f "$LAYER" ] || die "no layer at $LAYER" "run ./demo/build.sh first"
  need_commands debootstrap chroot python3 tar
  cloud_rootfs
  cloud=$CLOUD_ROOTFS
  sha=$(cut -c1-16 "$LAYER.sha256")
  dir=$CACHE/node-$sha
  if [ ! -f "$dir/.k8s-local-stamp" ]; then
    step "making the node rootfs $dir (cloud rootfs + layer $sha)" "nothing was cached; the next run starts this step again"
    log "making $dir (cloud rootfs + layer $sha)"
    for stale in "$CACHE"/.node.tmp.*; do remove_tree "$stale"; done
    tmp=$(mktemp -d "$CACHE/.node.tmp.XXXXXX")
    on_exit "remove_tree '$tmp'"
    cp -a "$cloud/." "$tmp/"
    tar -xzf "$LAYER" -C "$tmp"
    step "checking the node rootfs with k8s-agent check --no-live" \
      "the layer $LAYER fails the image checks printed above: fix the manifest or the node content and rebuild it"
    "$AGENT" check --no-live --root "$tmp" >&2
    echo "$sha" >"$tmp/.k8s-local-stamp"
    mv "$tmp" "$dir"
    on_exit_pop
    # Drop node rootfs of older layers.
    find "$CACHE" -maxdepth 1 -name 'node-*' ! -name "node-$sha" -exec rm -rf {} + 2>/dev/null || true
  fi
  NODE_ROOTFS=$dir
}

# --- PKI ---------------------------------------------------------------------------------------------------------

make_pki() {
  step "making the cluster CA and the bootstrap token (packer/render-user-data.sh new-cluster)"
  "$here/packer/render-user-data.sh" new-cluster "$STATE/pki" 2>/dev/null
}

# --- seeds (NoCloud) ---------------------------------------------------------------------------------------------

# The user data a cloud would get, rendered by the same script an operator uses. A minion's token and pin can be
# overridden (MINION_BOOTSTRAP_TOKEN, MINION_CA_CERT_HASH) to boot a node that must NOT join.
# With K8S_LOCAL_DNS=bind every node registers itself (DNS_UPDATE_*), a core minion in minions and weave-core.
render() { # role core(0|1)
  (
    # shellcheck disable=SC1091 # written by make_pki
    . "$STATE/pki/cluster.env"
    if [ "$1" = minion ]; then
      BOOTSTRAP_TOKEN=${MINION_BOOTSTRAP_TOKEN:-$BOOTSTRAP_TOKEN}
      CA_CERT_HASH=${MINION_CA_CERT_HASH:-$CA_CERT_HASH}
    fi
    if [ "$LOCAL_DNS" = bind ]; then
      export DNS_UPDATE_SERVER=10.79.0.1 DNS_UPDATE_TSIG_NAME=k8s-agent
      export DNS_UPDATE_KEY_FILE=$STATE/dns-update.key
      if [ "$1" = minion ] && [ -n "${MINION_DNS_UPDATE_KEY_FILE:-}" ]; then
        DNS_UPDATE_KEY_FILE=$MINION_DNS_UPDATE_KEY_FILE
        [ "$DNS_UPDATE_KEY_FILE" != none ] || DNS_UPDATE_KEY_FILE=
      fi
      if [ "$2" = 1 ]; then export DNS_UPDATE_RECORDS="minions weave-core"; fi
    fi
    # A highly available control plane: every master the same CONTROL_PLANE_SIZE and the shared keys (the *_FILE
    # variables cluster.env exports); one master: neither, the user data of a single master.
    unset CONTROL_PLANE_SIZE
    if [ "$1" = master ] && [ "$(control_plane_size)" -gt 1 ]; then
      export CONTROL_PLANE_SIZE
      CONTROL_PLANE_SIZE=$(control_plane_size)
    fi
    # The pod network: bridge (routes made by the agent) while the image has no Weave Net (docs/agent.md "Pod network").
    export CNI=${CNI:-bridge}
    CLUSTER_NAME=$CLUSTER DNS_DOMAIN=$DOMAIN HOST_CHECKS=warn WEAVE_CONSENSUS=$(cat "$STATE/consensus") \
      WEAVE_PEERS_RECORD=weave-core KUBE_APISERVER_ARGS=${KUBE_APISERVER_ARGS:-} BOOTSTRAP_TOKEN=$BOOTSTRAP_TOKEN \
      CA_CERT_HASH=$CA_CERT_HASH "$here/packer/render-user-data.sh" "$1"
  )
}

# The number of masters the cluster was started with (`up --masters N`; 1 for a cluster from before).
control_plane_size() {
  if [ -s "$STATE/control-plane-size" ]; then cat "$STATE/control-plane-size"; else echo 1; fi
}

# Master K's name and address: `master` 10.79.0.10 (as with one master), masterK 10.79.0.(K+1) for K = 2..8.
MAX_MASTERS=8
master_name() { if [ "$1" = 1 ]; then echo master; else echo "master$1"; fi; }
master_ip() { if [ "$1" = 1 ]; then echo 10.79.0.10; else echo "10.79.0.$(($1 + 1))"; fi; }

make_seed() { # node role core(0|1)
  local seed=$STATE/seed/$1
  mkdir -p "$seed"
  printf 'instance-id: %s-%s\nlocal-hostname: %s\n' "$CLUSTER" "$1" "$1" > "$seed/meta-data"
  (umask 077 && render "$2" "$3" > "$seed/user-data")
}

# --- network -----------------------------------------------------------------------------------------------------

hub_up() {
  step "making the hub network namespace $HUB (bridge br0, dnsmasq on 10.79.0.1)" \
    "a network namespace $HUB may be left from another run: demo/local-cluster.sh down"
  ip netns add "$HUB"
  ip -n "$HUB" link set lo up
  # A fixed MAC: a bridge otherwise takes the lowest MAC of its ports, so every node added later may change it, and
  # nodes that cached the old one lose their packets to 10.79.0.1 (DNS) for the 5 s until ARP re-probes.
  ip -n "$HUB" link add br0 address 02:6b:38:73:00:01 type bridge
  ip -n "$HUB" addr add 10.79.0.1/24 dev br0
  ip -n "$HUB" link set br0 up
  : > "$STATE/hosts"
  echo "nameserver 10.79.0.1" > "$STATE/resolv.conf"
  if [ "$LOCAL_DNS" = bind ]; then
    bind_up
    return
  fi
  dnsmasq_start
}

dnsmasq_start() {
  rm -f "$STATE/dnsmasq.pid"
  # --keep-in-foreground (not --no-daemon): dnsmasq then serves TCP connections in children, so a TCP client
  # cannot stall answers or SIGHUP reloads.
  ip netns exec "$HUB" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --addn-hosts="$STATE/hosts" --listen-address=10.79.0.1 --bind-interfaces --user=root --local=/$DOMAIN/ \
    --local-ttl=1 --log-queries --log-facility="$STATE/dnsmasq.log" --pid-file="$STATE/dnsmasq.pid" \
    >/dev/null 2>&1 &
  for _ in $(seq 50); do [ -s "$STATE/dnsmasq.pid" ] && break; sleep 0.05; done
  [ -s "$STATE/dnsmasq.pid" ] || die "dnsmasq did not start" "see $STATE/dnsmasq.log"
}

# BIND 9 as the zone's primary: the zone $DOMAIN starts empty (SOA and NS only); key k8s-agent may add and delete A
# records below it (update-policy), nothing else. named runs in the foreground (-g) in the hub namespace.
bind_up() {
  local dir=$STATE/bind
  step "starting BIND 9 on 10.79.0.1 with an empty zone $DOMAIN (nodes register themselves with TSIG key k8s-agent)" \
    "needs bind9 and bind9-utils (demo/ensure-packages.sh test); its log is $STATE/named.log"
  mkdir -p "$dir"
  (umask 077 && tsig-keygen -a hmac-sha256 k8s-agent > "$STATE/dns-update.key")
  # shellcheck disable=SC2016 # $TTL is the zone file's own directive
  printf '$TTL 30\n@ IN SOA ns.%s. hostmaster.%s. 1 60 60 3600 1\n@ IN NS ns.%s.\nns IN A 10.79.0.1\n' \
    "$DOMAIN" "$DOMAIN" "$DOMAIN" > "$dir/zone"
  cat > "$dir/named.conf" <<CONF
options { directory "$dir"; listen-on port 53 { 10.79.0.1; }; listen-on-v6 { none; }; pid-file "$STATE/named.pid";
  recursion no; dnssec-validation no; querylog yes; };
include "$STATE/dns-update.key";
controls { };
zone "$DOMAIN" { type primary; file "$dir/zone"; update-policy { grant k8s-agent subdomain $DOMAIN. A; }; };
CONF
  ip netns exec "$HUB" named -g -c "$dir/named.conf" >"$STATE/named.log" 2>&1 &
  local _
  for _ in $(seq 100); do grep -q 'running$' "$STATE/named.log" 2>/dev/null && return; sleep 0.05; done
  die "named did not start" "see $STATE/named.log"
}

# Fault injection (tests/faults/run.sh): stop / start the DNS server, or make NAME answer exactly IP... (none: the name
# does not exist).
cmd_dns() { # stop | start | set NAME [IP...]
  [ "$LOCAL_DNS" = dnsmasq ] || die "dns $1: only with dnsmasq (K8S_LOCAL_DNS=bind: the nodes own the records)"
  case ${1:-} in
    stop)
      if [ -s "$STATE/dnsmasq.pid" ]; then kill "$(cat "$STATE/dnsmasq.pid")" 2>/dev/null || true; fi
      rm -f "$STATE/dnsmasq.pid"
      ;;
    start) dnsmasq_start ;;
    set)
      local name=$2.$CLUSTER.$DOMAIN ip
      shift 2
      grep -v " $name\$" "$STATE/hosts" >"$STATE/hosts.new" || true
      for ip in "$@"; do echo "$ip $name" >>"$STATE/hosts.new"; done
      mv "$STATE/hosts.new" "$STATE/hosts"
      [ ! -s "$STATE/dnsmasq.pid" ] || kill -HUP "$(cat "$STATE/dnsmasq.pid")"
      ;;
    *) die "dns: unknown subcommand '${1:-}'" "demo/local-cluster.sh dns stop|start|set NAME [IP...]" ;;
  esac
}

dns_add() { # ip name
  [ "$LOCAL_DNS" = dnsmasq ] || return 0   # bind: the nodes add themselves
  echo "$1 $2.$CLUSTER.$DOMAIN" >> "$STATE/hosts"
  # Stopped (a fault test): it reads the hosts file when it starts again.
  if [ -s "$STATE/dnsmasq.pid" ]; then kill -HUP "$(cat "$STATE/dnsmasq.pid")"; fi
}

wire_node() { # node ip
  local ns=k8s-test-$1 host=v-$1
  ip link add "$host" type veth peer name eth0 netns "$ns"
  ip link set "$host" netns "$HUB"
  ip -n "$HUB" link set "$host" master br0 up
  ip -n "$ns" addr add "$2/24" dev eth0
  ip -n "$ns" link set eth0 up
}

# --- the lab's differences from a real machine -----------------------------------------------------------------
# The nodes are systemd-nspawn containers on a VM whose PID 1 is not systemd, with cgroup v1 controllers, no kernel
# module loading and /proc/sys read-only inside a container (../shared/TESTING.md). The image stays right for a real
# machine (cgroup v2, its own kernel); what the lab needs on top lives here, as systemd-nspawn arguments of every node
# that runs kubelet and kube-proxy (docs/local-cluster.md: the lab's differences):
#   - /dev/kmsg bound in: kubelet's OOM watcher reads it (a container has none);
#   - kubelet drop-in config.d/90-lab.conf: failCgroupV1: false (kubelet >= 1.35 refuses cgroup v1 otherwise; real
#     nodes boot cgroup v2), and evictionHard in absolute sizes and image GC off (high threshold 100 %): the nodes
#     share the host's disk, whose used share (often past kubelet's 85 % image GC and 15 % imagefs eviction
#     defaults here) says nothing about a node: kubelet evicted every pod for DiskPressure and removed unpinned
#     images (the conformance tests' images) to "free" space;
#   - containerd's config: the image's, plus restrict_oom_score_adj = true: kubelet asks for oom_score_adj -998 for
#     sandboxes, and these machines have no CAP_SYS_RESOURCE at all (CapBnd bit 24 clear: not even the host's root
#     may lower oom_score_adj), so runc failed every sandbox ("can't get final child's PID from pipe: EOF";
#     ../shared/TESTING.md). The option (made for rootless and kind nodes) caps the value at containerd's own;
#   - kube-proxy's config: the image's, plus conntrack maxPerCore/tcp timeouts 0 ("leave the kernel's values"), as
#     kind does: kube-proxy would write /proc/sys/net/netfilter/*, read-only in a container;
#   - the node's net.* sysctls set from outside, in its own network namespace, as systemd-sysctl would from
#     /usr/lib/sysctl.d at boot and kube-proxy would at start (/proc/sys is read-only inside a container; net.* is
#     per network namespace, so this touches only the node): the image's sysctl.d/90-kubernetes.conf (ip_forward,
#     bridge-nf-call-iptables/ip6tables) and net.ipv4.conf.all.route_localnet=1 (kube-proxy's localhost NodePorts);
#   - TEST DOUBLE of six kernel tunables (lab_kernel_tunables, after each boot): kubelet sets vm.overcommit_memory=1,
#     vm.panic_on_oom=0, kernel.panic=10, kernel.panic_on_oops=1, kernel.keys.root_maxkeys/maxbytes at start and
#     exits when it cannot ("Failed to start ContainerManager … /proc/sys/vm/overcommit_memory: read-only file
#     system"). They are not namespaced: writing them would change the shared host. Inside the node, files with
#     kubelet's values are bind-mounted over them, so kubelet finds them set as it would have set them on a machine.
lab_files() {
  local rootfs=$1 dir=$STATE/lab
  mkdir -p "$dir"
  cat >"$dir/kubelet-90-lab.conf" <<'YAML'
# LAB ONLY (demo/local-cluster.sh): the nodes are containers on a cgroup v1 host. Real nodes boot cgroup v2.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
evictionHard:
  memory.available: 100Mi
  nodefs.available: 2Gi
  imagefs.available: 2Gi
  nodefs.inodesFree: 5%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
YAML
  local runtime_table="  [plugins.'io.containerd.cri.v1.runtime']"
  grep -qxF "$runtime_table" "$rootfs/etc/containerd/config.toml" ||
    die "the image's /etc/containerd/config.toml has no line $runtime_table" \
      "demo/local-cluster.sh lab_files adds restrict_oom_score_adj under it: keep that table in files/etc/containerd/"
  awk -v t="$runtime_table" '{ print } $0 == t {
      print "    # LAB ONLY (demo/local-cluster.sh): no CAP_SYS_RESOURCE on these machines; real nodes keep kubelet'"'"'s values."
      print "    restrict_oom_score_adj = true" }' "$rootfs/etc/containerd/config.toml" >"$dir/containerd-config.toml"
  {
    cat "$rootfs/etc/kubernetes/kube-proxy/config.yaml"
    printf '\n# LAB ONLY (demo/local-cluster.sh): /proc/sys is read-only in a container; leave the kernel'"'"'s conntrack values.\n'
    printf 'conntrack:\n  maxPerCore: 0\n  tcpEstablishedTimeout: 0s\n  tcpCloseWaitTimeout: 0s\n'
  } >"$dir/kube-proxy-config.yaml"
}

# The kernel tunables kubelet insists on, shown to it already set (see above): name=value, as /proc/sys paths.
LAB_KERNEL_TUNABLES="vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1"
LAB_KERNEL_TUNABLES+=" kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000"
lab_kernel_tunables() { # leader
  # shellcheck disable=SC2016 # expanded inside the node
  in_node "$1" sh -ec 'mkdir -p /run/k8s-lab/sysctl
    for t in '"$LAB_KERNEL_TUNABLES"'; do
      f=/run/k8s-lab/sysctl/$(echo "${t%%=*}" | tr / .)
      echo "${t#*=}" >"$f"
      mountpoint -q "/proc/sys/${t%%=*}" || mount --bind "$f" "/proc/sys/${t%%=*}"
    done'
}

lab_net_sysctls() { # node
  local conf
  conf="$(cat "$STATE/rootfs")/usr/lib/sysctl.d/90-kubernetes.conf"
  ip netns exec "k8s-test-$1" sysctl -q -p "$conf" >/dev/null
  ip netns exec "k8s-test-$1" sysctl -q -w net.ipv4.conf.all.route_localnet=1 >/dev/null
}

lab_nspawn_args() {
  local dir=$STATE/lab
  printf '%s\n' --bind=/dev/kmsg \
    "--bind-ro=$dir/kubelet-90-lab.conf:/etc/kubernetes/kubelet/config.d/90-lab.conf" \
    "--bind-ro=$dir/kube-proxy-config.yaml:/etc/kubernetes/kube-proxy/config.yaml" \
    "--bind-ro=$dir/containerd-config.toml:/etc/containerd/config.toml"
}

# --- nodes -------------------------------------------------------------------------------------------------------

boot_node() { # node role ip core(0|1)
  local node=$1 role=$2 ip=$3 rootfs
  rootfs=$(cat "$STATE/rootfs")
  make_seed "$node" "$role" "${4:-0}"
  echo "$node $role $ip" >> "$STATE/nodes"
  # node.sh makes the netns before nspawn; the address must be there before cloud-init/the agent look, so the
  # node is wired from a background loop as soon as its netns exists.
  ( for _ in $(seq 250); do
      if ip netns list 2>/dev/null | grep -qw "k8s-test-$node" && wire_node "$node" "$ip" 2>/dev/null; then
        if [ "$role" = minion ]; then lab_net_sysctls "$node"; fi
        exit 0
      fi
      ip link del "v-$node" 2>/dev/null || true
      sleep 0.02
    done
    log "cannot wire $node into the hub"; exit 1 ) &
  local wirer=$! leader
  local -a extra=()
  if [ "$role" = minion ]; then mapfile -t extra < <(lab_nspawn_args); fi
  if [ "$role" = minion ] && [ -n "${MINION_NSPAWN_ARGS:-}" ]; then
    local -a more
    read -r -a more <<<"$MINION_NSPAWN_ARGS"
    extra+=("${more[@]}")
  fi
  leader=$(K8S_TEST_PERSISTENT=1 K8S_TEST_CONTAINERS=1 "$NODE_SH" up "$node" "$rootfs" --bind-ro="$STATE/seed/$node:/var/lib/cloud/seed/nocloud" \
    --bind-ro="$STATE/resolv.conf:/etc/resolv.conf" "${extra[@]}")
  echo "$leader" > "$STATE/$node.leader"
  if [ "$role" = minion ]; then lab_kernel_tunables "$leader"; fi
  wait "$wirer"
}

# The node's PID 1 now: node.sh's own record (a reboot changes it; absent while the node is down), not a copy.
leader() { cat "$NODE_STATE/$1/leader"; }

node_status() { # node [--json]
  in_node "$(leader "$1")" /usr/bin/k8s-agent status "${@:2}"
}

wait_ready() { # timeout_s nodes...
  local timeout=$1 deadline=$(( $(ms) + $1 * 1000 )) n; shift
  for n in "$@"; do
    until node_status "$n" --no-units >/dev/null 2>&1; do
      if [ "$(ms)" -ge "$deadline" ]; then
        node_status "$n" >&2 || true
        die "$n is not Ready after $timeout s (its status is above)" \
          "look inside: nsenter -t \$(demo/local-cluster.sh leader $n) -a journalctl -u k8s-agent"
      fi
      sleep 0.2
    done
  done
}

UP_DONE=1
up_failed() {
  if [ "$UP_DONE" = 0 ]; then
    log "up failed; tearing the cluster down"
    cmd_down >/dev/null 2>&1
  fi
}

cmd_up() {
  need_root
  need_commands ip openssl nsenter systemd-nspawn base64 sed
  if [ "$LOCAL_DNS" = bind ]; then need_commands named tsig-keygen; else need_commands dnsmasq; fi
  local minions="" masters=1 wait=1 t0 rootfs i
  while [ $# -gt 0 ]; do
    case $1 in
      --masters) [ $# -ge 2 ] || die "up: --masters needs a number (1, 3 or 5)" "demo/local-cluster.sh up [--masters N] [--no-wait] [MINIONS]"
        masters=$2; shift 2 ;;
      --masters=*) masters=${1#--masters=}; shift ;;
      --no-wait) wait=0; shift ;;
      -*) die "up: unknown option '$1'" "demo/local-cluster.sh up [--masters N] [--no-wait] [MINIONS]" ;;
      *) [ -z "$minions" ] || die "up: one MINIONS only, not '$minions' and '$1'" "demo/local-cluster.sh up [--masters N] [--no-wait] [MINIONS]"
        minions=$1; shift ;;
    esac
  done
  minions=${minions:-2}
  if ! [[ "$minions" =~ ^[0-9]+$ ]] || [ "$minions" -gt 200 ]; then
    die "MINIONS must be a number from 0 to 200, not '$minions'" "demo/local-cluster.sh up [--masters N] [--no-wait] [MINIONS]"
  fi
  case $masters in
    1 | 3 | 5) ;;
    *) die "--masters must be 1, 3 or 5 (an etcd cluster of an odd size a lab can hold), not '$masters'" \
      "demo/local-cluster.sh up [--masters N] [--no-wait] [MINIONS]" ;;
  esac
  [ ! -e "$STATE/nodes" ] || die "a local cluster is already up" "demo/local-cluster.sh down first"
  t0=$(ms)
  node_rootfs
  rootfs=$NODE_ROOTFS
  local t_rootfs=$(( $(ms) - t0 ))
  UP_DONE=0
  on_exit up_failed
  mkdir -p "$STATE"
  echo "$rootfs" > "$STATE/rootfs"
  lab_files "$rootfs"
  echo "$LOCAL_DNS" > "$STATE/dns-mode"
  echo "$masters" > "$STATE/control-plane-size"
  # The Weave core: the first min(3, MINIONS) minions (WEAVE_CONSENSUS = its size; 1 when there are no minions).
  local core=$(( minions < 3 ? minions : 3 ))
  echo "$(( core > 0 ? core : 1 ))" > "$STATE/consensus"
  : > "$STATE/nodes"
  make_pki
  hub_up
  # DNS first, as the cloud's bookkeeping (the seeds' Lambda) would: every instance's record exists at boot.
  for i in $(seq 1 "$masters"); do dns_add "$(master_ip "$i")" masters; done
  for i in $(seq 1 "$minions"); do
    dns_add "10.79.0.$((10 + i))" minions
    if [ "$i" -le "$core" ]; then dns_add "10.79.0.$((10 + i))" weave-core; fi
  done
  # Every node's systemd (and journald, udev, …) takes inotify instances from the host's per-user limit (Debian's
  # default 128: about 15 nodes); measured, the 16th node's PID 1 exits with "Failed to create control group
  # inotify object: Too many open files". Raise it to what the cluster needs (the host's setting; said here).
  local need_inotify=$(( (minions + masters) * 32 + 128 )) have_inotify
  have_inotify=$(cat /proc/sys/fs/inotify/max_user_instances)
  if [ "$have_inotify" -lt "$need_inotify" ]; then
    log "raising fs.inotify.max_user_instances from $have_inotify to $need_inotify for $((minions + masters)) nodes"
    echo "$need_inotify" > /proc/sys/fs/inotify/max_user_instances
  fi
  # Nodes boot in parallel: on a small machine many take longer than node.sh's default 30 s (2 cores, 50 nodes: up to
  # ~75 s). Unless set, allow 30 s + 2 s a node.
  export K8S_TEST_BOOT_TIMEOUT=${K8S_TEST_BOOT_TIMEOUT:-$((30 + 2 * (minions + masters)))}
  step "booting the nodes" "each node's console log is in /run/k8s-test/<node>/console.log"
  local t1 boots=(); t1=$(ms)
  for i in $(seq 1 "$masters"); do
    boot_node "$(master_name "$i")" master "$(master_ip "$i")" &
    boots+=($!)
  done
  for i in $(seq 1 "$minions"); do
    boot_node "minion$i" minion "10.79.0.$((10 + i))" "$(( i <= core ? 1 : 0 ))" &
    boots+=($!)
  done
  local b; for b in "${boots[@]}"; do wait "$b"; done
  local nodes; nodes=$(cut -d' ' -f1 "$STATE/nodes")
  if [ "$wait" = 0 ]; then
    UP_DONE=1
    log "all booted (not waiting for Ready): rootfs ${t_rootfs} ms, boot $(( $(ms) - t1 )) ms"
    cat "$STATE/nodes"
    return
  fi
  step "waiting until every node is Ready"
  # shellcheck disable=SC2086 # one node a word
  wait_ready 60 $nodes
  UP_DONE=1
  log "all Ready: rootfs ${t_rootfs} ms, boot to all Ready $(( $(ms) - t1 )) ms"
  cmd_status
}

cmd_add_minion() { # [--no-wait]
  need_root
  local n ip
  n=$(( $(grep -c ' minion ' "$STATE/nodes") + 1 ))
  # One node on a busy machine (the others running, a test hammering them) can take more than node.sh's 30 s.
  export K8S_TEST_BOOT_TIMEOUT=${K8S_TEST_BOOT_TIMEOUT:-60}
  ip=10.79.0.$((10 + n))
  dns_add "$ip" minions
  boot_node "minion$n" minion "$ip"
  if [ "${1:-}" = --no-wait ]; then
    echo "minion$n"
    return
  fi
  wait_ready 60 "minion$n"
  node_status "minion$n"
}

cmd_add_master() { # [--no-wait]
  need_root
  [ -f "$STATE/nodes" ] || die "add-master: no local cluster is up" "demo/local-cluster.sh up --masters 3"
  local size k name="" ip
  size=$(control_plane_size)
  [ "$size" -gt 1 ] || die "add-master: this cluster was started with one master (CONTROL_PLANE_SIZE unset): a second one would be a cluster of its own" \
    "demo/local-cluster.sh up --masters 3 (or 5) for a highly available control plane"
  # The next free masterK: a node that is powered off keeps its name and address (it may be started again).
  for ((k = 2; k <= MAX_MASTERS; k++)); do
    if ! awk -v n="$(master_name "$k")" '$1 == n { f = 1 } END { exit !f }' "$STATE/nodes"; then
      name=$(master_name "$k")
      break
    fi
  done
  [ -n "$name" ] || die "add-master: master2..master$MAX_MASTERS are all taken (the lab has addresses for $MAX_MASTERS masters)" \
    "demo/local-cluster.sh down, then up again"
  ip=$(master_ip "$k")
  export K8S_TEST_BOOT_TIMEOUT=${K8S_TEST_BOOT_TIMEOUT:-60}
  # The record first, as the cloud's bookkeeping would for a new instance of the masters' group.
  dns_add "$ip" masters
  boot_node "$name" master "$ip"
  if [ "${1:-}" != --no-wait ]; then wait_ready 120 "$name"; fi
  echo "$name"
}

node_role() { # node: its role, or nothing for a node not in this cluster
  [ -f "$STATE/nodes" ] && awk -v n="$1" '$1 == n { print $2; f = 1 } END { exit !f }' "$STATE/nodes"
}
node_ip() { awk -v n="$1" '$1 == n { print $3 }' "$STATE/nodes"; }

# Pull the plug: its link down (a machine without power has no carrier; its netns, which stays, would otherwise keep
# answering ARP and ping — the host kernel's answers, not the node's) and node.sh kill (SIGKILL to nspawn and to every
# process of the node at once: no shutdown, no ExecStop=), in the same instant. Disk, netns, address, DNS records stay.
cmd_poweroff() { # NODE
  need_root
  local node=${1:-} t0
  if [ -z "$node" ] || [ $# -ne 1 ]; then die "poweroff: which node?" "demo/local-cluster.sh poweroff NODE"; fi
  node_role "$node" >/dev/null || die "poweroff: no node '$node' in this cluster" "demo/local-cluster.sh status lists the nodes"
  [ -f "$NODE_STATE/$node/leader" ] || die "poweroff: $node is not running" "demo/local-cluster.sh start $node"
  t0=$(ms)
  ip -n "$HUB" link set "v-$node" down 2>/dev/null || true
  "$NODE_SH" kill "$node"
  rm -f "$STATE/$node.leader"
  log "$node: powered off in $(( $(ms) - t0 )) ms (its disk, netns, address and DNS records kept)"
}

cmd_start() { # NODE [--no-wait]
  need_root
  local node="" wait=1 arg role ip leader t0
  for arg in "$@"; do
    case $arg in
      --no-wait) wait=0 ;;
      *) [ -z "$node" ] || die "start: one NODE only" "demo/local-cluster.sh start NODE [--no-wait]"; node=$arg ;;
    esac
  done
  [ -n "$node" ] || die "start: which node?" "demo/local-cluster.sh start NODE [--no-wait]"
  role=$(node_role "$node") || die "start: no node '$node' in this cluster" "demo/local-cluster.sh status lists the nodes"
  ip=$(node_ip "$node")
  [ ! -f "$NODE_STATE/$node/leader" ] || die "start: $node is running (leader $(leader "$node"))" \
    "demo/local-cluster.sh poweroff $node first"
  export K8S_TEST_BOOT_TIMEOUT=${K8S_TEST_BOOT_TIMEOUT:-60}
  step "starting $node (tests/nspawn/node.sh start)" "its console log is $NODE_STATE/$node/console.log"
  t0=$(ms)
  # Its wiring stays across a power-off; put back what is missing, then the link up again.
  if ! ip -n "k8s-test-$node" -o addr show dev eth0 2>/dev/null | grep -q " $ip/24 "; then
    ip link del "v-$node" 2>/dev/null || ip -n "$HUB" link del "v-$node" 2>/dev/null || true
    wire_node "$node" "$ip"
  fi
  ip -n "$HUB" link set "v-$node" up
  ip -n "k8s-test-$node" link set eth0 up
  if [ "$role" = minion ]; then lab_net_sysctls "$node"; fi
  leader=$("$NODE_SH" start "$node")
  echo "$leader" > "$STATE/$node.leader"
  if [ "$role" = minion ]; then lab_kernel_tunables "$leader"; fi
  if [ "$wait" = 0 ]; then
    echo "$leader"
    return
  fi
  step "waiting until $node is Ready again"
  wait_ready 120 "$node"
  log "$node: started and Ready in $(( $(ms) - t0 )) ms"
  node_status "$node"
}

cmd_reboot() { # NODE [--no-wait]
  need_root
  local node="" wait=1 arg leader t0
  for arg in "$@"; do
    case $arg in
      --no-wait) wait=0 ;;
      *) [ -z "$node" ] || die "reboot: one NODE only" "demo/local-cluster.sh reboot NODE [--no-wait]"; node=$arg ;;
    esac
  done
  [ -n "$node" ] || die "reboot: which node?" "demo/local-cluster.sh reboot NODE [--no-wait]"
  { [ -f "$STATE/nodes" ] && awk -v n="$node" '$1 == n { f = 1 } END { exit !f }' "$STATE/nodes"; } ||
    die "reboot: no node '$node' in this cluster" "demo/local-cluster.sh status lists the nodes"
  # One node on a busy machine can take more than node.sh's 30 s to boot (as add-minion).
  export K8S_TEST_BOOT_TIMEOUT=${K8S_TEST_BOOT_TIMEOUT:-60}
  step "rebooting $node (tests/nspawn/node.sh reboot)" "its console log is $NODE_STATE/$node/console.log"
  t0=$(ms)
  leader=$("$NODE_SH" reboot "$node")
  echo "$leader" > "$STATE/$node.leader"
  if awk -v n="$node" '$1 == n && $2 == "minion" { f = 1 } END { exit !f }' "$STATE/nodes"; then
    lab_kernel_tunables "$leader"
  fi
  if [ "$wait" = 0 ]; then
    echo "$leader"
    return
  fi
  step "waiting until $node is Ready again"
  wait_ready 60 "$node"
  log "$node: rebooted and Ready again in $(( $(ms) - t0 )) ms"
  node_status "$node"
}

cmd_status() {
  local node role ip
  while read -r node role ip; do
    echo "== $node ($role, $ip)"
    if [ ! -f "$NODE_STATE/$node/leader" ]; then echo "powered off"; continue; fi
    node_status "$node" || true
  done < "$STATE/nodes"
}

cmd_down() {
  need_root
  local node
  if [ -f "$STATE/nodes" ]; then
    while read -r node _; do tolerate "$NODE_SH" down "$node" >/dev/null 2>&1; done < "$STATE/nodes"
  fi
  for node in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^k8s-test-' | sed 's/^k8s-test-//'); do
    if [ -f "$STATE/nodes" ] && grep -q "^$node " "$STATE/nodes"; then tolerate "$NODE_SH" down "$node" >/dev/null 2>&1; fi
  done
  if [ -f "$STATE/dnsmasq.pid" ]; then kill "$(cat "$STATE/dnsmasq.pid")" 2>/dev/null || true; fi
  if [ -f "$STATE/named.pid" ]; then
    local named_pid
    named_pid=$(cat "$STATE/named.pid")
    kill "$named_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$named_pid" 2>/dev/null || break; sleep 0.05; done
  fi
  ip netns del "$HUB" 2>/dev/null || true
  rm -rf "$STATE"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  add-minion) shift; cmd_add_minion "$@" ;;
  add-master) shift; cmd_add_master "$@" ;;
  poweroff) shift; cmd_poweroff "$@" ;;
  start) shift; cmd_start "$@" ;;
  status) cmd_status ;;
  down) cmd_down ;;
  reboot) shift; cmd_reboot "$@" ;;
  leader)
    [ -f "$NODE_STATE/${2:-}/leader" ] || die "leader: node '${2:-}' is not running (no $NODE_STATE/${2:-}/leader)"
    leader "$2" ;;
  dns) shift; cmd_dns "$@" ;;
  rootfs) need_root; node_rootfs; echo "$NODE_ROOTFS" ;;
  *) sed -n '10,37p' "$0" >&2; exit 2 ;;
esac
