#!/usr/bin/env bash
# Install Node 22 and the MCP conformance suite into .ci-cache/conformance (idempotent).
# Prints the install directory; export it as CHARTER_CONFORMANCE_DIR for the conformance test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${CHARTER_CONFORMANCE_DIR:-$root/.ci-cache/conformance}"
pkg="$dir/node_modules/@modelcontextprotocol/conformance/dist/index.js"
node22="$dir/node_modules/node/bin/node"
if [[ ! -f "$pkg" || ! -x "$node22" ]]; then
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
        node@22 @modelcontextprotocol/conformance@0.1.16 >&2
fi
"$node22" --version >&2
echo "$dir"
