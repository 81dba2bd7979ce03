#!/usr/bin/env bash
# Render the example user data packer/user-data/ROLE.yaml (ROLE = master | minion): every @NAME@ placeholder outside
# comments is replaced by the environment variable NAME; a placeholder NAME_B64 may instead come from a file named
# by NAME_FILE (base64-encoded here, e.g. CA_CRT_FILE=pki/ca.crt fills @CA_CRT_B64@). Defaults: DNS_DOMAIN=k8s,
# HOST_CHECKS=enforce, KUBE_APISERVER_ARGS empty. Every missing value is named at once (exit 1); the output goes to
# stdout, so keep it private when it holds secrets (bootstrap token, keys):
#
#   umask 077
#   CLUSTER_NAME=prod CA_CERT_HASH=sha256:... BOOTSTRAP_TOKEN=abcdef.0123456789abcdef WEAVE_CONSENSUS=3 \
#     packer/render-user-data.sh minion >minion.yaml
#   aws ec2 run-instances ... --user-data file://minion.yaml
set -euo pipefail

if [ $# -ne 1 ] || [[ ! "$1" =~ ^(master|minion)$ ]]; then
  echo "usage: $0 master|minion  (values from the environment; see the header)" >&2
  exit 2
fi
template=$(dirname "$0")/user-data/$1.yaml
: "${DNS_DOMAIN:=k8s}" "${HOST_CHECKS:=enforce}" "${KUBE_APISERVER_ARGS:=}"
export DNS_DOMAIN HOST_CHECKS KUBE_APISERVER_ARGS

content=$(<"$template")
mapfile -t names < <(grep -v '^[[:space:]]*#' "$template" | grep -o '@[A-Z0-9_]*@' | tr -d '@' | sort -u)
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
