// 4503: wsticket down, silent, failing or misconfigured. Every such failure
// is reported through onError, and no report holds a ticket or a key.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, closedPort, fakeWsticket, ISSUE_KEY, mint, newApiKey, REDEEM_KEY, silentServer, startApp, startWsticket, withTicket } from './helpers.js';

/** @type {Awaited<ReturnType<typeof startWsticket>>} */
let wsticket;
before(async () => { wsticket = await startWsticket(); });
after(async () => { await wsticket?.stop(); });

/**
 * Asserts a 4503 close, one onError report of `kind`, and that no report
 * (message, stack, cause) repeats the ticket or a key.
 * @param {import('./helpers.js').Outcome} outcome
 * @param {Awaited<ReturnType<typeof startApp>>} app
 * @param {string} kind
 * @param {string[]} secrets
 */
function assertUnavailable(outcome, app, kind, secrets) {
  assert.equal(outcome.opened, true, 'the handshake completed before the close');
  assert.equal(outcome.hello, undefined, 'the app never saw the connection');
  assert.equal(outcome.code, 4503);
  assert.equal(outcome.reason, 'unavailable');
  assert.deepEqual(app.refusals.map((r) => [r.code, r.reason]), [[4503, kind]]);
  assert.equal(app.errors.length, 1);
  const [err] = app.errors;
  assert.equal(err.name, 'WsticketError');
  assert.equal(err.kind, kind);
  assert.equal(err.requestId, app.refusals[0].requestId);
  const reported = [err.message, err.stack, String(err.cause), JSON.stringify(err)].join('\n');
  for (const secret of secrets) assert.ok(!reported.includes(secret), `the report does not repeat ${secret.slice(0, 4)}…`);
  return err;
}

test('wsticket down (nothing listens on the port): 4503 unreachable', async () => {
  const app = await startApp({ url: `http://127.0.0.1:${await closedPort()}` });
  try {
    const ticket = await mint(wsticket.url);
    const outcome = await connect(withTicket(app.wsUrl, ticket));
    const err = assertUnavailable(outcome, app, 'unreachable', [ticket, REDEEM_KEY]);
    assert.match(err.message, /ECONNREFUSED/);
  } finally {
    await app.close();
  }
});

test('wsticket silent (accepts, never answers): 4503 timeout after timeoutMs', async () => {
  const silent = await silentServer();
  const app = await startApp({ url: silent.url, timeoutMs: 300 });
  try {
    const ticket = await mint(wsticket.url);
    const started = performance.now();
    const outcome = await connect(withTicket(app.wsUrl, ticket));
    const elapsed = performance.now() - started;
    assertUnavailable(outcome, app, 'timeout', [ticket, REDEEM_KEY]);
    assert.equal(silent.connections(), 1);
    assert.ok(elapsed >= 290 && elapsed < 1500, `closed after ${Math.round(elapsed)} ms`);
  } finally {
    await app.close();
    await silent.close();
  }
});

test('the default timeout is 2000 ms', async () => {
  const silent = await silentServer();
  const app = await startApp({ url: silent.url });
  try {
    const started = performance.now();
    const outcome = await connect(withTicket(app.wsUrl, await mint(wsticket.url)));
    const elapsed = performance.now() - started;
    assert.equal(outcome.code, 4503);
    assert.ok(elapsed >= 1990 && elapsed < 3000, `closed after ${Math.round(elapsed)} ms`);
  } finally {
    await app.close();
    await silent.close();
  }
});

test('a client that leaves during the redeem does no harm', async () => {
  const silent = await silentServer();
  const app = await startApp({ url: silent.url, timeoutMs: 300 });
  try {
    const { WebSocket } = await import('ws');
    const ws = new WebSocket(withTicket(app.wsUrl, await mint(wsticket.url)));
    ws.on('error', () => {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    ws.terminate();
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(app.errors.length, 1, 'the timeout is still reported');
    // The server still works.
    assert.equal((await connect(`${app.wsUrl}/ws`)).code, 4401);
  } finally {
    await app.close();
    await silent.close();
  }
});

test('a redeem key wsticket does not know (401): 4503 misconfigured', async () => {
  const { key } = newApiKey();
  const app = await startApp({ url: wsticket.url, redeemKey: key });
  try {
    const ticket = await mint(wsticket.url);
    const err = assertUnavailable(await connect(withTicket(app.wsUrl, ticket)), app, 'misconfigured', [ticket, key]);
    assert.equal(err.status, 401);
    assert.equal(err.problemCode, 'unauthenticated');
    assert.match(err.message, /redeemKey/);
  } finally {
    await app.close();
  }
});

test('a key without the redeem permission (403 forbidden): 4503 misconfigured, ticket untouched', async () => {
  const app = await startApp({ url: wsticket.url, redeemKey: ISSUE_KEY });
  try {
    const ticket = await mint(wsticket.url);
    const err = assertUnavailable(await connect(withTicket(app.wsUrl, ticket)), app, 'misconfigured', [ticket, ISSUE_KEY]);
    assert.equal(err.status, 403);
    assert.equal(err.problemCode, 'forbidden');
    // wsticket did not touch the ticket: it still redeems.
    const good = await startApp({ url: wsticket.url });
    try {
      assert.ok((await connect(withTicket(good.wsUrl, ticket))).hello);
    } finally {
      await good.close();
    }
  } finally {
    await app.close();
  }
});

test('a url that is not wsticket\'s base URL (404 not_found): 4503 misconfigured, not 4401', async () => {
  const app = await startApp({ url: `${wsticket.url}/some/prefix` });
  try {
    const ticket = await mint(wsticket.url);
    const err = assertUnavailable(await connect(withTicket(app.wsUrl, ticket)), app, 'misconfigured', [ticket, REDEEM_KEY]);
    assert.equal(err.status, 404);
    assert.equal(err.problemCode, 'not_found');
  } finally {
    await app.close();
  }
});

test('503 store_unavailable: 4503 unavailable', async () => {
  const fake = await fakeWsticket(503, { type: 'urn:wsticket:problem:store_unavailable', title: 'x', status: 503, code: 'store_unavailable', detail: 'x' });
  const app = await startApp({ url: fake.url });
  try {
    const ticket = await mint(wsticket.url);
    const err = assertUnavailable(await connect(withTicket(app.wsUrl, ticket)), app, 'unavailable', [ticket, REDEEM_KEY]);
    assert.equal(err.status, 503);
    assert.equal(err.problemCode, 'store_unavailable');
    assert.equal(fake.requests().length, 1, 'never retried');
  } finally {
    await app.close();
    await fake.close();
  }
});

test('a 200 that is not a redeem answer: 4503 bad_response, never a success', async () => {
  const fake = await fakeWsticket(200, { user_id: 'mallory' });
  const app = await startApp({ url: fake.url });
  try {
    const ticket = await mint(wsticket.url);
    assertUnavailable(await connect(withTicket(app.wsUrl, ticket)), app, 'bad_response', [ticket, REDEEM_KEY]);
  } finally {
    await app.close();
    await fake.close();
  }
});

test('a redirect is not followed: 4503 misconfigured', async () => {
  const fake = await fakeWsticket(307, '');
  const app = await startApp({ url: fake.url });
  try {
    const ticket = await mint(wsticket.url);
    const err = assertUnavailable(await connect(withTicket(app.wsUrl, ticket)), app, 'misconfigured', [ticket, REDEEM_KEY]);
    assert.equal(err.status, 307);
    assert.equal(fake.requests().length, 1);
  } finally {
    await app.close();
    await fake.close();
  }
});

test('the redeem request: path, headers and body', async () => {
  const ticket = await mint(wsticket.url);
  const fake = await fakeWsticket(404, { type: 'urn:wsticket:problem:ticket_invalid', title: 'x', status: 404, code: 'ticket_invalid', detail: 'x' });
  const app = await startApp({ url: `${fake.url}/base/` });
  try {
    const outcome = await connect(withTicket(app.wsUrl, ticket), { headers: { 'X-Request-Id': 'edge-1234' } });
    assert.equal(outcome.code, 4401);
    const noOrigin = await connect(withTicket(app.wsUrl, ticket), { origin: null });
    assert.equal(noOrigin.code, 4401);
    const [first, second] = fake.requests();
    assert.equal(first.url, '/base/v1/tickets/redeem');
    assert.equal(first.headers.authorization, `Bearer ${REDEEM_KEY}`);
    assert.equal(first.headers['content-type'], 'application/json');
    assert.equal(first.headers['x-request-id'], 'edge-1234', 'a well-formed X-Request-Id of the upgrade is passed on');
    // The socket's peer is the client address (for tickets bound to one).
    assert.deepEqual(JSON.parse(first.body), { ticket, origin: 'http://localhost:3000', client_ip: '127.0.0.1' });
    assert.match(String(second.headers['x-request-id']), /^[0-9a-f]{32}$/, 'else a random one');
    assert.deepEqual(JSON.parse(second.body), { ticket, origin: null, client_ip: '127.0.0.1' });
    assert.deepEqual(app.refusals.map((r) => r.requestId), ['edge-1234', second.headers['x-request-id']]);

    // Ids wsticket would not keep (a ticket, a key, a JWT, bad characters) are replaced, never sent.
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
    for (const id of [ticket, REDEEM_KEY, jwt, 'a b', 'x'.repeat(129)]) {
      await connect(withTicket(app.wsUrl, ticket), { headers: { 'X-Request-Id': id } });
    }
    const replaced = fake.requests().slice(2).map((r) => String(r.headers['x-request-id']));
    assert.equal(replaced.length, 5);
    for (const id of replaced) assert.match(id, /^[0-9a-f]{32}$/);
    assert.equal(fake.connections(), 1, 'keep-alive: both redeems used one connection');
  } finally {
    await app.close();
    await fake.close();
  }
});
