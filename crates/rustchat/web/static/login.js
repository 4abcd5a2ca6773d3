// Sign-in: the password form (POST /auth/login with cookie:true, which sets the
// HttpOnly rustchat_session cookie and the readable rustchat_csrf cookie) and OIDC.
//
// OIDC contract (CHAT-R22): GET /oauth2/providers lists [{name, display_name, login_url}]
// (a 404 or an empty list means no buttons); a button navigates the whole page to
// login_url. The server ends the flow with a 302 to /login/complete, where the UI POSTs
// /oauth2/exchange with {} (the one-time code travels only in an HttpOnly cookie) and gets
// the user plus session cookies; or with a 302 to /login?error=<code>.

import { api } from './api.js';
import { h, byId, clear, showError } from './dom.js';

/** Readable texts for the error codes the server puts in /login?error=. */
const OIDC_ERRORS = {
  provider_unavailable: 'The sign-in provider is unavailable right now. Try again in a minute, or sign in with your password.',
  state_invalid: 'That sign-in attempt expired or could not be verified. Please start again.',
  login_failed: 'The sign-in provider did not confirm your identity, so you were not signed in.',
};

/** The message for an error code (unknown codes get a generic text naming the code). */
export function oidcErrorMessage(code) {
  if (Object.prototype.hasOwnProperty.call(OIDC_ERRORS, code)) return OIDC_ERRORS[code];
  return `Sign-in failed (${String(code).slice(0, 64)}). Please try again.`;
}

/** A login_url the page may navigate to: same-origin paths and http(s) URLs only. */
function navigable(loginUrl) {
  try {
    const url = new URL(loginUrl, window.location.origin);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

async function loadProviders() {
  const box = byId('oidc-providers');
  clear(box);
  box.hidden = true;
  let list;
  try {
    list = await api.get('/oauth2/providers', { quiet401: true });
  } catch {
    return; // 404 (no OIDC on this server) or any failure: password login only
  }
  if (!Array.isArray(list) || list.length === 0) return;
  box.append(h('p', { class: 'muted', text: 'or' }));
  for (const p of list) {
    const href = p && typeof p.login_url === 'string' ? navigable(p.login_url) : null;
    if (!href) continue;
    box.append(h('button', {
      type: 'button',
      class: 'oidc-button',
      data: { provider: String(p.name || '') },
      text: `Sign in with ${p.display_name || p.name}`,
      on: { click: () => window.location.assign(href) },
    }));
  }
  box.hidden = box.querySelectorAll('button').length === 0;
}

/** Shows the sign-in page with an optional error. */
export function showLogin(message) {
  byId('boot').hidden = true;
  byId('app-view').hidden = true;
  byId('login-view').hidden = false;
  showError(byId('login-error'), message || '');
  byId('login-password').value = '';
  byId('login-name').focus();
  loadProviders();
}

/** Wires the form; `onLoggedIn(user)` starts the app. */
export function bindLogin(onLoggedIn) {
  byId('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const button = byId('login-submit');
    button.disabled = true;
    try {
      const data = await api.post('/auth/login', {
        login: byId('login-name').value,
        password: byId('login-password').value,
        cookie: true,
      }, { quiet401: true });
      if (window.location.pathname !== '/') window.history.replaceState(null, '', '/');
      onLoggedIn(data.user);
    } catch (e) {
      const text = e.status === 401 ? 'Wrong username or password.'
        : e.status === 429 ? 'Too many attempts. Wait a minute and try again.'
          : `Sign-in failed: ${e.message}`;
      showError(byId('login-error'), text);
      byId('login-password').value = '';
    } finally {
      button.disabled = false;
    }
  });
}

/** /login/complete: trades the OIDC exchange cookie for a session. */
export async function completeOidc(onLoggedIn) {
  try {
    const user = await api.post('/oauth2/exchange', {}, { quiet401: true });
    window.history.replaceState(null, '', '/');
    onLoggedIn(user && user.user ? user.user : user);
  } catch (e) {
    window.history.replaceState(null, '', '/login');
    showLogin(`Single sign-on could not be completed: ${e.message}`);
  }
}

/** The message for /login?error=<code>, or ''. */
export function loginErrorFromUrl() {
  if (window.location.pathname !== '/login') return '';
  const code = new URLSearchParams(window.location.search).get('error');
  return code ? oidcErrorMessage(code) : '';
}
