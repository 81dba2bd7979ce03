#!/usr/bin/env bash
# Static checks of the Packer templates, offline, in seconds (run by .ci/run on every submission):
#   - `packer fmt -check` on every template in packer/;
#   - `packer validate` of packer/node.pkr.hcl, both sources (amazon-ebs needs no AWS credentials to validate);
#   - the validation is real: broken copies of the template (no ami_name, a misspelt key, an unknown source type, a
#     bad layer_sha256, a missing layer sidecar) must FAIL validation, each with the expected message;
#   - Debian's packer 1.6.6 rejects plugins.pkr.hcl's required_plugins (so 1.6.6 is pointed at node.pkr.hcl alone);
#     with Packer 1.7 or later the directory (both files) is validated instead;
#   - shellcheck of packer/scripts/*.sh and tests/packer/*.sh (when shellcheck is installed), and the lock parser of
#     provision.sh against pretty and compact lock files;
#   - packer/render-user-data.sh: both roles render, conditional blocks, new-cluster, and the HA control plane's
#     master user data (CONTROL_PLANE_SIZE and the shared keys only when it is set, decoding to new-cluster's files).
# Prints one line per check and a final "N passed, N failed" line; exits 1 if any check failed.
set -euo pipefail
cd "$(dirname "$0")/../.."

export CHECKPOINT_DISABLE=1 # no call home to checkpoint.hashicorp.com
command -v packer >/dev/null || {
  echo "validate.sh: packer is missing (apt-get install -y packer)" >&2
  exit 2
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PACKER_CACHE_DIR=$work/packer_cache

passed=0 failed=0
ok() {
  echo "ok: $*"
  passed=$((passed + 1))
}
not_ok() {
  echo "FAIL: $*"
  failed=$((failed + 1))
}

version=$(packer version | sed -n 's/^Packer v\([0-9][0-9.]*\).*/\1/p' | head -n 1)
echo "packer $version"
modern=0
if [ "$(printf '%s\n1.7.0\n' "$version" | sort -V | head -n 1)" = 1.7.0 ]; then modern=1; fi

# A stand-in layer: validation reads the sidecar (the template takes the digest from it) and checks the file
# provisioner's source exists, nothing more.
printf 'not a real layer\n' >"$work/layer.tar.gz"
(cd "$work" && sha256sum layer.tar.gz >layer.tar.gz.sha256)
vars=(-var "layer=$work/layer.tar.gz" -var "qemu_output_dir=$work/qemu-out"
  -var "qemu_base_checksum=sha256:$(printf '%064d' 0)")

# --- fmt
if out=$(packer fmt -check -diff packer/ 2>&1); then ok "packer fmt -check packer/"; else
  not_ok "packer fmt -check packer/ (run: packer fmt packer/)"
  echo "$out"
fi

# --- validate the template as shipped
target=packer/node.pkr.hcl
if [ "$modern" = 1 ]; then target=packer/; fi
if out=$(packer validate "${vars[@]}" "$target" 2>&1); then ok "packer validate $target (amazon-ebs.node, qemu.node)"; else
  not_ok "packer validate $target"
  echo "$out"
fi
for src in amazon-ebs.node qemu.node; do
  if out=$(packer validate -only="$src" "${vars[@]}" "$target" 2>&1); then ok "packer validate -only=$src"; else
    not_ok "packer validate -only=$src"
    echo "$out"
  fi
done

# --- the validation catches real mistakes: each broken copy must fail with its message
expect_invalid() { # NAME EXPECTED-REGEX SED-SCRIPT [extra packer args...]
  local name=$1 want=$2 script=$3 out
  shift 3
  mkdir -p "$work/$name"
  sed -e "$script" packer/node.pkr.hcl >"$work/$name/node.pkr.hcl"
  cp -r packer/scripts "$work/$name/"
  if cmp -s packer/node.pkr.hcl "$work/$name/node.pkr.hcl" && [ $# -eq 0 ]; then
    not_ok "invalid template '$name': the edit changed nothing (the template changed? update this test)"
    return
  fi
  if out=$(packer validate "${vars[@]}" "$@" "$work/$name/node.pkr.hcl" 2>&1); then
    not_ok "invalid template '$name' passed packer validate"
  elif echo "$out" | grep -qE "$want"; then
    ok "invalid template '$name' is rejected: $(echo "$out" | grep -m 1 -oE "$want")"
  else
    not_ok "invalid template '$name' failed without /$want/:"
    echo "$out"
  fi
}
expect_invalid no-ami-name 'ami_name must be specified' '/^  ami_name /d'
expect_invalid misspelt-key 'instance_typo' 's/^  instance_type = var.instance_type/  instance_typo = var.instance_type/'
expect_invalid unknown-builder 'qemuu' 's/^source "qemu" "node"/source "qemuu" "node"/'
expect_invalid bad-sha256 'layer_sha256 must be empty or 64' '' -var layer_sha256=abc
expect_invalid no-sidecar 'no file exists' '' -var "layer=$work/missing/layer.tar.gz"

# --- what differs with 1.6.6: required_plugins
if [ "$modern" = 1 ]; then
  ok "packer $version reads required_plugins (validated with the directory above)"
elif out=$(packer validate "${vars[@]}" packer/ 2>&1); then
  not_ok "packer $version accepted the directory with required_plugins (unexpected: update packer/README.md)"
elif echo "$out" | grep -q 'Blocks of type "required_plugins" are not expected here'; then
  ok "packer $version rejects required_plugins, as packer/README.md says: validate/build packer/node.pkr.hcl"
else
  not_ok "packer $version failed on the directory for another reason:"
  echo "$out"
fi

# --- shell
if command -v shellcheck >/dev/null; then
  if out=$(shellcheck -x packer/scripts/*.sh tests/packer/*.sh demo/*.sh tests/nspawn/*.sh tests/fresh-machine/*.sh tests/local/*.sh tests/conformance/*.sh bench/*.sh 2>&1); then
    ok "shellcheck packer/scripts tests/packer demo tests/nspawn tests/fresh-machine tests/local tests/conformance bench"
  else
    not_ok "shellcheck"
    echo "$out"
  fi
else
  echo "skip: shellcheck is not installed"
fi
if bash -n packer/scripts/provision.sh; then ok "bash -n provision.sh"; else not_ok "bash -n provision.sh"; fi

# provision.sh's lock parser, on pretty (serde_json's to_string_pretty) and compact locks, an empty list, no list.
parser=$(sed -n '/^host_packages() {/,/^}/p' packer/scripts/provision.sh)
[ -n "$parser" ] || not_ok "host_packages() not found in provision.sh"
printf '{\n  "lock_version": 1,\n  "host_packages": [\n    "conntrack",\n    "socat",\n    "libseccomp2"\n  ],\n  "artifacts": [\n    {"name": "x", "files": ["a"]}\n  ]\n}\n' >"$work/pretty.json"
printf '{"lock_version":1,"host_packages":["conntrack","socat","libseccomp2"],"artifacts":[]}' >"$work/compact.json"
printf '{"lock_version":1,"host_packages":[],"artifacts":[]}' >"$work/empty.json"
printf '{"lock_version":1,"artifacts":[]}' >"$work/none.json"
parse() { bash -c "$parser"$'\n''host_packages "$1" | tr "\n" " "' _ "$1"; }
for f in pretty compact; do
  got=$(parse "$work/$f.json")
  if [ "$got" = "conntrack socat libseccomp2 " ]; then ok "lock parser: $f lock"; else not_ok "lock parser: $f lock gave '$got'"; fi
done
if got=$(parse "$work/empty.json") && [ -z "$got" ]; then ok "lock parser: empty list"; else not_ok "lock parser: empty list gave '$got'"; fi
if bash -c "$parser"$'\n''host_packages "$1"' _ "$work/none.json" >/dev/null 2>&1; then
  not_ok "lock parser: a lock without host_packages was accepted"
else
  ok "lock parser: a lock without host_packages is an error"
fi
if [ -f out/demo/lock.json ]; then
  got=$(parse out/demo/lock.json)
  if [ -n "$got" ]; then ok "lock parser: out/demo/lock.json lists: $got"; else not_ok "lock parser: out/demo/lock.json gave nothing"; fi
fi

# --- the example user data renders completely (the placeholders the launchers fill are all known)
printf 'not a real certificate\n' >"$work/pem"
for role in master minion; do
  if out=$(CLUSTER_NAME=ci DNS_DOMAIN=k8s HOST_CHECKS=warn KUBE_APISERVER_ARGS='' WEAVE_CONSENSUS=3 \
    CA_CERT_HASH="sha256:$(printf '%064d' 0)" BOOTSTRAP_TOKEN=abcdef.0123456789abcdef CA_CRT_FILE="$work/pem" \
    CA_KEY_FILE="$work/pem" packer/render-user-data.sh "$role" 2>&1) &&
    [ "$(echo "$out" | head -n 1)" = "#cloud-config" ] &&
    ! echo "$out" | grep -v '^[[:space:]]*#' | grep -q '@[A-Z0-9_]*@' &&
    echo "$out" | grep -q "path: /etc/sysconfig/kubernetes-${role}s"; then
    ok "packer/user-data/$role.yaml renders (role file /etc/sysconfig/kubernetes-${role}s, no placeholder left)"
  else
    not_ok "packer/user-data/$role.yaml does not render:"
    echo "$out"
  fi
done
# --- self-registration renders only when asked for: DNS_UPDATE_* lines and the 0600 key file, or neither
common=(CLUSTER_NAME=ci WEAVE_CONSENSUS=3 CA_CERT_HASH="sha256:$(printf '%064d' 0)" BOOTSTRAP_TOKEN=abcdef.0123456789abcdef)
if with=$(env "${common[@]}" DNS_UPDATE_SERVER=10.0.0.2 DNS_UPDATE_TSIG_NAME=k8s-agent DNS_UPDATE_KEY_FILE="$work/pem" \
  DNS_UPDATE_RECORDS="minions weave-core" packer/render-user-data.sh minion 2>&1) &&
  without=$(env "${common[@]}" packer/render-user-data.sh minion 2>&1) &&
  grep -q '^      DNS_UPDATE_SERVER=10.0.0.2$' <<<"$with" && grep -q '^      DNS_UPDATE_RECORDS=minions weave-core$' <<<"$with" &&
  grep -q 'path: /etc/k8s-agent/dns-update.key' <<<"$with" && ! grep -q '#@' <<<"$with" &&
  ! grep -v '^[[:space:]]*#' <<<"$without" | grep -q 'DNS_UPDATE\|dns-update.key' && ! grep -q '#@' <<<"$without" &&
  grep -q '^      WEAVE_PEERS_RECORD=weave-core$' <<<"$without"; then
  ok "minion.yaml: DNS_UPDATE_* and the key file render only with DNS_UPDATE_SERVER; WEAVE_PEERS_RECORD defaults to weave-core"
else
  not_ok "minion.yaml conditional blocks:"
  echo "$with"
fi
# --- `new-cluster` makes a CA (openssl: a CA certificate, its key, kubeadm's pin) and a token that render both roles
# shellcheck disable=SC1091 # cluster.env is written by the command itself
if out=$(packer/render-user-data.sh new-cluster "$work/pki" 2>&1) &&
  (. "$work/pki/cluster.env" && CLUSTER_NAME=ci WEAVE_CONSENSUS=3 packer/render-user-data.sh master >"$work/m.yaml" &&
    CLUSTER_NAME=ci WEAVE_CONSENSUS=3 packer/render-user-data.sh minion >"$work/n.yaml") &&
  openssl x509 -in "$work/pki/ca.crt" -noout -ext basicConstraints 2>/dev/null | grep -q 'CA:TRUE' &&
  grep -q "CA_CERT_HASH=sha256:$(openssl x509 -pubkey -noout -in "$work/pki/ca.crt" | openssl pkey -pubin -outform der |
    sha256sum | cut -d' ' -f1)" "$work/n.yaml" &&
  grep -qE 'BOOTSTRAP_TOKEN=[a-z0-9]{6}\.[a-z0-9]{16}$' "$work/n.yaml" &&
  [ "$(stat -c %a "$work/pki/ca.key")" = 600 ] &&
  ! packer/render-user-data.sh new-cluster "$work/pki" >/dev/null 2>&1; then
  ok "render-user-data.sh new-cluster makes a CA + pin + token that render both roles, and never replaces a CA"
else
  not_ok "render-user-data.sh new-cluster: $out"
fi
# --- HA control plane: new-cluster's shared keys, rendered (decoding to the same bytes) only with CONTROL_PLANE_SIZE
ha_ok=1
ha_why=""
# b64 content of write_files entry PATH in a rendered file, decoded
decoded() { awk -v p="  - path: $2" '$0 == p { f = 1; next } f && $1 == "content:" { print $2; exit }' "$1" | base64 -d; }
# shellcheck disable=SC1091 # cluster.env is written by new-cluster above
if ! (. "$work/pki/cluster.env" && CLUSTER_NAME=ci CONTROL_PLANE_SIZE=3 packer/render-user-data.sh master >"$work/m3.yaml"); then
  ha_ok=0 ha_why="CONTROL_PLANE_SIZE=3 does not render"
fi
for pair in front-proxy-ca.crt:front-proxy-ca.crt front-proxy-ca.key:front-proxy-ca.key sa.key:sa.key sa.pub:sa.pub \
  etcd/ca.crt:etcd-ca.crt etcd/ca.key:etcd-ca.key ca.key:ca.key; do
  if ! cmp -s <(decoded "$work/m3.yaml" "/etc/kubernetes/pki/${pair%%:*}") "$work/pki/${pair#*:}"; then
    ha_ok=0 ha_why+=" /etc/kubernetes/pki/${pair%%:*} is not DIR/${pair#*:};"
  fi
  if grep -q "path: /etc/kubernetes/pki/${pair%%:*}\$" "$work/m.yaml" && [ "${pair%%:*}" != ca.key ]; then
    ha_ok=0 ha_why+=" ${pair%%:*} rendered without CONTROL_PLANE_SIZE;"
  fi
done
grep -q '^      CONTROL_PLANE_SIZE=3$' "$work/m3.yaml" || { ha_ok=0 ha_why+=" no CONTROL_PLANE_SIZE=3 in the role file;"; }
! grep -v '^#' "$work/m.yaml" | grep -q CONTROL_PLANE_SIZE || { ha_ok=0 ha_why+=" CONTROL_PLANE_SIZE without it set;"; }
head -n 1 "$work/pki/sa.key" | grep -qx -- '-----BEGIN PRIVATE KEY-----' || { ha_ok=0 ha_why+=" sa.key is not PKCS#8;"; }
[ "$(openssl pkey -in "$work/pki/sa.key" -pubout 2>/dev/null)" = "$(cat "$work/pki/sa.pub")" ] || { ha_ok=0 ha_why+=" sa.pub is not sa.key's;"; }
for ca in front-proxy-ca etcd-ca; do
  openssl x509 -in "$work/pki/$ca.crt" -noout -subject -ext basicConstraints 2>/dev/null | tr -d '\n' |
    grep -q "CN = $ca.*CA:TRUE" || { ha_ok=0 ha_why+=" $ca.crt is not a CA named $ca;"; }
  [ "$(stat -c %a "$work/pki/$ca.key")" = 600 ] || { ha_ok=0 ha_why+=" $ca.key is not 0600;"; }
done
if [ "$ha_ok" = 1 ]; then
  ok "master.yaml with CONTROL_PLANE_SIZE=3: the role key and new-cluster's front-proxy CA, sa.key/sa.pub and etcd CA; without it: neither"
else
  not_ok "HA control plane user data:$ha_why"
fi

if out=$(env -u CLUSTER_NAME packer/render-user-data.sh minion 2>&1); then
  not_ok "render-user-data.sh rendered minion.yaml without values"
elif echo "$out" | grep -q 'needs: .*CLUSTER_NAME'; then
  ok "render-user-data.sh names the missing values"
else
  not_ok "render-user-data.sh failed without naming the missing values: $out"
fi

echo "packer: $passed passed, $failed failed"
[ "$failed" = 0 ]
