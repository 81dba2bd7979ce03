#!/usr/bin/env bash
# Render the example user data packer/user-data/ROLE.yaml (ROLE = master | minion): every @NAME@ placeholder outside
# comments is replaced by the environment variable NAME; a placeholder NAME_B64 may instead come from a file named
# by NAME_FILE (base64-encoded here, e.g. CA_CRT_FILE=pki/ca.crt fills @CA_CRT_B64@). Defaults: DNS_DOMAIN=k8s,
# HOST_CHECKS=enforce, KUBE_APISERVER_ARGS empty, WEAVE_PEERS_RECORD=weave-core (the layout for any size: a core group
# of 3 or 5 minions registered in weave-core.<cluster>.<domain> votes, every other minion observes; docs/benchmarks.md
# "Fleet simulation"). Lines between `#@if NAME` and `#@endif` are kept only when NAME (or, for NAME_B64, NAME_FILE) is
# set and not empty: CNI (the pod network: weave, bridge or none; unset = the agent's default, weave);
# CONTROL_PLANE_SIZE (master only: 3 or 5 masters, the key in the role file and the six shared key files from
# FRONT_PROXY_CA_CRT_FILE … ETCD_CA_KEY_FILE; unset = one master, rendered exactly as before);
# self-registration (DNS_UPDATE_SERVER, DNS_UPDATE_TSIG_NAME, DNS_UPDATE_KEY_FILE =
# `tsig-keygen` output, DNS_UPDATE_RECORDS) is rendered only when DNS_UPDATE_SERVER is set. Every missing value is named at once (exit 1); the output goes to
# stdout, so keep it private when it holds secrets (bootstrap token, keys):
#
#   umask 077
#   packer/render-user-data.sh new-cluster pki/        # once: the cluster CA and a bootstrap token (see below)
#   . pki/cluster.env                                  # CA_CRT_FILE, CA_KEY_FILE, CA_CERT_HASH, BOOTSTRAP_TOKEN, …
#   CLUSTER_NAME=prod packer/render-user-data.sh master >master.yaml
#   CLUSTER_NAME=prod CONTROL_PLANE_SIZE=3 packer/render-user-data.sh master >master.yaml   # HA: the same for all 3
#   CLUSTER_NAME=prod WEAVE_CONSENSUS=3 packer/render-user-data.sh minion >minion.yaml
#   aws ec2 run-instances ... --user-data file://minion.yaml
#
# `new-cluster DIR` makes, with openssl, what kubeadm's `init` would: DIR/ca.crt + DIR/ca.key (RSA 2048, CN
# kubernetes, CA for 10 years, keyCertSign/cRLSign), DIR/token (a kubeadm token `[a-z0-9]{6}.[a-z0-9]{16}`), and
# DIR/cluster.env with the four variables above (CA_CERT_HASH is kubeadm's pin: sha256 of the CA's public key).
# It also makes the keys every master of a highly available control plane must share (rendered into master.yaml only
# when CONTROL_PLANE_SIZE is set; packer/user-data/master.yaml's header says why they travel in the user data):
# DIR/front-proxy-ca.crt + .key (CN front-proxy-ca) and DIR/etcd-ca.crt + .key (CN etcd-ca), CAs with the same
# profile as ca.crt; DIR/sa.key (the service-account signing key: RSA 2048, PKCS#8 PEM "BEGIN PRIVATE KEY") and
# DIR/sa.pub (its public key, "BEGIN PUBLIC KEY"). cluster.env then also exports FRONT_PROXY_CA_CRT_FILE,
# FRONT_PROXY_CA_KEY_FILE, SA_KEY_FILE, SA_PUB_FILE, ETCD_CA_CRT_FILE and ETCD_CA_KEY_FILE (absolute paths), which
# fill the matching *_B64 placeholders. DIR is made 0700; the keys, the token and cluster.env are 0600, certificates
# and sa.pub 0644. Everything is made in a temporary directory inside DIR and moved into place at the end (a failure
# leaves nothing half made); it refuses to overwrite an existing CA or any of these files.
# Rotating the token: make a new one (`kubeadm token create` on a master, or a new DIR/token), put it into the
# minions' user data (launch template), then delete the old Secret kube-system/bootstrap-token-<old id>.
set -euo pipefail

# A CA certificate and key: RSA 2048, 10 years, CA:TRUE, keyCertSign/cRLSign (kubeadm's profile). Key 0600.
make_ca() { # dir name cn
  (umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=$3" \
    -keyout "$1/$2.key" -out "$1/$2.crt" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign,cRLSign" 2>/dev/null)
  chmod 0600 "$1/$2.key"
  chmod 0644 "$1/$2.crt"
}

NEW_CLUSTER_FILES=(ca.crt ca.key front-proxy-ca.crt front-proxy-ca.key sa.key sa.pub etcd-ca.crt etcd-ca.key token
  cluster.env)

new_cluster() {
  local dir=$1 f
  [ ! -e "$dir/ca.key" ] || {
    echo "$0: $dir/ca.key exists; refusing to replace a cluster CA" >&2
    exit 1
  }
  for f in "${NEW_CLUSTER_FILES[@]}"; do
    [ ! -e "$dir/$f" ] || {
      echo "$0: $dir/$f exists; refusing to replace a cluster's keys (use a new DIR)" >&2
      exit 1
    }
  done
  command -v openssl >/dev/null || {
    echo "$0: openssl is needed (apt-get install openssl)" >&2
    exit 1
  }
  (umask 077 && mkdir -p "$dir")
  chmod 0700 "$dir"
  local tmp abs
  abs=$(cd "$dir" && pwd)
  tmp=$(mktemp -d "$dir/.new.XXXXXX")
  # shellcheck disable=SC2064 # expand $tmp now: it is local
  trap "rm -rf '$tmp'" EXIT
  make_ca "$tmp" ca kubernetes
  make_ca "$tmp" front-proxy-ca front-proxy-ca
  make_ca "$tmp" etcd-ca etcd-ca
  # The service-account key pair, as kubeadm makes it: sa.key PKCS#8 ("BEGIN PRIVATE KEY"), sa.pub SubjectPublicKeyInfo.
  (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/sa.key" 2>/dev/null)
  chmod 0600 "$tmp/sa.key"
  openssl pkey -in "$tmp/sa.key" -pubout -out "$tmp/sa.pub" 2>/dev/null
  chmod 0644 "$tmp/sa.pub"
  local hash token
  hash="sha256:$(openssl x509 -pubkey -noout -in "$tmp/ca.crt" | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -hex | sed 's/^.*= //')"
  token="$(openssl rand -hex 3).$(openssl rand -hex 8)"
  (umask 077 && printf '%s\n' "$token" >"$tmp/token")
  (
    umask 077
    {
      printf 'CA_CRT_FILE=%q\nCA_KEY_FILE=%q\nCA_CERT_HASH=%q\nBOOTSTRAP_TOKEN=%q\n' \
        "$abs/ca.crt" "$abs/ca.key" "$hash" "$token"
      printf 'FRONT_PROXY_CA_CRT_FILE=%q\nFRONT_PROXY_CA_KEY_FILE=%q\nSA_KEY_FILE=%q\nSA_PUB_FILE=%q\n' \
        "$abs/front-proxy-ca.crt" "$abs/front-proxy-ca.key" "$abs/sa.key" "$abs/sa.pub"
      printf 'ETCD_CA_CRT_FILE=%q\nETCD_CA_KEY_FILE=%q\n' "$abs/etcd-ca.crt" "$abs/etcd-ca.key"
      printf 'export CA_CRT_FILE CA_KEY_FILE CA_CERT_HASH BOOTSTRAP_TOKEN\n'
      printf 'export FRONT_PROXY_CA_CRT_FILE FRONT_PROXY_CA_KEY_FILE SA_KEY_FILE SA_PUB_FILE ETCD_CA_CRT_FILE ETCD_CA_KEY_FILE\n'
    } >"$tmp/cluster.env"
  )
  # ca.key last: its presence is what marks DIR as holding a cluster.
  mv "$tmp/ca.crt" "$tmp/front-proxy-ca.crt" "$tmp/front-proxy-ca.key" "$tmp/sa.key" "$tmp/sa.pub" \
    "$tmp/etcd-ca.crt" "$tmp/etcd-ca.key" "$tmp/token" "$tmp/cluster.env" "$dir/"
  mv "$tmp/ca.key" "$dir/"
  echo "$0: made $dir/ca.crt, ca.key, front-proxy-ca.crt, front-proxy-ca.key, sa.key, sa.pub, etcd-ca.crt," \
    "etcd-ca.key, token and cluster.env (CA_CERT_HASH=$hash)" >&2
}

if [ "${1:-}" = new-cluster ]; then
  [ $# -eq 2 ] || {
    echo "usage: $0 new-cluster DIR" >&2
    exit 2
  }
  new_cluster "$2"
  exit 0
fi
if [ $# -ne 1 ] || [[ ! "$1" =~ ^(master|minion)$ ]]; then
  echo "usage: $0 master|minion  (values from the environment; see the header) | $0 new-cluster DIR" >&2
  exit 2
fi
template=$(dirname "$0")/user-data/$1.yaml
: "${DNS_DOMAIN:=k8s}" "${HOST_CHECKS:=enforce}" "${KUBE_APISERVER_ARGS:=}" "${WEAVE_PEERS_RECORD:=weave-core}"
: "${DNS_UPDATE_RECORDS:=}"
# An HA master's etcd removal graces (docs/agent.md "HA control plane"); the defaults are the agent's.
: "${ETCD_DEAD_MEMBER_AFTER:=600}" "${ETCD_REPLACED_MEMBER_AFTER:=60}"
export DNS_DOMAIN HOST_CHECKS KUBE_APISERVER_ARGS WEAVE_PEERS_RECORD DNS_UPDATE_RECORDS
export ETCD_DEAD_MEMBER_AFTER ETCD_REPLACED_MEMBER_AFTER

# Conditional blocks first: `#@if NAME` … `#@endif` (not nested).
is_set() { # NAME
  local file_var
  [ -n "${!1:-}" ] && return 0
  [[ "$1" == *_B64 ]] && file_var=${1%_B64}_FILE && [ -n "${!file_var:-}" ]
}
content=""
keep=1
in_block=0
while IFS= read -r line || [ -n "$line" ]; do
  if [[ "$line" =~ ^[[:space:]]*#@if[[:space:]]+([A-Z0-9_]+)[[:space:]]*$ ]]; then
    [ "$in_block" = 0 ] || { echo "$0: $template: nested #@if" >&2; exit 1; }
    in_block=1
    if is_set "${BASH_REMATCH[1]}"; then keep=1; else keep=0; fi
    continue
  fi
  if [[ "$line" =~ ^[[:space:]]*#@endif[[:space:]]*$ ]]; then
    in_block=0
    keep=1
    continue
  fi
  [ "$keep" = 1 ] && content+="$line"$'\n'
done <"$template"
[ "$in_block" = 0 ] || { echo "$0: $template: #@if without #@endif" >&2; exit 1; }
content=${content%$'\n'}
mapfile -t names < <(grep -v '^[[:space:]]*#' <<<"$content" | grep -o '@[A-Z0-9_]*@' | tr -d '@' | sort -u)
missing=()
for name in "${names[@]}"; do
  if [ -n "${!name+set}" ]; then
    value=${!name}
  elif [[ "$name" == *_B64 ]] && file_var=${name%_B64}_FILE && [ -n "${!file_var:-}" ]; then
    [ -r "${!file_var}" ] || {
      echo "$0: $file_var=${!file_var} is not a readable file" >&2
      exit 1
    }
    value=$(base64 -w0 "${!file_var}")
  else
    missing+=("$name")
    continue
  fi
  case $value in *$'\n'*)
    echo "$0: $name must be one line" >&2
    exit 1
    ;;
  esac
  content=${content//"@$name@"/"$value"}
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "$0: $template needs: ${missing[*]} (set them in the environment; NAME_B64 may come from NAME_FILE)" >&2
  exit 1
fi
printf '%s\n' "$content"
