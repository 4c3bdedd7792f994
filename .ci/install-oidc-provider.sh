#!/usr/bin/env bash
# Install node-oidc-provider (npm `oidc-provider`, OpenID Certified), the external authorization
# server and upstream OpenID Provider of the federation tests, into
# $CHARTER_CONFORMANCE_DIR/oidc; tests/support/oidc_provider.mjs runs it on the Node 22 of
# .ci/install-node22.sh (run that first). Idempotent; prints the package's entry file.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="${CHARTER_CONFORMANCE_DIR:-$root/.ci-cache/conformance}"
version="${CHARTER_OIDC_PROVIDER_VERSION:-9.13.3}"
dir="$base/oidc"
manifest="$dir/node_modules/oidc-provider/package.json"
if [[ ! -f "$manifest" ]] || ! grep -q "\"version\": \"$version\"" "$manifest"; then
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "oidc-provider@$version" >&2
fi
echo "$dir/node_modules/oidc-provider/lib/index.js"
