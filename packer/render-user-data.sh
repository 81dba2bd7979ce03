#!/usr/bin/env bash
# Render the example user data packer/user-data/ROLE.yaml (ROLE = master | minion): every @NAME@ placeholder outside
# comments is replaced by the environment variable NAME; a placeholder NAME_B64 may instead come from a file named
# by NAME_FILE (base64-encoded here, e.g. CA_CRT_FILE=pki/ca.crt fills @CA_CRT_B64@). Defaults: DNS_DOMAIN=k8s,
# HOST_CHECKS=enforce, KUBE_APISERVER_ARGS empty, WEAVE_PEERS_RECORD=weave-core (the layout for any size: a core group
# of 3 or 5 minions registered in weave-core.<cluster>.<domain> votes, every other minion observes; docs/benchmarks.md
# "Fleet simulation"). Lines between `#@if NAME` and `#@endif` are kept only when NAME (or, for NAME_B64, NAME_FILE) is
# set and not empty: CNI (the pod network: weave, bridge or none; unset = the agent's default, weave);
# self-registration (DNS_UPDATE_SERVER, DNS_UPDATE_TSIG_NAME, DNS_UPDATE_KEY_FILE =
# `tsig-keygen` output, DNS_UPDATE_RECORDS) is rendered only when DNS_UPDATE_SERVER is set. Every missing value is named at once (exit 1); the output goes to
# stdout, so keep it private when it holds secrets (bootstrap token, keys):
#
#   umask 077
#   packer/render-user-data.sh new-cluster pki/        # once: the cluster CA and a bootstrap token (see below)
#   . pki/cluster.env                                  # CA_CRT_FILE, CA_KEY_FILE, CA_CERT_HASH, BOOTSTRAP_TOKEN
#   CLUSTER_NAME=prod packer/render-user-data.sh master >master.yaml
#   CLUSTER_NAME=prod WEAVE_CONSENSUS=3 packer/render-user-data.sh minion >minion.yaml
#   aws ec2 run-instances ... --user-data file://minion.yaml
#
# `new-cluster DIR` makes, with openssl, what kubeadm's `init` would: DIR/ca.crt + DIR/ca.key (RSA 2048, CN
# kubernetes, CA for 10 years, keyCertSign/cRLSign), DIR/token (a kubeadm token `[a-z0-9]{6}.[a-z0-9]{16}`), and
# DIR/cluster.env with the four variables above (CA_CERT_HASH is kubeadm's pin: sha256 of the CA's public key).
# DIR is made 0700; the key, the token and cluster.env are 0600. It refuses to overwrite an existing CA.
# Rotating the token: make a new one (`kubeadm token create` on a master, or a new DIR/token), put it into the
# minions' user data (launch template), then delete the old Secret kube-system/bootstrap-token-<old id>.
set -euo pipefail

new_cluster() {
  local dir=$1
  [ ! -e "$dir/ca.key" ] || {
    echo "$0: $dir/ca.key exists; refusing to replace a cluster CA" >&2
    exit 1
  }
  command -v openssl >/dev/null || {
    echo "$0: openssl is needed (apt-get install openssl)" >&2
    exit 1
  }
  (umask 077 && mkdir -p "$dir")
  chmod 0700 "$dir"
  local tmp
  tmp=$(mktemp -d "$dir/.new.XXXXXX")
  # shellcheck disable=SC2064 # expand $tmp now: it is local
  trap "rm -rf '$tmp'" EXIT
  (umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=kubernetes" \
    -keyout "$tmp/ca.key" -out "$tmp/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign,cRLSign" 2>/dev/null)
  chmod 0644 "$tmp/ca.crt"
  local hash token
  hash="sha256:$(openssl x509 -pubkey -noout -in "$tmp/ca.crt" | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -hex | sed 's/^.*= //')"
  token="$(openssl rand -hex 3).$(openssl rand -hex 8)"
  (umask 077 && printf '%s\n' "$token" >"$tmp/token")
  (umask 077 && printf 'CA_CRT_FILE=%q\nCA_KEY_FILE=%q\nCA_CERT_HASH=%q\nBOOTSTRAP_TOKEN=%q\nexport CA_CRT_FILE CA_KEY_FILE CA_CERT_HASH BOOTSTRAP_TOKEN\n' \
    "$(cd "$dir" && pwd)/ca.crt" "$(cd "$dir" && pwd)/ca.key" "$hash" "$token" >"$tmp/cluster.env")
  mv "$tmp/ca.crt" "$tmp/ca.key" "$tmp/token" "$tmp/cluster.env" "$dir/"
  echo "$0: made $dir/ca.crt, ca.key, token and cluster.env (CA_CERT_HASH=$hash)" >&2
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
export DNS_DOMAIN HOST_CHECKS KUBE_APISERVER_ARGS WEAVE_PEERS_RECORD DNS_UPDATE_RECORDS

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
