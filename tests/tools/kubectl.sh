#!/usr/bin/env bash
# tests/tools/kubectl.sh: prints the path of a REAL kubectl for the tests — Debian 13's kubectl package (1.32; the
# host's Debian 12 has only 1.20, which lacks `kubectl auth whoami`), downloaded with demo/apt-suite.sh and unpacked
# once into $K8S_TEST_CACHE/tools (nothing is installed on the host). Everything else goes to stderr.
LIB_SCRIPT=kubectl.sh
# shellcheck source=demo/lib.sh
. "$(dirname "$0")/../../demo/lib.sh"
stdout_is_result
VERSION=${K8S_TEST_KUBECTL_DEB:-1.32.3+ds-2}
CACHE=${K8S_TEST_CACHE:-/var/cache/k8s-image-test}
dir=$CACHE/tools/kubectl-$VERSION
bin=$dir/kubectl/usr/bin/kubectl
if [ ! -x "$bin" ]; then
  step "fetching Debian 13's kubectl $VERSION" "demo/apt-suite.sh needs the Debian mirror"
  tmp=$(mktemp -d "$CACHE/tools/.kubectl.XXXXXX" 2>/dev/null || { mkdir -p "$CACHE/tools" && mktemp -d "$CACHE/tools/.kubectl.XXXXXX"; })
  on_exit "rm -rf '$tmp'"
  "$(dirname "$0")/../../demo/apt-suite.sh" trixie extract "$tmp" "kubectl=$VERSION" >/dev/null
  rm -rf "$dir"
  mkdir -p "$dir"
  mv "$tmp/kubectl" "$dir/"
fi
"$bin" version --client >&2
result "$bin"
