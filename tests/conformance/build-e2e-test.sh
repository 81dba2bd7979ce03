#!/usr/bin/env bash
# tests/conformance/build-e2e-test.sh: builds Kubernetes' own end-to-end test binary, e2e.test, from the Go module
# k8s.io/kubernetes at the cluster's version (go test -c k8s.io/kubernetes/test/e2e), the way imagebuilder builds the
# image's components: a throw-away wrapper module requiring k8s.io/kubernetes, its in-repository `replace` targets
# (staging/src/k8s.io/*) turned into the published staging modules of the same release, a fixed environment
# (GOTOOLCHAIN, GOFLAGS=-mod=mod, GOWORK=off, GOENV=off, -trimpath). Also agnhost (k8s.io/kubernetes/test/images/agnhost,
# the program of the e2e tests' main image) from the same module, and the ginkgo CLI at the version that module
# requires (it runs e2e.test in parallel processes). Cached: all three are kept under
# $K8S_TEST_CACHE/e2e-test/<version>/ and rebuilt only when missing.
#
#   tests/conformance/build-e2e-test.sh [VERSION]     prints the directory holding e2e.test, agnhost, ginkgo
#                                                     (default VERSION: v1.37.2)
set -euo pipefail
VERSION=${1:-v1.37.2}
STAGING=v0.${VERSION#v1.}
cache=${K8S_TEST_CACHE:-/var/cache/k8s-image-test}
out=$cache/e2e-test/$VERSION
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
export GOMODCACHE=${GOMODCACHE:-$cache/go/mod} GOCACHE=${GOCACHE:-$cache/go/build}
export GOFLAGS="-mod=mod -modcacherw" GOWORK=off GOENV=off GOTOOLCHAIN=go1.26.8 CGO_ENABLED=0
if [ -x "$out/e2e.test" ] && [ -x "$out/agnhost" ] && [ -x "$out/ginkgo" ]; then echo "$out"; exit 0; fi
mkdir -p "$out"
work=$(mktemp -d "$out/.wrapper.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$go" mod download -json "k8s.io/kubernetes@$VERSION" >"$work/download.json" ||
  { echo "build-e2e-test: the Go module proxy did not serve k8s.io/kubernetes@$VERSION" >&2; exit 1; }
dir=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Dir"])' "$work/download.json")
{
  echo "module k8s-image.local/e2e-test-wrapper"
  echo
  echo "go 1.26"
  echo
  echo "require k8s.io/kubernetes $VERSION"
  echo
  # k8s.io/foo => ./staging/src/k8s.io/foo  →  k8s.io/foo => k8s.io/foo v0.37.x
  sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/k8s\.io/[^[:space:]]*$#replace \1 => \1 '"$STAGING"'#p' "$dir/go.mod"
} >"$work/go.mod"
grep -q '^replace k8s.io/api ' "$work/go.mod" || { echo "build-e2e-test: no staging replaces found in $dir/go.mod" >&2; exit 1; }
printf 'package wrapper\n' >"$work/wrapper.go"
if [ ! -x "$out/e2e.test" ]; then
  (cd "$work" && "$go" test -c -trimpath -o "$out/.e2e.test.tmp" \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$VERSION" k8s.io/kubernetes/test/e2e) >&2
  mv -f "$out/.e2e.test.tmp" "$out/e2e.test"
fi
(cd "$work" && "$go" build -trimpath -o "$out/.agnhost.tmp" -ldflags "-s -w" k8s.io/kubernetes/test/images/agnhost) >&2
mv -f "$out/.agnhost.tmp" "$out/agnhost"
# The ginkgo CLI at the version k8s.io/kubernetes requires: it runs e2e.test's specs in parallel processes (the full
# conformance run; the focused one runs e2e.test alone).
ginkgo_version=$(sed -n 's#^[[:space:]]*github\.com/onsi/ginkgo/v2 \(v[^[:space:]]*\).*#\1#p' "$dir/go.mod" | head -n 1)
[ -n "$ginkgo_version" ] || { echo "build-e2e-test: no github.com/onsi/ginkgo/v2 requirement in $dir/go.mod" >&2; exit 1; }
mkdir -p "$work/bin"
(cd "$work" && GOBIN="$work/bin" "$go" install -trimpath -ldflags "-s -w" "github.com/onsi/ginkgo/v2/ginkgo@$ginkgo_version") >&2
mv -f "$work/bin/ginkgo" "$out/ginkgo"
echo "$out"
