# shellcheck shell=bash
# tests/local/bundle.sh: sourced by tests/local/e2e.sh while the local cluster is up. The support bundle, on a booted
# master and a booted minion:
#   - secrets are first leaked on purpose into the journals the bundle packs (the bootstrap token and, on the
#     master, the cluster CA's private key, logged as k8s-agent.service's messages with `logger --journald`);
#   - `k8s-agent bundle --out FILE` writes one tar.gz (mode 0600) with the members docs/agent.md lists;
#   - an independent scan (Python, not the agent's code) of every member finds none of the node's secrets BY
#     CONTENT: the token secret, every line of every PEM private key on the node (/etc/kubernetes/pki, kubelet's
#     client key), every kubeconfig's client-key-data and token, and the base64 of each key file;
#   - the role file in the bundle shows BOOTSTRAP_TOKEN=<redacted> and keeps its other keys.
# Uses ok/bad/check/inside/field from e2e.sh.

BUNDLE_MEMBERS="README.txt status.txt status.json state.json checks.json checks-now.txt dns.json lock.json
versions.txt cloud-init/status.json metrics/k8s-agent.prom journal/k8s-agent.service.txt"

# The node's secrets, one per line (values never printed): found by walking the files that hold them.
node_secrets() { # node
  inside "$1" python3 - <<'EOF'
import base64, glob, os, re
out = set()
def pem_lines(text):
    for block in re.findall(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", text, re.S):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("-----"):
                out.add(line)
        return True
    return False
files = [f for d in ("/etc/kubernetes", "/var/lib/kubelet/pki") for f in glob.glob(d + "/**", recursive=True)
         if os.path.isfile(f)]
files += glob.glob("/etc/sysconfig/kubernetes-*")
for f in files:
    text = open(f, errors="replace").read()
    if pem_lines(text):
        out.add(base64.b64encode(text.encode()).decode())
    for m in re.finditer(r"^\s*(client-key-data|token):\s*(\S+)", text, re.M):
        out.add(m.group(2))
        try:
            pem_lines(base64.b64decode(m.group(2)).decode())
        except Exception:
            pass
    for m in re.finditer(r"^BOOTSTRAP_TOKEN=([a-z0-9]{6})\.([a-z0-9]{16})$", text, re.M):
        out.add(m.group(2))
for s in sorted(out):
    if len(s) >= 12:
        print(s)
EOF
}

echo "--- support bundle: everything an operator needs, none of the node's secrets"
token=$(cat /run/k8s-local/pki/token)
for n in master minion1; do
  inside "$n" sh -c "printf 'MESSAGE=test leak: joining with --token %s\nOBJECT_SYSTEMD_UNIT=k8s-agent.service\n' '$token' |
    logger --journald"
  if [ "$n" = master ]; then
    inside "$n" sh -c "{ printf 'OBJECT_SYSTEMD_UNIT=k8s-agent.service\n'; printf 'MESSAGE='; tr '\n' ' ' </etc/kubernetes/pki/ca.key; echo; } |
      logger --journald"
  fi
  check "$n: the leaked token is in the journal the bundle packs (the scrubber has something to do)" \
    bash -c "nsenter -t $($LC leader "$n") -a -- journalctl -b -u k8s-agent.service --no-pager -o cat | grep -qF '${token#*.}'"
  out=/tmp/k8s-agent-bundle-test.tar.gz
  inside "$n" rm -f "$out"
  if listing=$(inside "$n" /usr/bin/k8s-agent bundle --out "$out" 2>&1); then
    ok "$n: k8s-agent bundle wrote $out ($(grep -c '^ ' <<<"$listing") members)"
  else
    bad "$n: k8s-agent bundle failed: $listing"
    continue
  fi
  echo "$listing" | while IFS= read -r l; do echo "    $l"; done
  check "$n: the bundle is mode 0600" [ "$(inside "$n" stat -c %a "$out")" = 600 ]
  extract=/tmp/k8s-bundle-$n
  rm -rf "$extract" && mkdir -p "$extract"
  inside "$n" cat "$out" | tar -xzf - -C "$extract"
  missing=""
  for m in $BUNDLE_MEMBERS "role-file/kubernetes-$([ "$n" = master ] && echo masters || echo minions)"; do
    [ -s "$extract/k8s-agent-bundle/$m" ] || missing="$missing $m"
  done
  check "$n: the bundle has status, state, checks, DNS answers, lock, versions, cloud-init, metrics, journals, role file${missing:+ (missing:$missing)}" \
    [ -z "$missing" ]
  units=$(inside "$n" /usr/bin/k8s-agent status --json --no-units | field units_started.count)
  check "$n: a journal per role unit started ($units) plus the agent's" \
    [ "$(find "$extract/k8s-agent-bundle/journal" -name '*.txt' | wc -l)" -eq "$((units + 1))" ]
  secrets_file=/tmp/k8s-bundle-secrets-$n
  node_secrets "$n" >"$secrets_file"
  kinds=$(wc -l <"$secrets_file")
  leaked=$(python3 - "$secrets_file" "$extract" <<'EOF'
import os, sys
secrets = [l.rstrip("\n") for l in open(sys.argv[1]) if l.strip()]
hits = 0
for d, _, files in os.walk(sys.argv[2]):
    for f in files:
        text = open(os.path.join(d, f), errors="replace").read()
        for s in secrets:
            if s in text:
                hits += 1
                print(f"secret #{secrets.index(s)} in {os.path.relpath(os.path.join(d, f), sys.argv[2])}", file=sys.stderr)
        if "PRIVATE KEY-----" in text:
            hits += 1
            print(f"a PEM private key in {f}", file=sys.stderr)
print(hits)
EOF
  )
  check "$n: an independent scan finds none of the node's $kinds secret strings (token secret, PEM key lines, kubeconfig credentials) in the bundle" \
    [ "$leaked" = 0 ]
  rm -f "$secrets_file"
  role_member=$(find "$extract/k8s-agent-bundle/role-file" -type f | head -n 1)
  check "$n: the bundle's role file says BOOTSTRAP_TOKEN=<redacted> and keeps CLUSTER_NAME" \
    bash -c "grep -qx 'BOOTSTRAP_TOKEN=<redacted>' '$role_member' && grep -q '^CLUSTER_NAME=' '$role_member'"
  check "$n: the bundle's status.txt has the boot timeline with cloud-init's stages" \
    bash -c "grep -q '^timeline' '$extract/k8s-agent-bundle/status.txt' && grep -q 'cloud-init init-local' '$extract/k8s-agent-bundle/status.txt'"
  inside "$n" rm -f "$out"
done
