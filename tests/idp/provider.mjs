// A TEST-ONLY OpenID Provider (panva oidc-provider 9) for admitd's integration and e2e tests.
// It has a non-interactive login (/interaction/<uid>?user=alice) and must never face a network.
//
//   node provider.mjs --port 4000 [--jwks keys.json] [--redirect-uri URI]...
//                     [--post-logout-redirect-uri URI]... [--access-token-ttl SECONDS]
//
// Prints "ready <issuer>" on stdout once it listens.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const API = 'https://api.test';
// A second resource server, so a test can hold a well-signed token with the wrong audience.
const OTHER_API = 'https://other.test';
const RESOURCE_SCOPES = 'api:read api:write';
const CLIENT_SECRET = 'admitd-test-secret';

// The users. amr/acr are what a real IdP reports after the login the user performed:
// alice used a password and a one-time code, bob only a password, carol a hardware key.
const USERS = {
  alice: {
    name: 'Alice Admin', email: 'alice@acme.test', org: 'acme', roles: ['admin'],
    amr: ['pwd', 'otp'], acr: 'mfa',
  },
  bob: {
    name: 'Bob Viewer', email: 'bob@acme.test', org: 'acme', roles: ['viewer'],
    amr: ['pwd'], acr: 'pwd',
  },
  carol: {
    name: 'Carol Finance', email: 'carol@globex.test', org: 'globex', roles: ['finance'],
    amr: ['hwk'], acr: 'phr',
  },
};

function options() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.IDP_PORT },
      jwks: { type: 'string', default: process.env.IDP_JWKS },
      'redirect-uri': { type: 'string', multiple: true, default: [] },
      'post-logout-redirect-uri': { type: 'string', multiple: true, default: [] },
      'access-token-ttl': { type: 'string', default: '600' },
    },
  });
  if (!values.port) throw new Error('--port (or IDP_PORT) is required');
  return values;
}

// Two RSA signing keys unless a key set is given: the first one signs, the second is published
// so a verifier already knows it (and a test restarting with [new, old] sees a new kid).
function signingKeys(path) {
  if (path) return JSON.parse(readFileSync(path, 'utf8'));
  const keys = [0, 1].map(() => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };
  });
  return { keys };
}

function userClaims(accountId) {
  const user = USERS[accountId];
  return {
    sub: accountId,
    name: user.name,
    preferred_username: accountId,
    email: user.email,
    email_verified: true,
    org: user.org,
    groups: user.roles,
    roles: user.roles,
    realm_access: { roles: user.roles },
  };
}

async function findAccount(_ctx, sub) {
  if (!(sub in USERS)) return undefined;
  return { accountId: sub, claims: async () => userClaims(sub) };
}

function resourceServer(indicator, ttl) {
  return {
    scope: RESOURCE_SCOPES,
    audience: indicator,
    accessTokenTTL: ttl,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

// The claims an API needs to judge a user token as it would a session: who, which
// organisation, which roles, and when and how they last authenticated.
async function extraTokenClaims(ctx, token) {
  if (!token.accountId) {
    const org = ctx.oidc.client?.org;
    return org ? { org } : undefined;
  }
  const source = ctx.oidc.entities.AuthorizationCode ?? ctx.oidc.entities.RefreshToken;
  const { org, groups } = userClaims(token.accountId);
  return {
    org, groups, auth_time: source?.authTime, amr: source?.amr, acr: source?.acr,
  };
}

function staticClients(values) {
  const redirectUris = values['redirect-uri'].length
    ? values['redirect-uri'] : ['https://admitd.test/.admitd/oidc/callback'];
  const postLogout = values['post-logout-redirect-uri'].length
    ? values['post-logout-redirect-uri'] : redirectUris.map((uri) => `${new URL(uri).origin}/`);
  const common = {
    client_secret: CLIENT_SECRET,
    redirect_uris: redirectUris,
    post_logout_redirect_uris: postLogout,
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    require_auth_time: true,
    org: 'acme',
  };
  return [
    { ...common, client_id: 'admitd', token_endpoint_auth_method: 'client_secret_basic' },
    { ...common, client_id: 'admitd-post', token_endpoint_auth_method: 'client_secret_post' },
  ];
}

function configuration(values) {
  const ttl = Number(values['access-token-ttl']);
  return {
    clients: staticClients(values),
    jwks: signingKeys(values.jwks),
    findAccount,
    extraTokenClaims,
    extraClientMetadata: { properties: ['org'] },
    claims: {
      // acr and amr under openid: every ID token says how the user signed in.
      openid: ['sub', 'acr', 'amr', 'org', 'groups', 'roles', 'realm_access'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', ...RESOURCE_SCOPES.split(' ')],
    acrValues: ['pwd', 'mfa', 'phr'],
    // The ID token carries the profile claims even when an access token is issued too, as
    // Keycloak and Okta do, so admitd can map roles straight from it.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    cookies: { keys: ['admitd-test-idp-cookie-key'] },
    ttl: { AccessToken: ttl, ClientCredentials: ttl, IdToken: ttl },
    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      registration: { enabled: true },
      rpInitiatedLogout: { enabled: true, logoutSource: autoSubmitLogout },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        // A code redeemed without `resource` still gets the JWT for the API it was granted.
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          if (indicator === API || indicator === OTHER_API) return resourceServer(indicator, ttl);
          throw new errors.InvalidTarget();
        },
      },
    },
  };
}

// A browser driven by a test answers the "sign out?" question without a click.
async function autoSubmitLogout(ctx, form) {
  ctx.body = `<!DOCTYPE html><html><head><title>Signing out</title></head><body>${form}
    <input type="hidden" name="logout" value="yes" form="op.logoutForm">
    <script>document.forms[0].submit()</script></body></html>`;
}

// What the next login prompt answers when the interaction URL names no user (browser tests
// set it with POST /test/login-as before following admitd's redirect).
let defaultLogin;

function loginChoice(query, params) {
  const user = query.user ?? params.login_hint ?? defaultLogin?.user;
  if (!user) return undefined;
  if (!(user in USERS)) throw new errors.InvalidRequest(`unknown test user ${user}`);
  const pick = (name) => query[name] ?? defaultLogin?.[name];
  const profile = USERS[user];
  const amr = pick('amr');
  return {
    accountId: user,
    // auth_age makes the login look that many seconds old, for step-up tests.
    ts: Math.floor(Date.now() / 1000) - Number(pick('auth_age') ?? 0),
    amr: amr === undefined ? profile.amr : String(amr).split(',').filter(Boolean),
    acr: pick('acr') ?? profile.acr,
    remember: true,
  };
}

// Consent for everything asked for: the test client is first-party.
async function grantFor(provider, details, accountId) {
  const { params } = details;
  const grant = new provider.Grant({ accountId, clientId: params.client_id });
  grant.addOIDCScope(params.scope);
  grant.addOIDCClaims(Object.keys(userClaims(accountId)));
  for (const resource of [params.resource ?? []].flat()) {
    grant.addResourceScope(resource, params.scope);
  }
  return { grantId: await grant.save() };
}

function chooserPage(uid) {
  const links = Object.keys(USERS)
    .map((user) => `<li><a href="/interaction/${uid}?user=${user}">${user}</a></li>`).join('');
  return `<!DOCTYPE html><html><head><title>Test IdP sign-in</title></head>
    <body><h1>Test IdP: sign in as</h1><ul>${links}</ul></body></html>`;
}

async function interaction(provider, ctx) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const choice = loginChoice(ctx.query, details.params);
  const sessionAccount = details.session?.accountId;
  // A consent-only prompt keeps the existing login (and its auth_time) unless a user is named.
  const keepLogin = details.prompt.name !== 'login' && sessionAccount && !ctx.query.user;
  if (!keepLogin && !choice) {
    ctx.type = 'html';
    ctx.body = chooserPage(details.uid);
    return;
  }
  const accountId = keepLogin ? sessionAccount : choice.accountId;
  const result = { consent: await grantFor(provider, details, accountId) };
  if (!keepLogin) result.login = choice;
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: false,
  });
  ctx.status = 303;
  ctx.redirect(returnTo);
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
}

async function setDefaultLogin(ctx) {
  const body = await readJson(ctx.req);
  if (body.user !== undefined && !(body.user in USERS)) {
    ctx.status = 400;
    ctx.body = { error: `unknown test user ${body.user}` };
    return;
  }
  defaultLogin = body.user === undefined ? undefined : body;
  ctx.status = 204;
}

function testRoutes(provider) {
  return async (ctx, next) => {
    const match = /^\/interaction\/([\w-]+)$/.exec(ctx.path);
    if (match && ctx.method === 'GET') return interaction(provider, ctx);
    if (ctx.path === '/test/login-as' && ctx.method === 'POST') return setDefaultLogin(ctx);
    return next();
  };
}

function main() {
  const values = options();
  const issuer = `http://127.0.0.1:${values.port}`;
  const provider = new Provider(issuer, configuration(values));
  provider.use(testRoutes(provider));
  const server = provider.listen(Number(values.port), '127.0.0.1', () => {
    process.stdout.write(`ready ${issuer}\n`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
