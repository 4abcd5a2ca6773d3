// Shared bits of the test identity providers: a loopback HTTP server on a free port and a
// small control surface the Rust tests use to steer a provider between steps.

import http from 'node:http';

/** Starts an HTTP server on 127.0.0.1 and a free port; returns it with its issuer URL. */
export async function listen() {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return { server, port, issuer: `http://127.0.0.1:${port}` };
}

/** Reads a request body as text (capped: the tests only send small JSON). */
export async function body(req) {
  let data = '';
  for await (const chunk of req) {
    data += chunk;
    if (data.length > 65536) throw new Error('body too large');
  }
  return data;
}

/** Announces the provider to the Rust test on stdout (one JSON line, like a service log). */
export function announce(issuer, port) {
  process.stdout.write(`${JSON.stringify({ message: 'idp ready', issuer, port })}\n`);
}

/** The default test identity. */
export const DEFAULT_ACCOUNT = {
  sub: 'sub-alice',
  email: 'alice@example.com',
  email_verified: true,
  preferred_username: 'alice',
  name: 'Alice Example',
};
