// The built-in minter: `mintUrl` POSTs to wsticket and reads its answers.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MintError } from '../index.js';
import { flush, setup, ticketOf } from './helpers.js';

const json = (status, body, headers = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
const problem = (status, code, headers = {}) =>
  new Response(JSON.stringify({ type: `urn:wsticket:problem:${code}`, title: code, status, code }), {
    status,
    headers: { 'content-type': 'application/problem+json', ...headers },
  });

/** A fetch that answers from `script` (responses or functions), recording each call. */
function scriptedFetch(...script) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init });
    const next = script.length > 1 ? script.shift() : script[0];
    return typeof next === 'function' ? next(url, init) : next.clone();
  };
  return { fetch, calls };
}

const ticket = (n = 1) => json(201, { ticket: `wst_k1_${n}`, expires_at: '2025-06-01T12:00:30Z', expires_in: 30, audience: 'chat' });

describe('mintUrl', () => {
  test('POSTs "{}" with credentials and a JSON content type, then opens with the ticket', async () => {
    const f = scriptedFetch(ticket());
    const t = setup({ mintUrl: 'https://app.example.com/v1/tickets', fetch: f.fetch });
    await flush();
    assert.equal(f.calls.length, 1);
    const { url, init } = f.calls[0];
    assert.equal(url, 'https://app.example.com/v1/tickets');
    const { signal, ...rest } = init;
    assert.deepEqual(rest, {
      method: 'POST',
      credentials: 'include',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    assert.ok(signal instanceof AbortSignal);
    assert.equal(ticketOf(t.ws), 'wst_k1_1');
  });

  test('sends the JSON body and extra headers the app gives; a URL object works too', async () => {
    const f = scriptedFetch(ticket());
    let token = 'one';
    const t = setup({
      mintUrl: new URL('https://tickets.example.com/v1/tickets'),
      mintBody: { audience: 'chat', ttl_secs: 20 },
      mintHeaders: async () => ({ Authorization: `Bearer ${token}`, 'Content-Type': 'text/plain' }),
      fetch: f.fetch,
    });
    await flush();
    assert.equal(f.calls[0].url, 'https://tickets.example.com/v1/tickets');
    assert.equal(f.calls[0].init.body, '{"audience":"chat","ttl_secs":20}');
    assert.deepEqual(f.calls[0].init.headers, { Authorization: 'Bearer one', 'content-type': 'application/json' });
    token = 'two';
    t.ws.fail();
    await t.clock.tick(500);
    assert.equal(f.calls[1].init.headers.Authorization, 'Bearer two', 'the headers function runs per mint');

    const g = scriptedFetch(ticket());
    setup({ mintUrl: '/v1/tickets', mintHeaders: { 'X-Request-Id': 'page-1' }, fetch: g.fetch });
    await flush();
    assert.deepEqual(g.calls[0].init.headers, { 'X-Request-Id': 'page-1', 'content-type': 'application/json' });
  });

  test('mints once per attempt, each ticket used once', async () => {
    let n = 0;
    const f = scriptedFetch(() => ticket(++n));
    const t = setup({ mintUrl: '/v1/tickets', fetch: f.fetch });
    await flush();
    for (let i = 0; i < 4; i += 1) {
      t.ws.serverOpen();
      t.ws.serverClose(4503);
      await t.clock.tick(t.lastState().delay);
    }
    assert.deepEqual(t.sockets.map(ticketOf), ['wst_k1_1', 'wst_k1_2', 'wst_k1_3', 'wst_k1_4', 'wst_k1_5']);
    assert.equal(f.calls.length, 5);
  });

  test('401: "unauthenticated", and it stops', async () => {
    const f = scriptedFetch(problem(401, 'unauthenticated', { 'www-authenticate': 'Bearer' }));
    const t = setup({ mintUrl: '/v1/tickets', fetch: f.fetch });
    await flush();
    assert.equal(t.socket.state, 'unauthenticated');
    const { status, error } = t.lastState();
    assert.equal(status, 401);
    assert.ok(error instanceof MintError);
    assert.equal(error.status, 401);
    assert.equal(error.code, 'unauthenticated');
    assert.doesNotMatch(error.message, /v1\/tickets/, 'the message does not quote the URL');
    t.wake('online');
    await t.clock.tick(600_000);
    assert.equal(f.calls.length, 1);
  });

  test('403: "denied", and it stops', async () => {
    for (const code of ['origin_not_allowed', 'forbidden']) {
      const f = scriptedFetch(problem(403, code));
      const t = setup({ mintUrl: '/v1/tickets', fetch: f.fetch });
      await flush();
      assert.equal(t.socket.state, 'denied');
      assert.equal(t.lastState().error.code, code);
      assert.deepEqual(t.clock.pending(), []);
    }
  });

  test('429: waits Retry-After seconds (at least 1), then mints again', async () => {
    const cases = [
      ['7', 7000],
      ['0', 1000],
      [' 2 ', 2000],
      [null, 1000], // none: the jittered delay (500 here), but at least 1 s
      ['soon', 1000], // unreadable: likewise
    ];
    for (const [retryAfter, expected] of cases) {
      const f = scriptedFetch(problem(429, 'rate_limited', retryAfter === null ? {} : { 'retry-after': retryAfter }), ticket());
      const t = setup({ mintUrl: '/v1/tickets', fetch: f.fetch });
      await flush();
      assert.equal(t.socket.state, 'backoff');
      assert.equal(t.lastState().status, 429);
      assert.equal(t.lastState().delay, expected, `Retry-After: ${retryAfter}`);
      await t.clock.tick(expected - 1);
      assert.equal(f.calls.length, 1);
      await t.clock.tick(1);
      assert.equal(f.calls.length, 2);
      assert.equal(ticketOf(t.ws), 'wst_k1_1');
    }
  });

  test('429 with an HTTP-date Retry-After waits until then', async () => {
    const at = new Date(Math.ceil(Date.now() / 1000) * 1000 + 5000).toUTCString();
    const f = scriptedFetch(problem(429, 'rate_limited', { 'retry-after': at }), ticket());
    const t = setup({ mintUrl: '/v1/tickets', fetch: f.fetch });
    await flush();
    const { delay } = t.lastState();
    assert.ok(delay > 3000 && delay <= 6000, `${delay}`);
    assert.equal(t.lastState().error.retryAfter, delay / 1000);
  });

  for (const [name, answer] of [
    ['503 store_unavailable', () => problem(503, 'store_unavailable')],
    ['503 auth_unavailable', () => problem(503, 'auth_unavailable')],
    ['500', () => problem(500, 'internal')],
    ['502 with an HTML body', () => new Response('<html>bad gateway</html>', { status: 502 })],
    ['400 (a set-up error: retried slowly)', () => problem(400, 'invalid_request')],
    ['a network error', () => { throw new TypeError('Failed to fetch'); }],
    ['a 201 that is not JSON', () => new Response('ok', { status: 201 })],
    ['a 201 without a ticket', () => json(201, { expires_in: 30 })],
  ]) {
    test(`${name}: backs off with full jitter, then mints again`, async () => {
      const f = scriptedFetch(answer, answer, ticket());
      const t = setup({ mintUrl: '/v1/tickets', fetch: f.fetch });
      await flush();
      assert.equal(t.socket.state, 'backoff');
      assert.equal(t.lastState().delay, 500);
      await t.clock.tick(500);
      assert.equal(t.lastState().delay, 1000);
      await t.clock.tick(1000);
      assert.equal(f.calls.length, 3);
      assert.equal(ticketOf(t.ws), 'wst_k1_1');
      assert.equal(t.socket.state, 'connecting');
    });
  }

  test('a mintHeaders function that throws backs off, without a request', async () => {
    const f = scriptedFetch(ticket());
    const t = setup({ mintUrl: '/v1/tickets', mintHeaders: () => { throw new Error('no token yet'); }, fetch: f.fetch });
    await flush();
    assert.equal(t.socket.state, 'backoff');
    assert.equal(t.lastState().error.message, 'no token yet');
    assert.equal(f.calls.length, 0);
  });

  test('a mint request that hangs is aborted after timeoutMs and backs off', async () => {
    const f = scriptedFetch((_url, init) => new Promise((_resolve, reject) => {
      init.signal.addEventListener('abort', () => reject(init.signal.reason));
    }));
    const t = setup({ mintUrl: '/v1/tickets', fetch: f.fetch, timeoutMs: 2000 });
    await flush();
    await t.clock.tick(1999);
    assert.equal(t.socket.state, 'connecting');
    await t.clock.tick(1);
    assert.equal(t.socket.state, 'backoff');
    assert.equal(t.lastState().error.name, 'TimeoutError');
    assert.equal(f.calls.length, 1);
  });

  test('close() aborts a mint request in flight', async () => {
    const f = scriptedFetch((_url, init) => new Promise((_resolve, reject) => {
      init.signal.addEventListener('abort', () => reject(init.signal.reason));
    }));
    const t = setup({ mintUrl: '/v1/tickets', fetch: f.fetch });
    await flush();
    t.socket.close();
    assert.equal(f.calls[0].init.signal.aborted, true);
    await flush();
    assert.equal(t.socket.state, 'closed');
    assert.equal(t.sockets.length, 0);
  });

  test('uses globalThis.fetch by default, called as a plain function', async () => {
    const saved = globalThis.fetch;
    const calls = [];
    globalThis.fetch = function (url, init) {
      calls.push([this, url, init.method]);
      return Promise.resolve(ticket());
    };
    try {
      const t = setup({ mintUrl: '/v1/tickets' });
      await flush();
      assert.equal(ticketOf(t.ws), 'wst_k1_1');
    } finally {
      globalThis.fetch = saved;
    }
    assert.deepEqual(calls, [[globalThis, '/v1/tickets', 'POST']]);
  });
});
