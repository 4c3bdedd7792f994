#!/usr/bin/env bash
# Install the pre-release MCP conformance suite (0.2.0-alpha line, which adds
# `conformance authorization`) into $CHARTER_CONFORMANCE_DIR/alpha (idempotent).
# Run .ci/install-node22.sh first: the alpha runs on the Node 22 installed there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${CHARTER_CONFORMANCE_DIR:-$root/.ci-cache/conformance}/alpha"
version="${CHARTER_CONFORMANCE_ALPHA_VERSION:-0.2.0-alpha.12}"
pkg="$dir/node_modules/@modelcontextprotocol/conformance"
if [[ ! -f "$pkg/dist/index.js" ]] || ! grep -q "\"version\": \"$version\"" "$pkg/package.json"; then
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
        "@modelcontextprotocol/conformance@$version" >&2
fi
echo "$dir"
