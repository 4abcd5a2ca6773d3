// A real OpenID provider for rustchat's OIDC tests (spec CHAT-R22, acceptance test 21):
// node-oidc-provider with one confidential client (client_secret_basic), PKCE S256
// required, RS256 ID tokens from a key generated at start. Its interactions log in the
// current test account and grant consent without a UI, so a test can walk the whole
// authorization code flow with plain HTTP requests and a cookie jar.
//
// Env: REDIRECT_URI (rustchat's callback), CLIENT_SECRET.
// Control: POST /_test/account {sub,email,email_verified,...} sets who logs in next;
//          GET /_test/requests is the number of OIDC requests served so far.

import Provider from 'oidc-provider';
import { exportJWK, generateKeyPair } from 'jose';
import { DEFAULT_ACCOUNT, announce, body, listen } from './common.mjs';

const { server, port, issuer } = await listen();
let account = { ...DEFAULT_ACCOUNT };
let served = 0;

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), kid: 'real-rs256', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'rustchat',
      client_secret: process.env.CLIENT_SECRET,
      redirect_uris: [process.env.REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingKey] },
  pkce: { methods: ['S256'], required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  // The claims go into the ID token itself (rustchat reads no userinfo endpoint).
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ ...account, sub: id }),
  }),
  cookies: { keys: ['rustchat-oidc-test-cookie-key'] },
});
provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error', err));

const oidc = provider.callback();

// Finishes the login prompt with the current account and the consent prompt with a grant
// for everything the request asked for.
async function interact(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId: account.sub } }, {
      mergeWithLastSubmission: false,
    });
    return;
  }
  const missing = details.prompt.details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, {
    mergeWithLastSubmission: true,
  });
}

server.on('request', async (req, res) => {
  try {
    if (req.url === '/_test/account' && req.method === 'POST') {
      account = { ...DEFAULT_ACCOUNT, ...JSON.parse(await body(req)) };
      res.end('ok');
    } else if (req.url === '/_test/requests') {
      res.end(String(served));
    } else if (req.url.startsWith('/interaction/')) {
      served += 1;
      await interact(req, res);
    } else {
      served += 1;
      oidc(req, res);
    }
  } catch (err) {
    console.error('real provider error', err);
    res.statusCode = 500;
    res.end(String(err));
  }
});

announce(issuer, port);
