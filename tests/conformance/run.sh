#!/usr/bin/env bash
# tests/conformance/run.sh: Kubernetes' own conformance tests (e2e.test, built from k8s.io/kubernetes at the cluster's
# version by tests/conformance/build-e2e-test.sh) against the local cluster that is up (demo/local-cluster.sh up).
#
#   tests/conformance/run.sh             the focused set below (FOCUS): a few minutes; exit 1 if one fails
#   tests/conformance/run.sh --full      every [Conformance] test but [Disruptive]/[Flaky] ones, [Serial] included, in
#                                        CONFORMANCE_PROCS (3) ginkgo processes: the benchmark run (pass/fail/skip counts;
#                                        limited to CONFORMANCE_TIMEOUT, default 3h)
#   tests/conformance/run.sh --list      the tests the focus selects (ginkgo dry run)
#
# The test images. e2e.test names its images in registry.k8s.io; the nodes have no registry, so the images the focused
# tests need are made here and imported into every minion's containerd (not baked: they are test inputs), under the
# names KUBE_TEST_REPO_LIST maps the e2e registries to (promoterE2eRegistry → localhost/k8s-image/e2e, gcRegistry →
# localhost/k8s-image):
#   - agnhost:2.66.1 — the real agnhost (k8s.io/kubernetes/test/images/agnhost, same module and version) laid out as
#     upstream's Dockerfile does (/agnhost, /agnhost-2, porter's localhost.crt/key, entrypoint /agnhost, cmd pause);
#     upstream bases it on Alpine with curl, nc (OpenBSD), dig, iproute2 …, which cannot be had here, so this one
#     carries Debian 13's curl, netcat-openbsd, dig (bind9-dnsutils), getent (libc-bin) and dash as /bin/sh (with the libraries they
#     need, from Debian's packages through demo/apt-suite.sh, extracted, never installed) and busybox-static's
#     applets for the rest;
#   - glibc-dns-testing:2.1.1 — upstream's is Debian with dnsutils; this one is the same Debian userland as agnhost's
#     (dig, getent, dash);
#   - busybox:1.37.0-2 — the demo's busybox workload image under e2e's name (cmd sh, as upstream's);
#   - pause:3.10.2 — this workspace's pause program under e2e's name.
# e2e.test runs in the master's network namespace (it reaches the nodes and, through the master's routes, the pods)
# with admin.conf pointed at the master's address. The JUnit report and e2e.test's log go to $REPORT_DIR (default
# /tmp/k8s-conformance); the summary line is "conformance: N passed, M failed, K skipped (S s)".
set -euo pipefail
cd "$(dirname "$0")/../.."
LC=demo/local-cluster.sh
VERSION=v1.37.2
REPORT_DIR=${REPORT_DIR:-${TMPDIR:-/tmp}/k8s-conformance}
mode=${1:-focused}
# The focused run leaves out [Serial] tests (they run alone); the full run includes them (it runs one test at a time).
skip='\[Serial\]|\[Disruptive\]|\[Flaky\]'
# The whole run's limit (ginkgo's suite timeout); specs left when it expires are reported as not run.
timeout=${CONFORMANCE_TIMEOUT:-3h}

# The focused set: conformance tests of pods, services, DNS-free networking and the API a node's join depends on,
# chosen to run in a few minutes here with the images above (docs/testing.md "Conformance").
FOCUS_TESTS=(
  'Pods should get a host IP'
  'Pods should be submitted and removed'
  'Pods should be updated'
  'Pods should contain environment variables for services'
  'Downward API should provide pod name, namespace and IP address as env vars'
  'Downward API should provide host IP as an env var'
  'Containers should use the image defaults if command and args are blank'
  'Containers should be able to override the image.s default arguments'
  'Services should provide secure master service'
  'Services should find a service from listing all namespaces'
  'Services should serve a basic endpoint from pods'
  'Services should serve multiport endpoints from pods'
  'Services should be able to create a functioning NodePort service'
  'Service endpoints latency should not be very high'
  'Networking Granular Checks: Pods should function for intra-pod communication: http'
  'Networking Granular Checks: Pods should function for intra-pod communication: udp'
  'Proxy version v1 should proxy through a service and a pod'
  'DNS should provide DNS for the cluster'
  'DNS should provide DNS for services'
  'DNS should resolve DNS of partial qualified names for services'
  'DNS should provide DNS for pods for Hostname'
  'DNS should provide DNS for ExternalName services'
  'DNS should support configurable pod DNS nameservers'
  'AdmissionWebhook .Privileged:ClusterAdmin. should mutate configmap'
  'Secrets should be consumable from pods in env vars'
  'ConfigMap should be consumable via environment variable'
)
focus=$(IFS='|'; echo "${FOCUS_TESTS[*]}")
focus="\\[Conformance\\].*($focus)|($focus).*\\[Conformance\\]"
case "$mode" in
  focused|--list) ;;
  --full) focus='\[Conformance\]' skip='\[Disruptive\]|\[Flaky\]' ;;
  *) echo "usage: $0 [--full|--list]" >&2; exit 2 ;;
esac

dir=$(tests/conformance/build-e2e-test.sh "$VERSION")
e2e=$dir/e2e.test
if [ "$mode" = --list ]; then
  "$e2e" --ginkgo.dry-run --ginkgo.no-color --ginkgo.focus="$focus" --ginkgo.skip="$skip" --ginkgo.v 2>/dev/null |
    grep -E '^\s*\[It\]|\[Conformance\]' | sed 's/^ *//' | sort -u
  exit 0
fi

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
$LC leader master >/dev/null 2>&1 || { echo "no local cluster is up: demo/local-cluster.sh up" >&2; exit 2; }
imagebuilder=target/release/imagebuilder
busybox=demo/artifacts/.build/busybox
if [ ! -x "$imagebuilder" ] || [ ! -x "$busybox" ]; then echo "run ./demo/build.sh first (imagebuilder, busybox)" >&2; exit 2; fi
pause_bin=target/x86_64-unknown-linux-gnu/release/pause
work=$(mktemp -d /run/k8s-local/conformance-work.XXXXXX)
trap 'rm -rf "$work"' EXIT
# debian_root NAME PKG…: the closure of PKGs' Depends in Debian 13, downloaded and extracted (never installed) into a
# directory cached by the list of package versions; prints the directory.
debian_root() {
  local name=$1 closure root debs deb
  shift
  closure=$(demo/apt-suite.sh trixie closure "$@")
  root=$cache/e2e-test/$name-root-$(sha256sum <<<"$closure" | cut -c1-16)
  if [ ! -d "$root" ]; then
    debs=$(mktemp -d "$cache/e2e-test/.debs.XXXXXX")
    chmod 0755 "$debs"
    # shellcheck disable=SC2086 # one name=version per word
    demo/apt-suite.sh trixie download "$debs" $closure >/dev/null
    mkdir -p "$debs/root"
    for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$debs/root"; done
    rm -rf "$debs/root/usr/share/doc" "$debs/root/usr/share/man" "$debs/root/usr/share/locale" "$debs/root/usr/share/lintian"
    mv "$debs/root" "$root"
    rm -rf "$debs"
  fi
  echo "$root"
}
# root_files ROOT [SKIP…]: --file/--symlink arguments for every file and link under ROOT but the paths SKIP
# (NUL-separated, for mapfile -d '').
root_files() {
  local f rel root=$1
  shift
  while IFS= read -r -d '' f; do
    rel=${f#"$root"}
    case " $* " in *" $rel "*) continue ;; esac
    if [ -L "$f" ]; then printf -- '--symlink\0%s\0' "$rel:$(readlink "$f")"; else printf -- '--file\0%s\0' "$f:$rel:$(stat -c %a "$f")"; fi
  done < <(find "$root" \( -type f -o -type l \) -print0 | sort -z)
}
cache=${K8S_TEST_CACHE:-/var/cache/k8s-image-test}
# agnhost's userland: Debian 13's curl, netcat-openbsd and dash (/bin/sh) with what they need at run time (the closure of their
# Depends, extracted, never installed; cached by the list of package versions), busybox's applets for the rest.
root=$(debian_root tools curl netcat-openbsd dash bind9-dnsutils libc-bin)
mapfile -d '' tools < <(root_files "$root")
# /bin/sh is dash, not busybox's ash: busybox's shell runs its own applets before PATH (its `nc` has no -v).
applets=(cat echo env hostname ip ls ping ps seq sleep true wget grep sed awk head tail test mkdir rm touch)
tool_links=()  # dash ships /usr/bin/sh -> dash
for a in "${applets[@]}"; do tool_links+=(--symlink "/usr/bin/$a:busybox"); done
porter=${GOMODCACHE:-$cache/go/mod}/k8s.io/kubernetes@$VERSION/test/images/agnhost/porter
pack() { "$imagebuilder" oci-image --created 1767225600 --out "$@" >/dev/null; }
# As upstream's Dockerfile lays it out: /agnhost (and /agnhost-2), porter's localhost.crt/key in the working
# directory, entrypoint /agnhost, cmd pause; the usr-merged Debian root (/bin, /lib, /lib64 → usr/…).
# (One layout for every agnhost tag this run makes: agnhost:2.55 below is the same image.)
agnhost_layout=(--file "$dir/agnhost:/agnhost:0755" --symlink /agnhost-2:agnhost
  --file "$porter/localhost.crt:/localhost.crt:0644" --file "$porter/localhost.key:/localhost.key:0644" "${tools[@]}"
  --file "$busybox:/usr/bin/busybox:0755" "${tool_links[@]}" --symlink /usr/bin/nc:nc.openbsd
  --symlink /bin:usr/bin --symlink /lib:usr/lib --symlink /lib64:usr/lib64
  --env PATH=/usr/local/bin:/usr/bin:/bin:/ --entrypoint /agnhost --cmd pause)
pack "$work/agnhost.tar" --ref localhost/k8s-image/e2e/agnhost:2.66.1 "${agnhost_layout[@]}"
# glibc-dns-testing: upstream's is Debian with dnsutils (dig); the DNS tests run `getent hosts` and dig in it: the
# same Debian userland as agnhost's above.
pack "$work/glibc-dns-testing.tar" --ref localhost/k8s-image/e2e/glibc-dns-testing:2.1.1 "${tools[@]}" \
  --file "$busybox:/usr/bin/busybox:0755" "${tool_links[@]}" --symlink /usr/bin/nc:nc.openbsd \
  --symlink /bin:usr/bin --symlink /lib:usr/lib --symlink /lib64:usr/lib64 --env PATH=/usr/bin:/bin --cmd sh
# Every applet this busybox has, as upstream's busybox image (tests run hexdump, sysctl, false, …).
mapfile -t applets < <("$busybox" --list | grep -vx busybox)
links=()
for a in "${applets[@]}"; do links+=(--symlink "/bin/$a:busybox"); done
: >"$work/keep"
# /tmp exists in upstream's busybox image (tests write /tmp/health and read it back in their probes).
pack "$work/busybox.tar" --ref localhost/k8s-image/e2e/busybox:1.37.0-2 --file "$busybox:/bin/busybox:0755" \
  "${links[@]}" --file "$work/keep:/tmp/.keep:0644" --env PATH=/bin --cmd sh
pack "$work/pause.tar" --ref localhost/k8s-image/pause:3.10.2 --file "$pause_bin:/pause:0755" --entrypoint /pause \
  --user 65535:65535
images=(agnhost glibc-dns-testing busybox pause)
if [ "$mode" = --full ]; then
  # The other images the [Conformance] tests name, laid out as their upstream Dockerfiles do:
  #   - kitten:1.8 and nautilus:1.8 — agnhost plus the pictures and data.json from the module, cmd test-webserver;
  #   - nonroot:1.5 — upstream is debian-base with USER 1234: here the Debian userland above, user 1234;
  #   - nginx:1.27.0-2 and nginx:1.28.0-2 — Debian 13's nginx (1.26, extracted with what it needs), listening on 80
  #     and serving /usr/share/nginx/html as upstream's image does (upstream builds nginx 1.27/1.28 from source);
  #   - agnhost:2.55 (AgnhostPrev, only used as "the previous image" of update tests) — a TEST DOUBLE: the same
  #     agnhost 2.66.1 under the older tag; building 2.55 would need an older k8s.io/kubernetes module.
  # Not made (their tests fail, counted as such): sample-apiserver, the volume servers, the node-perf images.
  images_dir=${GOMODCACHE:-$cache/go/mod}/k8s.io/kubernetes@$VERSION/test/images
  pack "$work/agnhost-prev.tar" --ref localhost/k8s-image/e2e/agnhost:2.55 "${agnhost_layout[@]}"
  for pic in kitten nautilus; do
    pack "$work/$pic.tar" --ref "localhost/k8s-image/e2e/$pic:1.8" --file "$dir/agnhost:/agnhost:0755" \
      --file "$images_dir/$pic/html/$pic.jpg:/$pic.jpg:0644" --file "$images_dir/$pic/html/data.json:/data.json:0644" \
      "${tools[@]}" --file "$busybox:/usr/bin/busybox:0755" "${tool_links[@]}" \
      --symlink /bin:usr/bin --symlink /lib:usr/lib --symlink /lib64:usr/lib64 \
      --env PATH=/usr/local/bin:/usr/bin:/bin:/ --entrypoint /agnhost --cmd test-webserver
  done
  pack "$work/nonroot.tar" --ref localhost/k8s-image/e2e/nonroot:1.5 "${tools[@]}" \
    --file "$busybox:/usr/bin/busybox:0755" "${tool_links[@]}" --symlink /bin:usr/bin --symlink /lib:usr/lib \
    --symlink /lib64:usr/lib64 --env PATH=/usr/bin:/bin --user 1234 --cmd sh
  nginx_root=$(debian_root nginx nginx)
  mapfile -d '' nginx_files < <(root_files "$nginx_root" /etc/nginx/nginx.conf)
  cat >"$work/nginx.conf" <<'CONF'
user nobody nogroup;
worker_processes 1;
pid /tmp/nginx.pid;
error_log /dev/stderr notice;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  access_log /dev/stdout;
  client_body_temp_path /tmp/client_body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
  server {
    listen 80;
    root /usr/share/nginx/html;
    index index.html;
  }
}
CONF
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$work/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$work/group"
  for tag in 1.27.0-2 1.28.0-2; do
    pack "$work/nginx-$tag.tar" --ref "localhost/k8s-image/e2e/nginx:$tag" "${nginx_files[@]}" \
      --file "$work/nginx.conf:/etc/nginx/nginx.conf:0644" --file "$work/passwd:/etc/passwd:0644" \
      --file "$work/group:/etc/group:0644" \
      --file "$work/keep:/tmp/.keep:0644" --file "$work/keep:/var/log/nginx/.keep:0644" \
      --symlink /bin:usr/bin --symlink /lib:usr/lib --symlink /lib64:usr/lib64 --env PATH=/usr/sbin:/usr/bin \
      --entrypoint nginx --cmd -g --cmd 'daemon off;'
  done
  images+=(agnhost-prev kitten nautilus nonroot nginx-1.27.0-2 nginx-1.28.0-2)
fi
while read -r n role _; do
  [ "$role" = minion ] || continue
  for i in "${images[@]}"; do
    nsenter -t "$($LC leader "$n")" -a -- ctr -n k8s.io images import --local - <"$work/$i.tar" >/dev/null \
      2>"$work/import.err" || { cat "$work/import.err"; exit 1; }
  done
done </run/k8s-local/nodes
printf 'promoterE2eRegistry: localhost/k8s-image/e2e\ngcRegistry: localhost/k8s-image\n' >"$work/repo-list.yaml"
nsenter -t "$($LC leader master)" -a -- cat /etc/kubernetes/admin.conf |
  sed 's#server: https://[^:]*:6443#server: https://10.79.0.10:6443#' >"$work/admin.conf"
rm -rf "$REPORT_DIR"
mkdir -p "$REPORT_DIR"
start=$(date +%s)
set +e
e2e_flags=(--kubeconfig="$work/admin.conf" --provider=skeleton --report-dir="$REPORT_DIR"
  --allowed-not-ready-nodes=0 --node-os-distro=debian)
if [ "$mode" = --full ]; then
  # ginkgo runs the specs in CONFORMANCE_PROCS processes ([Serial] specs alone, at the end) and merges the report.
  KUBE_TEST_REPO_LIST=$work/repo-list.yaml ip netns exec k8s-test-master "$dir/ginkgo" --procs="${CONFORMANCE_PROCS:-3}" \
    --focus="$focus" --skip="$skip" --no-color -v --timeout="$timeout" "$e2e" -- "${e2e_flags[@]}" \
    >"$REPORT_DIR/e2e.log" 2>&1
else
  KUBE_TEST_REPO_LIST=$work/repo-list.yaml ip netns exec k8s-test-master "$e2e" "${e2e_flags[@]}" \
    --ginkgo.focus="$focus" --ginkgo.skip="$skip" --ginkgo.no-color --ginkgo.v --ginkgo.timeout="$timeout" \
    >"$REPORT_DIR/e2e.log" 2>&1
fi
rc=$?
set -e
elapsed=$(( $(date +%s) - start ))
junit=$(find "$REPORT_DIR" -maxdepth 1 -name 'junit*.xml' | head -n 1)
if [ -z "$junit" ]; then
  tail -n 40 "$REPORT_DIR/e2e.log"
  echo "conformance: e2e.test wrote no JUnit report (exit $rc)"
  exit 1
fi
python3 - "$junit" "$elapsed" "$REPORT_DIR/results.tsv" "$mode" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
# Only the specs (`[It] …`); the suite's set-up nodes are reported as test cases too.
cases = [c for c in root.iter("testcase") if "[It]" in (c.get("name") or "")]
passed = failed = skipped_in = skipped_out = 0
rows = []
for c in cases:
    name = c.get("name") or ""
    conformance = "[Conformance]" in name
    skip = c.find("skipped")
    if skip is not None:
        # In the full run a [Conformance] spec reported skipped was selected and did not run: it skipped itself, or
        # the run's time limit came first. The others (all of them in the focused run) are outside the focus.
        state = "skipped"
        if conformance and sys.argv[4] == "--full":
            skipped_in += 1
        else:
            skipped_out += 1
    elif c.find("failure") is not None or c.find("error") is not None:
        state = "failed"
        failed += 1
        print("FAIL", name)
    else:
        state = "passed"
        passed += 1
        if conformance:
            print("ok  ", name)
    if conformance:
        rows.append(f"{state}\t{c.get('time') or ''}\t{name}")
with open(sys.argv[3], "w") as out:
    out.write("\n".join(sorted(rows)) + "\n")
print(f"conformance: {passed} passed, {failed} failed, {skipped_in} skipped ([Conformance] specs that did not run), "
      f"{skipped_out} not in the focus ({sys.argv[2]} s; per spec: {sys.argv[3]})")
PY
if [ "$rc" != 0 ]; then
  echo "conformance: e2e.test exited $rc; its failures (full log: $REPORT_DIR/e2e.log):"
  # awk, not head: head's early exit would fail the pipeline (SIGPIPE, pipefail) and hide e2e.test's exit code.
  { grep -a '^\s*\[FAILED\]' "$REPORT_DIR/e2e.log" || true; } | awk 'NR <= 20' | cut -c1-400 | sed 's/^ */    /'
fi
exit "$rc"
