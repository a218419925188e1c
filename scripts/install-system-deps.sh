#!/usr/bin/env bash
# Install the Debian packages the tests and the benchmark use, when they are missing.
set -euo pipefail

declare -A wanted=(
  [redis-server]=redis-server   # integration tests start their own Redis on a free port
  [redis-sentinel]=redis-sentinel  # reliability tests: a Sentinel failover on loopback
  [softhsm2-util]=softhsm2      # PKCS#11 KMS provider tests
  [wrk]=wrk                     # benchmark load generator
  [h2load]=nghttp2-client       # benchmark at a fixed rate (bench/run.py --fixed-rate, h2load --rps)
  [chromium]=chromium           # browser e2e tests (driven by playwright, never downloaded)
  [promtool]=prometheus         # alert-rule tests
  [node]=nodejs                 # the test IdP (tests/idp: oidc-provider), installed by npm ci
  [npm]=npm
  [kubectl]=kubectl   # deploy tests: `kubectl kustomize` renders deploy/k8s (needs kustomize v5)
)
missing=()
for command in "${!wanted[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${wanted[$command]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
