#!/usr/bin/env bash
# Install the clients that need Node 22 besides conformance 0.1.16 (see .ci/install-node22.sh,
# run it first): the pre-release conformance suite (0.2.0-alpha line, which adds
# `conformance authorization`) into $CHARTER_CONFORMANCE_DIR/alpha, and the MCP Inspector 2.x
# (its CLI runs the whole OAuth flow) into $CHARTER_CONFORMANCE_DIR/inspector2. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="${CHARTER_CONFORMANCE_DIR:-$root/.ci-cache/conformance}"

install() {  # install DIR PACKAGE VERSION
    local dir="$1" package="$2" version="$3"
    local manifest="$dir/node_modules/$package/package.json"
    if [[ ! -f "$manifest" ]] || ! grep -q "\"version\": \"$version\"" "$manifest"; then
        mkdir -p "$dir"
        npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$package@$version" >&2
    fi
}

install "$base/alpha" @modelcontextprotocol/conformance \
    "${CHARTER_CONFORMANCE_ALPHA_VERSION:-0.2.0-alpha.12}"
install "$base/inspector2" @modelcontextprotocol/inspector \
    "${CHARTER_INSPECTOR2_VERSION:-2.12.0}"
echo "$base"
