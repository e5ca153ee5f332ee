// The account flows: signing up (register, log in, refresh, use the new token, log out) and
// reading one's own profile (`GET /me`, `GET /users/{id}`, cache-served).

import { check } from 'k6';
import exec from 'k6/execution';
import { account, enterFlow, json, request, signIn } from './api.js';

/** A password the server accepts: 8–128 characters, not the e-mail, not a common one. */
export function passwordFor(run) {
  return `k6 load test ${run} password`;
}

/** Registers an account; returns the response and the e-mail. */
export function register(config, email, password) {
  return request(config, 'POST', '/api/v1/auth/register', { email, password, name: 'K6 Shopper' }, 'POST /api/v1/auth/register');
}

/** Sign up: register, log in, refresh, use the refreshed token, log out. */
export function auth(config, data) {
  enterFlow('auth');
  const email = `k6-${data.run}-${exec.scenario.name}-${exec.scenario.iterationInTest}@example.test`;
  const password = passwordFor(data.run);
  const registered = register(config, email, password);
  check(registered, {
    // The same answer for a new and a taken address (no user enumeration).
    'register: 202 without Location': (r) => r.status === 202 && !r.headers.Location,
  });
  if (registered.status !== 202) return;

  const { response: login, account: session } = signIn(config, email, password);
  const signedIn = json(login) || {};
  check(login, {
    'login: 200 with a token pair': (r) => r.status === 200 && Boolean(session) && Boolean(signedIn.refresh_token),
    'login: the registered user': () => (signedIn.user || {}).email === email,
  });
  if (!session) return;

  const refreshed = request(
    config,
    'POST',
    '/api/v1/auth/refresh',
    { refresh_token: signedIn.refresh_token },
    'POST /api/v1/auth/refresh',
  );
  const pair = json(refreshed) || {};
  check(refreshed, {
    'refresh: 200 with a new pair': (r) =>
      r.status === 200 && Boolean(pair.access_token) && pair.refresh_token !== signedIn.refresh_token,
  });
  if (!pair.access_token) return;

  const me = request(config, 'GET', '/api/v1/me', null, 'GET /api/v1/me', { token: pair.access_token });
  check(me, { 'refreshed token: works for GET /me': (r) => r.status === 200 && (json(r) || {}).id === (signedIn.user || {}).id });

  const out = request(config, 'POST', '/api/v1/auth/logout', null, 'POST /api/v1/auth/logout', { token: pair.access_token });
  check(out, { 'logout: 204': (r) => r.status === 204 });
}

/** Own profile: `GET /me` and `GET /users/{own id}` (served from the users cache). */
export function profile(config, data) {
  enterFlow('profile');
  const me = account(config, data);
  const own = request(config, 'GET', '/api/v1/me', null, 'GET /api/v1/me', { token: me.accessToken });
  const body = json(own) || {};
  check(own, {
    'me: 200': (r) => r.status === 200,
    'me: the signed-in account': () => body.id === me.userId && body.email === me.email,
  });
  const byId = request(config, 'GET', `/api/v1/users/${me.userId}`, null, 'GET /api/v1/users/{id}', { token: me.accessToken });
  check(byId, {
    'user by id: 200, the same account': (r) => r.status === 200 && (json(r) || {}).id === me.userId,
  });
}
