// Adds "Authorization: Bearer $CHARTER_CONFORMANCE_TOKEN" to every HTTP request the MCP
// conformance suite makes: globalThis.fetch (the MCP SDK), undici's global dispatcher
// (undici.request, used by the DNS-rebinding scenario) and node:http's request (the raw
// header-validation scenarios of 0.2.0-alpha).
import http from "node:http";
import { createRequire } from "node:module";
import path from "node:path";

const token = process.env.CHARTER_CONFORMANCE_TOKEN;
const installDir = process.env.CHARTER_CONFORMANCE_DIR;
if (!token || !installDir) {
  throw new Error("preload.mjs needs CHARTER_CONFORMANCE_TOKEN and CHARTER_CONFORMANCE_DIR");
}
const authorization = `Bearer ${token}`;
const require = createRequire(path.join(installDir, "node_modules", "noop.js"));
const undici = require("undici");

function withAuthorization(headers) {
  if (headers == null) return { authorization };
  if (Array.isArray(headers)) {
    const names = headers.filter((_, i) => i % 2 === 0).map((h) => String(h).toLowerCase());
    return names.includes("authorization") ? headers : [...headers, "authorization", authorization];
  }
  if (typeof headers[Symbol.iterator] === "function") {
    const out = {};
    for (const [name, value] of headers) out[name] = value;
    headers = out;
  }
  const present = Object.keys(headers).some((h) => h.toLowerCase() === "authorization");
  return present ? headers : { ...headers, authorization };
}

undici.setGlobalDispatcher(
  new undici.Agent().compose((dispatch) => (opts, handler) =>
    dispatch({ ...opts, headers: withAuthorization(opts.headers) }, handler),
  ),
);

const originalFetch = globalThis.fetch;
globalThis.fetch = (input, init = {}) => {
  const base = init.headers ?? (input instanceof Request ? input.headers : undefined);
  const headers = new Headers(base);
  if (!headers.has("authorization")) headers.set("authorization", authorization);
  return originalFetch(input, { ...init, headers });
};

const originalHttpRequest = http.request;
http.request = (options, ...rest) => {
  if (options && typeof options === "object" && !(options instanceof URL)) {
    options = { ...options, headers: withAuthorization(options.headers) };
  }
  return originalHttpRequest(options, ...rest);
};
