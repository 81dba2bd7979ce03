# shellcheck shell=bash
# tests/local/join.sh: sourced by tests/local/e2e.sh while the local cluster is up (1 master + minion1, minion2).
# Checks that every node REALLY joined, with tools that are not ours:
#   - the master's PKI and kubeconfigs exist with kubeadm's names and modes; openssl verifies every certificate
#     against the CA (and front-proxy-client against front-proxy-ca) and the kubelet client certificates the
#     controller manager issued;
#   - the real kubectl (the image's, built from k8s.io/kubernetes) makes an authenticated request over TLS with every
#     kubeconfig the agent (and kubelet) wrote — admin, super-admin, controller-manager, scheduler on the master;
#     bootstrap-kubelet, kube-proxy, kubelet on each minion — and the real API server says who it is (`auth whoami`);
#   - `kubectl get nodes` shows every minion Ready with the manifest's kubelet version; the real kubeadm reads what
#     the agent made: `kubeadm token list` sees the token, `kubeadm certs check-expiration` reads the PKI;
#   - the cluster-info signature verifies with PyJWT (python3-jwt), an HS256 implementation that is not ours, with
#     the token secret, and does not with another secret;
#   - the objects the master created are there (kubectl get), the nodes registered, the CSRs approved.
# Uses ok/bad/check/inside/json/field from e2e.sh and $TEST_JSON (tests/local/lib.sh) for the lock.

PKI=/run/k8s-local/pki
TOKEN=$(cat "$PKI/token")
TOKEN_ID=${TOKEN%%.*}

root_of() { echo "/proc/$($LC leader "$1")/root"; }
# The image's kubectl inside a node (its DNS, its loopback, its files).
kubectl_in() { # node kubeconfig args...
  local node=$1 conf=$2
  shift 2
  inside "$node" /usr/bin/kubectl --kubeconfig "$conf" --request-timeout=10s "$@"
}
whoami_is() { # node kubeconfig user
  local out
  out=$(kubectl_in "$1" "$2" auth whoami -o jsonpath='{.status.userInfo.username}' 2>&1) || {
    echo "    kubectl auth whoami with $2 on $1: $out"
    return 1
  }
  [ "$out" = "$3" ] || {
    echo "    kubectl auth whoami with $2 on $1 says $out, not $3"
    return 1
  }
}
status_says_joined() { # node
  local text
  text=$(inside "$1" /usr/bin/k8s-agent status 2>/dev/null || true)
  grep -q '^joined    https://masters.local.k8s:6443 (cluster-info signed' <<<"$text" &&
    grep -q "^kubelet   client certificate system:node:$1, valid until" <<<"$text"
}
mode_is() { # node path mode
  [ "$(stat -c %a "$(root_of "$1")$2")" = "$3" ]
}
openssl_verify() { # ca cert
  openssl verify -CAfile "$1" "$2" >/dev/null 2>&1
}
cert_subject() { # file
  openssl x509 -noout -subject -nameopt RFC2253 -in "$1" 2>/dev/null | sed 's/^subject=//'
}

echo "--- join: the master's PKI (kubeadm's layout), checked with openssl"
m=$(root_of master)
for f in ca.crt apiserver.crt apiserver-kubelet-client.crt front-proxy-ca.crt front-proxy-client.crt sa.pub; do
  check "master: /etc/kubernetes/pki/$f is 0644" mode_is master "/etc/kubernetes/pki/$f" 644
done
for f in pki/ca.key pki/apiserver.key pki/apiserver-kubelet-client.key pki/front-proxy-ca.key \
  pki/front-proxy-client.key pki/sa.key admin.conf super-admin.conf controller-manager.conf scheduler.conf; do
  check "master: /etc/kubernetes/$f is 0600" mode_is master "/etc/kubernetes/$f" 600
done
check "master: the CA is the one from the user data" cmp -s "$PKI/ca.crt" "$m/etc/kubernetes/pki/ca.crt"
for f in apiserver apiserver-kubelet-client; do
  check "openssl: $f.crt is signed by ca.crt" openssl_verify "$m/etc/kubernetes/pki/ca.crt" "$m/etc/kubernetes/pki/$f.crt"
done
check "openssl: front-proxy-client.crt is signed by front-proxy-ca.crt" \
  openssl_verify "$m/etc/kubernetes/pki/front-proxy-ca.crt" "$m/etc/kubernetes/pki/front-proxy-client.crt"
sans=$(openssl x509 -noout -ext subjectAltName -in "$m/etc/kubernetes/pki/apiserver.crt" 2>/dev/null | tail -n +2)
names_endpoint() { grep -q 'DNS:masters.local.k8s' <<<"$sans" && grep -q 'IP Address:10.96.0.1' <<<"$sans"; }
check "openssl: apiserver.crt names masters.local.k8s and 10.96.0.1 ($sans)" names_endpoint
check "openssl: apiserver-kubelet-client is O=kubeadm:cluster-admins" \
  [ "$(cert_subject "$m/etc/kubernetes/pki/apiserver-kubelet-client.crt")" = "CN=kube-apiserver-kubelet-client,O=kubeadm:cluster-admins" ]

echo "--- join: every kubeconfig the agent wrote, used by the real kubectl ($(inside master /usr/bin/kubectl version --client 2>/dev/null | head -n 1))"
check "kubectl: admin.conf is kubernetes-admin" whoami_is master /etc/kubernetes/admin.conf kubernetes-admin
check "kubectl: super-admin.conf is kubernetes-super-admin" whoami_is master /etc/kubernetes/super-admin.conf kubernetes-super-admin
check "kubectl: controller-manager.conf is system:kube-controller-manager" \
  whoami_is master /etc/kubernetes/controller-manager.conf system:kube-controller-manager
check "kubectl: scheduler.conf is system:kube-scheduler" whoami_is master /etc/kubernetes/scheduler.conf system:kube-scheduler
for n in minion1 minion2; do
  check "kubectl: $n's bootstrap-kubelet.conf is system:bootstrap:$TOKEN_ID" \
    whoami_is "$n" /etc/kubernetes/bootstrap-kubelet.conf "system:bootstrap:$TOKEN_ID"
  check "kubectl: $n's kubelet.conf is system:node:$n" whoami_is "$n" /etc/kubernetes/kubelet.conf "system:node:$n"
  check "kubectl: $n's kube-proxy.conf is system:node:$n" whoami_is "$n" /etc/kubernetes/kube-proxy.conf "system:node:$n"
  check "$n: bootstrap-kubelet.conf is 0600" mode_is "$n" /etc/kubernetes/bootstrap-kubelet.conf 600
  check "$n: kube-proxy.conf is 0600" mode_is "$n" /etc/kubernetes/kube-proxy.conf 600
  check "$n: the CA discovery wrote is the cluster's" cmp -s "$PKI/ca.crt" "$(root_of "$n")/etc/kubernetes/pki/ca.crt"
  # kubelet-client-current.pem is a symlink with an absolute target inside the node: read it from inside.
  pem=$(mktemp)
  inside "$n" cat /var/lib/kubelet/pki/kubelet-client-current.pem >"$pem" 2>/dev/null || true
  check "openssl: $n's kubelet client certificate is signed by the cluster CA" openssl_verify "$PKI/ca.crt" "$pem"
  check "openssl: $n's kubelet client certificate is O=system:nodes, CN=system:node:$n ($(cert_subject "$pem"))" \
    [ "$(cert_subject "$pem")" = "CN=system:node:$n,O=system:nodes" ]
  rm -f "$pem"
  check "$n: status says joined through cluster-info with its own kubelet certificate" status_says_joined "$n"
done

echo "--- join: the objects the master made, and what the cluster did with them"
admin() { kubectl_in master /etc/kubernetes/admin.conf "$@"; }
exists() { admin "$@" >/dev/null; }
check "kubectl get: the bootstrap token Secret exists" exists -n kube-system get secret "bootstrap-token-$TOKEN_ID" -o name
for crb in kubeadm:cluster-admins kubeadm:kubelet-bootstrap kubeadm:node-autoapprove-bootstrap \
  kubeadm:node-autoapprove-certificate-rotation k8s-image:node-proxier; do
  check "kubectl get: ClusterRoleBinding $crb exists" exists get clusterrolebinding "$crb" -o name
done
clusterinfo_rbac() { admin -n kube-public get role,rolebinding kubeadm:bootstrap-signer-clusterinfo -o name >/dev/null; }
check "kubectl get: Role and RoleBinding kube-public/kubeadm:bootstrap-signer-clusterinfo exist" clusterinfo_rbac
nodes=$(admin get nodes -o jsonpath='{.items[*].metadata.name}' 2>/dev/null || true)
registered() { grep -qw minion1 <<<"$nodes" && grep -qw minion2 <<<"$nodes"; }
check "kubectl get nodes: minion1 and minion2 registered ($nodes)" registered
csrs=$(admin get csr -o jsonpath='{range .items[*]}{.spec.username}={.status.conditions[0].type}{"\n"}{end}' 2>/dev/null || true)
approved() { [ "$(grep -c "^system:bootstrap:$TOKEN_ID=Approved$" <<<"$csrs")" -ge 2 ]; }
check "kubectl get csr: the kubelets' CSRs were made by the token user and approved" approved
want_version=v$("$TEST_JSON" lock kubernetes_version <out/demo/lock.json)
echo "--- kubectl get nodes (the real API server; kubelet $want_version expected)"
admin get nodes -o wide 2>&1 | sed 's/^/    /' || true
node_ready_at_version() { # node
  local line
  line=$(admin get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.nodeInfo.kubeletVersion}' 2>&1)
  [ "$line" = "True $want_version" ] || { echo "    $1: $line"; return 1; }
}
for n in minion1 minion2; do
  check "kubectl get nodes: $n is Ready with kubelet $want_version" node_ready_at_version "$n"
done
server_version() { admin version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'; }
check "kubectl version: the API server is $want_version" [ "$(server_version)" = "$want_version" ]

echo "--- join: the real kubeadm reads what the agent made"
tokens=$(inside master /usr/bin/kubeadm token list --kubeconfig /etc/kubernetes/admin.conf 2>&1 || true)
printf '%s\n' "$tokens" | sed 's/^/    /' | sed "s/${TOKEN#*.}/<secret>/g"
token_listed() { awk -v id="$TOKEN_ID" 'index($1, id ".") == 1 { found = 1 } END { exit !found }' <<<"$tokens"; }
check "kubeadm token list: the bootstrap token $TOKEN_ID is there" token_listed
# kubeadm reads the cluster's layout from a ClusterConfiguration (the test's: etcd is the local member over plain
# HTTP on loopback, so there is no etcd PKI for kubeadm to look for).
inside master sh -c 'cat >/run/kubeadm-check.yaml' <<YAML
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: $want_version
certificatesDir: /etc/kubernetes/pki
controlPlaneEndpoint: masters.local.k8s:6443
etcd:
  external:
    endpoints: ["http://127.0.0.1:2379"]
YAML
expiry=$(inside master /usr/bin/kubeadm certs check-expiration --config /run/kubeadm-check.yaml 2>&1 || true)
printf '%s\n' "$expiry" | sed 's/^/    /'
pki_read() { # every certificate and kubeconfig the agent made, with a residual time
  local f
  for f in admin.conf super-admin.conf controller-manager.conf scheduler.conf apiserver apiserver-kubelet-client \
    front-proxy-client; do
    grep -Eq "^$f +[A-Z][a-z]{2} [0-9]{2}, [0-9]{4}" <<<"$expiry" || { echo "    kubeadm did not read $f"; return 1; }
  done
  grep -Eq '^ca +[A-Z][a-z]{2} [0-9]{2}, [0-9]{4}' <<<"$expiry" &&
    grep -Eq '^front-proxy-ca +[A-Z][a-z]{2} [0-9]{2}, [0-9]{4}' <<<"$expiry"
}
check "kubeadm certs check-expiration: reads every certificate and kubeconfig the agent made" pki_read

echo "--- join: cluster-info's signature, verified by PyJWT (not our implementation)"
cluster_info=$(ip netns exec k8s-local-hub curl -sf --max-time 5 --cacert "$PKI/ca.crt" \
  --resolve masters.local.k8s:6443:10.79.0.10 https://masters.local.k8s:6443/api/v1/namespaces/kube-public/configmaps/cluster-info || true)
cluster_info_file=$(mktemp)
printf '%s' "$cluster_info" >"$cluster_info_file"
jws_verify() { # secret → exit 0 if the signature verifies
  /usr/bin/python3 - "$TOKEN_ID" "$1" "$cluster_info_file" <<'PY'
import base64, json, sys
import jwt  # Debian's python3-jwt
token_id, secret, path = sys.argv[1], sys.argv[2], sys.argv[3]
data = json.load(open(path))["data"]
header, _, signature = data["jws-kubeconfig-" + token_id].split(".")
payload = base64.urlsafe_b64encode(data["kubeconfig"].encode()).rstrip(b"=").decode()
try:
    jwt.api_jws.PyJWS().decode_complete(f"{header}.{payload}.{signature}", key=secret, algorithms=["HS256"])
except jwt.exceptions.InvalidSignatureError as e:
    print(f"    PyJWT: {e}")
    sys.exit(1)
PY
}
check "anonymous curl over TLS (verified against the CA) reads cluster-info" [ -n "$cluster_info" ]
check "PyJWT: jws-kubeconfig-$TOKEN_ID verifies with the token secret" jws_verify "${TOKEN#*.}"
jws_fails_with() { # exit status 1 is PyJWT's InvalidSignatureError; anything else is a broken test
  local rc=0
  jws_verify "$1" >/dev/null || rc=$?
  [ "$rc" = 1 ]
}
check "PyJWT: and does not with another secret" jws_fails_with ffffffffffffffff
rm -f "$cluster_info_file"
