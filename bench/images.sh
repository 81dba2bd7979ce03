#!/usr/bin/env bash
# bench/images.sh: the time a minion spends importing the baked container images at boot, beside the floor.
#
#   bench/images.sh [REPS]      REPS fresh local clusters of 1 master + 1 minion (default 5); medians and max
#
# Per run, on the freshly booted minion (its containerd empty: /var/lib/containerd is a tmpfs per node):
#   agent phase      import-images entered → start-units entered, from the agent's own `transitions`: the listing
#                    before (`ctr images ls` + `images check`), `ctr images import` + the pinned label per image, the
#                    listing after and the digest comparison;
#   agent, per image the import + label time the agent reports for each image (`status --json`, join.images);
# and, side by side in the same run on the same node, the floor: a second, private containerd (the node's own
# containerd 1.7 binary, own root/state/socket under /run, CRI plugin off) importing the same archives with plain
# `ctr images import`, nothing else. For scale, the floor also imports a synthetic single-layer image of 85 MiB of
# incompressible bytes (weave-kube 2.8.1's size; the demo's images are small, Weave's real image cannot be had here).
# Needs root, the demo layer (./demo/build.sh) and the packages demo/ensure-packages.sh installs; the status is read
# by tests/support's k8s-test-json (built here with cargo unless NO_BUILD=1). Prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
LC=demo/local-cluster.sh
REPS=${1:-5}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
[ -f out/demo/layer.tar.gz ] || ./demo/build.sh
# The status is read with tests/support's k8s-test-json (the agent's own StatusReport).
TEST_JSON=${TEST_JSON:-target/debug/k8s-test-json}
[ -n "${NO_BUILD:-}" ] || cargo build --locked --quiet -p k8s-test-support
field() { "$TEST_JSON" status "$1"; }

# The floor, inside the node: a private containerd, then one plain import per archive. Prints "<ms per archive…>".
# shellcheck disable=SC2016 # expanded by the node's shell
FLOOR='set -e
d=/run/bench-images; rm -rf "$d"; mkdir -p "$d"
printf "version = 2\nroot = \"%s/root\"\nstate = \"%s/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"%s/containerd.sock\"\n" "$d" "$d" "$d" >"$d/config.toml"
containerd --config "$d/config.toml" >"$d/log" 2>&1 &
pid=$!
for _ in $(seq 100); do ctr --address "$d/containerd.sock" version >/dev/null 2>&1 && break; sleep 0.05; done
out=""
for a in /usr/share/k8s-image/images/*.tar /run/bench-large.tar; do
  t0=$(date +%s%3N)
  ctr --address "$d/containerd.sock" -n k8s.io images import "$a" >/dev/null
  out="$out $(( $(date +%s%3N) - t0 ))"
done
rm -f /run/bench-large.tar
kill "$pid"; wait "$pid" 2>/dev/null || true
rm -rf "$d"
echo $out'

run() {
  $LC down >/dev/null 2>&1 || true
  $LC up 1 >/dev/null 2>&1 || { echo "up failed" >&2; $LC down >/dev/null 2>&1; return 1; }
  local leader status floor
  leader=$($LC leader minion1)
  cp "$large" "/proc/$leader/root/run/bench-large.tar"
  status=$(nsenter -t "$leader" -a -- /usr/bin/k8s-agent status --json --no-units)
  floor=$(nsenter -t "$leader" -a -- sh -c "$FLOOR")
  $LC down >/dev/null 2>&1
  local imported started per sum=0 m
  imported=$(field transition_at.import-images <<<"$status")
  started=$(field transition_at.start-units <<<"$status")
  if [ "$imported" = 0 ] || [ "$started" = 0 ]; then echo "no import-images or start-units transition" >&2; return 1; fi
  per=$(field join.images.millis <<<"$status")
  for m in $per; do sum=$((sum + m)); done
  # shellcheck disable=SC2086,SC2046 # the lists are split into words, as the old Python print(*list) did
  echo $((started - imported)) $sum $per "|" $floor "|" $(field join.images.reference <<<"$status")
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
maxof() { sort -n | tail -n 1; }

$LC rootfs >/dev/null 2>&1 # warm the caches once
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c $((85 * 1024 * 1024)) /dev/urandom >"$work/blob"
large=$work/large.tar
target/release/imagebuilder oci-image --ref localhost/bench/large:1 --file "$work/blob:/blob:0644" --out "$large" \
  --created 1 >/dev/null
results=()
for i in $(seq "$REPS"); do
  r=$(run) || exit 1
  results+=("$r")
  echo "run $i: $r" >&2
done

agent_phase=$(printf '%s\n' "${results[@]}" | awk '{ print $1 }')
agent_sum=$(printf '%s\n' "${results[@]}" | awk '{ print $2 }')
floor_sum=$(printf '%s\n' "${results[@]}" | awk -F'|' '{ n = split($2, v, " "); s = 0; for (i = 1; i < n; i++) s += v[i]; print s }')
floor_large=$(printf '%s\n' "${results[@]}" | awk -F'|' '{ n = split($2, v, " "); print v[n] }')
names=$(printf '%s\n' "${results[0]}" | awk -F'|' '{ print $3 }')
sizes=$(for f in demo/artifacts/*.oci.tar; do printf '%s %s KiB; ' "$(basename "$f")" $(( $(stat -c %s "$f") / 1024 )); done)

echo "| import of the baked images on a fresh minion ($names; $sizes$REPS runs) | median | max |"
echo "|---|---|---|"
echo "| k8s-agent \`import-images\` phase (list + check, import + pin each, list + check, compare) | $(median <<<"$agent_phase") ms | $(maxof <<<"$agent_phase") ms |"
echo "| k8s-agent, import + label of the images (sum of its per-image times) | $(median <<<"$agent_sum") ms | $(maxof <<<"$agent_sum") ms |"
echo "| floor: plain \`ctr images import\` of the same archives into a private containerd on the node | $(median <<<"$floor_sum") ms | $(maxof <<<"$floor_sum") ms |"
echo "| scale: plain \`ctr images import\` of a synthetic 85 MiB single-layer image (weave-kube 2.8.1's size) | $(median <<<"$floor_large") ms | $(maxof <<<"$floor_large") ms |"
