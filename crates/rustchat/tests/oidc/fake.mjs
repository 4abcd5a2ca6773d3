// A deliberately misbehaving OpenID provider for rustchat's OIDC tests (spec CHAT-R22,
// acceptance tests 23 and 24), built on jose. It speaks just enough of the protocol
// (discovery, JWKS, authorize with PKCE S256, token) and, depending on its mode, issues ID
// tokens that must be refused, or fails like a provider that is down.
//
// Modes (POST /_test/mode {"mode": …}):
//   ok                a correct RS256 ID token
//   bad_signature     signed by another key under the published kid
//   wrong_aud         aud is another client
//   expired           exp ten minutes ago
//   wrong_nonce       nonce differs from the one sent
//   unverified_email  email_verified false
//   hs256             HMAC-signed with the client secret (must never be accepted)
//   none              an unsecured token (alg none)
//   stale_iat         iat ten minutes ago (exp still in the future)
//   deny              the user refuses: back to the client with error=access_denied
//   down              every OIDC endpoint answers 503
// GET /_test/requests: OIDC requests served so far (control calls not counted).
// Env: CLIENT_SECRET.

import { createHash, randomBytes } from 'node:crypto';
import { SignJWT, UnsecuredJWT, exportJWK, generateKeyPair } from 'jose';
import { DEFAULT_ACCOUNT, announce, body, listen } from './common.mjs';

const { server, port, issuer } = await listen();
const clientSecret = process.env.CLIENT_SECRET ?? '';
const kid = 'fake-rs256';
const good = await generateKeyPair('RS256', { extractable: true });
const other = await generateKeyPair('RS256', { extractable: true });
const publicJwk = { ...(await exportJWK(good.publicKey)), kid, alg: 'RS256', use: 'sig' };

let mode = 'ok';
let served = 0;
const codes = new Map();

const json = (res, status, value) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
};
const b64url = (buf) => Buffer.from(buf).toString('base64url');

async function idToken(grant) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    ...DEFAULT_ACCOUNT,
    sub: 'sub-fake-user',
    email: 'fake.user@example.com',
    preferred_username: 'fakeuser',
    nonce: grant.nonce,
  };
  let aud = 'rustchat';
  let iat = now;
  let exp = now + 300;
  if (mode === 'wrong_aud') aud = 'someone-else';
  if (mode === 'expired') exp = now - 600;
  if (mode === 'stale_iat') iat = now - 600;
  if (mode === 'wrong_nonce') claims.nonce = 'not-the-nonce';
  if (mode === 'unverified_email') claims.email_verified = false;
  if (mode === 'none') {
    return new UnsecuredJWT(claims).setIssuer(issuer).setAudience(aud).setIssuedAt(iat)
      .setExpirationTime(exp).encode();
  }
  const jwt = new SignJWT(claims).setIssuer(issuer).setAudience(aud).setIssuedAt(iat)
    .setExpirationTime(exp);
  if (mode === 'hs256') {
    return jwt.setProtectedHeader({ alg: 'HS256', kid }).sign(new TextEncoder().encode(clientSecret));
  }
  const key = mode === 'bad_signature' ? other.privateKey : good.privateKey;
  return jwt.setProtectedHeader({ alg: 'RS256', kid }).sign(key);
}

async function token(req, res) {
  const form = new URLSearchParams(await body(req));
  const auth = (req.headers.authorization ?? '').replace(/^Basic /i, '');
  const [id, secret] = Buffer.from(auth, 'base64').toString().split(':').map(decodeURIComponent);
  if (id !== 'rustchat' || secret !== clientSecret) return json(res, 401, { error: 'invalid_client' });
  const grant = codes.get(form.get('code'));
  codes.delete(form.get('code'));
  if (!grant) return json(res, 400, { error: 'invalid_grant' });
  const challenge = b64url(createHash('sha256').update(form.get('code_verifier') ?? '').digest());
  if (challenge !== grant.challenge || form.get('redirect_uri') !== grant.redirect) {
    return json(res, 400, { error: 'invalid_grant' });
  }
  return json(res, 200, {
    access_token: b64url(randomBytes(16)),
    token_type: 'Bearer',
    expires_in: 300,
    id_token: await idToken(grant),
  });
}

function authorize(req, res, url) {
  const q = url.searchParams;
  if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge') || !q.get('nonce')) {
    return json(res, 400, { error: 'invalid_request' });
  }
  if (mode === 'deny') {
    const back = new URL(q.get('redirect_uri'));
    back.searchParams.set('error', 'access_denied');
    back.searchParams.set('state', q.get('state') ?? '');
    res.writeHead(302, { location: back.toString() });
    return res.end();
  }
  const code = b64url(randomBytes(24));
  codes.set(code, {
    nonce: q.get('nonce'),
    challenge: q.get('code_challenge'),
    redirect: q.get('redirect_uri'),
  });
  const back = new URL(q.get('redirect_uri'));
  back.searchParams.set('code', code);
  back.searchParams.set('state', q.get('state') ?? '');
  res.writeHead(302, { location: back.toString() });
  res.end();
}

server.on('request', async (req, res) => {
  const url = new URL(req.url, issuer);
  try {
    if (url.pathname === '/_test/mode' && req.method === 'POST') {
      mode = JSON.parse(await body(req)).mode;
      return res.end('ok');
    }
    if (url.pathname === '/_test/requests') return res.end(String(served));
    served += 1;
    if (mode === 'down') return json(res, 503, { error: 'temporarily_unavailable' });
    switch (url.pathname) {
      case '/.well-known/openid-configuration':
        return json(res, 200, {
          issuer,
          authorization_endpoint: `${issuer}/authorize`,
          token_endpoint: `${issuer}/token`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
        });
      case '/jwks':
        return json(res, 200, { keys: [publicJwk] });
      case '/authorize':
        return authorize(req, res, url);
      case '/token':
        return await token(req, res);
      default:
        return json(res, 404, { error: 'not_found' });
    }
  } catch (err) {
    console.error('fake provider error', err);
    return json(res, 500, { error: String(err) });
  }
});

announce(issuer, port);
