// node-oidc-provider (npm `oidc-provider`) as the tests' external authorization server and
// upstream OpenID Provider, on a loopback port. Configuration comes from one JSON argument:
//   {"port": 0, "accessTokenFormat": "jwt"|"opaque", "resources": {"<url>": "scope words"},
//    "clients": [<client metadata>], "ttl": {"AccessToken": 600, "IdToken": 600},
//    "accounts": {"<login>": {<claims over the defaults>}}, "idTokenClaims": false,
//    "passwords": {"<login>": "<password>"}}
// As the upstream OpenID Provider of Charter's sign-in, `clients` holds Charter's static
// confidential client (its redirect URI is Charter's /login/idp/callback), `accounts` the
// claims of the test people, and `idTokenClaims: true` puts the profile and email claims in
// the ID token itself (as Keycloak, Entra ID and Google do) rather than only at userinfo.
// With `passwords`, the development login page admits only those logins with their password
// (it signs in anyone otherwise); a wrong one answers 401 "wrong password".
// Features: dynamic client registration (RFC 7591), resource indicators (RFC 8707) giving
// access tokens for the named resources only, introspection (RFC 7662), client credentials,
// the provider's own development login and consent pages (any login and password sign in).
// Prints `READY <issuer>` on stdout once listening; stops on SIGTERM.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';

// The package is installed outside the repository (.ci/install-oidc-provider.sh): its entry
// file is given as OIDC_PROVIDER_ENTRY.
const { default: Provider } = await import(pathToFileURL(process.env.OIDC_PROVIDER_ENTRY).href);

const options = JSON.parse(process.argv[2] ?? '{}');
const resources = options.resources ?? {};
const format = options.accessTokenFormat ?? 'jwt';
const accounts = options.accounts ?? {};

// ES256 signs the access tokens, RS256 (the default of OpenID Connect) the ID tokens.
function signingKey(type, alg) {
  const options = type === 'ec' ? { namedCurve: 'P-256' } : { modulusLength: 2048 };
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg, use: 'sig' };
}

const configuration = {
  clients: options.clients ?? [],
  jwks: { keys: [signingKey('ec', 'ES256'), signingKey('rsa', 'RS256')] },
  // The resources' scopes are known too, so that clients may register them (RFC 7591 scope).
  scopes: [...new Set(['openid', 'offline_access', 'profile', 'email',
    ...Object.values(resources).flatMap((words) => words.split(' '))])],
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email', 'email_verified'] },
  pkce: { required: () => true },
  conformIdTokenClaims: !options.idTokenClaims,
  ttl: { AccessToken: 600, IdToken: 600, ClientCredentials: 600, ...(options.ttl ?? {}) },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({
      sub,
      preferred_username: sub,
      name: `User ${sub}`,
      email: `${sub}@example.test`,
      email_verified: true,
      ...(accounts[sub] ?? {}),
    }),
  }),
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, _client, oneOf) => (oneOf ? oneOf[0] : undefined),
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resourceIndicator) => {
        const scope = resources[resourceIndicator];
        if (scope === undefined) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope,
          audience: resourceIndicator,
          accessTokenFormat: format,
          accessTokenTTL: configuration.ttl.AccessToken,
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  clientBasedCORS: () => true,
  // A registered `scope` would cap the client at the scopes it registered with; the MCP SDK
  // registers with the first challenge's scope only, so its later step-up (RFC 6750
  // insufficient_scope, MCP "Scope Challenge Handling") would be refused. The registration's
  // scope is dropped: the resource server decides (getResourceServerInfo below).
  extraClientMetadata: {
    properties: ['charter_unused'],
    validator: (_ctx, _key, _value, metadata) => { delete metadata.scope; },
  },
  // Consent for the resource's scopes is asked for once, on the provider's consent page.
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
  },
};

const port = options.port ?? 0;
const server = (await import('node:http')).createServer();
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
const provider = new Provider(issuer, configuration);
provider.on('server_error', (_ctx, error) => console.error('server_error', error));
if (options.passwords) {
  const { parse } = await import('node:querystring');
  // Reads the login form's body first (the provider then uses it, see selective_body.js).
  provider.use(async (ctx, next) => {
    if (ctx.method === 'POST' && ctx.path.startsWith('/interaction/')) {
      const chunks = [];
      for await (const chunk of ctx.req) chunks.push(chunk);
      const raw = Buffer.concat(chunks).toString();
      const form = parse(raw);
      if (form.prompt === 'login' && options.passwords[form.login] !== form.password) {
        ctx.status = 401;
        ctx.type = 'html';
        ctx.body = '<!doctype html><title>Sign-in failed</title><p>wrong password</p>';
        return;
      }
      ctx.request.body = raw;
    }
    await next();
  });
}
server.on('request', provider.callback());
console.log(`READY ${issuer}`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
