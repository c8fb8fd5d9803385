// The OpenID Connect provider scripts/oidc.sh starts: panva's certified `oidc-provider`
// (npm) with the clients and the API audience the auth tests and docs/auth.md use.
// Everything comes from the environment scripts/oidc.sh sets; the signing keys from
// $OIDC_JWKS_FILE (a private JWK set, first key signs; `scripts/oidc.sh rotate` prepends a
// new one and restarts, so the old key stays published while its tokens live).
import { readFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const issuer = env('OIDC_ISSUER');
const port = Number(env('OIDC_PORT'));
const audience = env('OIDC_AUDIENCE');
const machineId = env('OIDC_MACHINE_CLIENT_ID');
const machineSecret = env('OIDC_MACHINE_CLIENT_SECRET');
const publicId = env('OIDC_PUBLIC_CLIENT_ID');
const redirectUri = env('OIDC_REDIRECT_URI');
const consoleId = env('OIDC_CONSOLE_CLIENT_ID');
const consoleSecret = env('OIDC_CONSOLE_CLIENT_SECRET');
// The console's access tokens live this long (s): short in tests of the session's refresh.
const consoleTokenTTL = Number(process.env.OIDC_CONSOLE_TOKEN_TTL || 3600);
const jwks = JSON.parse(readFileSync(env('OIDC_JWKS_FILE'), 'utf8'));

// Resource indicators (RFC 8707) the provider issues JWT access tokens for. The default one
// is the Flyte API; the short-lived one has the same audience and lives 1 s (token-expiry
// tests); the other API's tokens must be refused by flyte-rs (audience tests).
const API = 'http://flyte-rs/';
const resources = {
  [API]: { audience, accessTokenTTL: 3600 },
  'http://flyte-rs/short-lived': { audience, accessTokenTTL: 1 },
  'http://other-api/': { audience: 'other-api', accessTokenTTL: 3600 },
};

// Groups of the machine client and of every person who logs in (devInteractions accepts any
// login name): what IdentityService.UserInfo reports and roles will bind to later.
const machineGroups = ['flyte-machines'];
const peopleGroups = ['flyte-users'];

const account = (sub) => ({
  accountId: sub,
  claims: async () => ({
    sub,
    name: sub,
    email: `${sub}@example.com`,
    email_verified: true,
    groups: peopleGroups,
  }),
});

const configuration = {
  clients: [
    {
      client_id: machineId,
      client_secret: machineSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: publicId,
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: [redirectUri],
    },
    {
      // The console's login (flyte-rs /login and /callback): a confidential client. Native
      // with a loopback redirect so that any port matches (RFC 8252 §7.3): every test server
      // listens on a port of its own; a real install registers its https://…/callback.
      client_id: consoleId,
      client_secret: consoleSecret,
      application_type: 'native',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
  ],
  jwks,
  scopes: ['openid', 'offline_access', 'all'],
  claims: {
    openid: ['sub'],
    profile: ['name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  findAccount: async (_ctx, sub) => account(sub),
  // The identity claims go into the access token too, so flyte-rs needs no userinfo call.
  extraTokenClaims: async (_ctx, token) => {
    if (token.kind === 'ClientCredentials') return { groups: machineGroups };
    if (token.accountId) return (await account(token.accountId).claims());
    return undefined;
  },
  // The console's login asks for offline_access without prompt=consent (a consent screen
  // at every login); oidc-provider then drops the scope, so its refresh tokens are issued
  // here for the console's client regardless, as most providers do for a web client allowed
  // the refresh_token grant.
  issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && (code.scopes.has('offline_access') || client.clientId === consoleId),
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => API,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource, client) => {
        const info = resources[resource];
        if (!info) throw new errors.InvalidTarget(`unknown resource ${resource}`);
        const ttl = client.clientId === consoleId && resource === API ? { accessTokenTTL: consoleTokenTTL } : {};
        return { scope: 'all', accessTokenFormat: 'jwt', ...info, ...ttl };
      },
    },
  },
  ttl: { RefreshToken: 86400, Grant: 86400, Session: 86400, Interaction: 3600 },
};

const provider = new Provider(issuer, configuration);
// flytekit 1.16 reads `interval` from the device authorization response unconditionally
// (token_client.py DeviceCodeResponse); RFC 8628 §3.2 makes it optional, and oidc-provider
// leaves it out. Okta, Auth0 and Keycloak send it; so does this one: the RFC's default, 5 s.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/device/auth' && ctx.status === 200 && ctx.body && ctx.body.interval === undefined) {
    ctx.body = { ...ctx.body, interval: 5 };
  }
});
provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening, issuer ${issuer}`);
});
