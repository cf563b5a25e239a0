// createRevocationListener against a fake event stream written here: the
// stream handling (chunks, reconnection, Last-Event-ID, heartbeats, refusals)
// and which tracked connections a revocation closes. Real sockets on
// loopback; no wsticket binary needed.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, describe, test } from 'node:test';
import { WebSocketServer } from 'ws';
import { createRevocationListener } from '../index.js';
import {
  closedPort, fakeEventStream, fakeWsticket, nextEvent, openSocket, REDEEM_KEY, silentServer, startApp, stillOpen, until, withTicket,
} from './helpers.js';

/** @typedef {import('../index.js').RevocationListener} RevocationListener */
/** @typedef {import('../index.js').Identity} Identity */
/** @typedef {import('../index.js').ListenerErrorKind} ListenerErrorKind */
/** @typedef {import('../index.js').WsticketError<ListenerErrorKind>} ListenerError */

const KEY = REDEEM_KEY;

/** @type {Array<() => unknown>} */
const cleanups = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/**
 * A listener whose errors are collected (and closed after the file).
 * @param {Partial<import('../index.js').RevocationListenerOptions> & {url: string}} options
 */
function listen(options) {
  const listener = createRevocationListener({ apiKey: KEY, ...options });
  /** @type {ListenerError[]} */
  const errors = [];
  listener.on('error', (err) => errors.push(err));
  cleanups.push(() => listener.close());
  return { listener, errors };
}

/** @param {Awaited<ReturnType<typeof fakeEventStream>>} fake */
function closeLater(fake) {
  cleanups.push(() => fake.close());
  return fake;
}

/**
 * A WebSocket server whose connections are tracked by `listener` with the
 * identity given in the query string (no wsticket involved).
 * @param {RevocationListener} listener
 */
async function trackedApp(listener) {
  const server = http.createServer();
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    /** @type {Identity} */
    const identity = {
      userId: q.get('user') ?? '',
      audience: q.get('aud') ?? 'default',
      issuedAt: q.get('iat') ?? '',
      expiresAt: '2030-01-01T00:00:00Z',
      claims: {},
      origin: null,
    };
    ws.send(JSON.stringify({ tracked: listener.track(ws, identity) }));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  const app = {
    /**
     * @param {string} user
     * @param {string} aud
     * @param {string} iat
     */
    open: (user, aud, iat) => openSocket(`ws://127.0.0.1:${port}/?${new URLSearchParams({ user, aud, iat })}`),
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise((resolve) => wss.close(() => resolve(undefined)));
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
  cleanups.push(() => app.close());
  return app;
}

/**
 * One SSE event block.
 * @param {string} type
 * @param {unknown} data
 * @param {string} [id]
 */
function sse(type, data, id) {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

describe('the subscription', () => {
  test('GET {url}/v1/events with the key and Accept, no Last-Event-ID at first; connect', async () => {
    const fake = closeLater(await fakeEventStream());
    const { listener, errors } = listen({ url: `${fake.url}/prefix/` });
    const connected = nextEvent(listener, 'connect');
    assert.equal(listener.connected, false);
    const c = await fake.connection(0);
    await connected;
    assert.equal(listener.connected, true);
    assert.equal(c.url, '/prefix/v1/events');
    assert.equal(c.headers.authorization, `Bearer ${KEY}`);
    assert.equal(c.headers.accept, 'text/event-stream');
    assert.equal(c.headers['last-event-id'], undefined);
    assert.deepEqual(errors, []);
    listener.close();
    await c.gone;
    assert.equal(listener.connected, false);
  });

  test('the lastEventId option is sent as Last-Event-ID', async () => {
    const fake = closeLater(await fakeEventStream());
    const { listener } = listen({ url: fake.url, lastEventId: '1733352000123-0' });
    assert.equal(listener.lastEventId, '1733352000123-0');
    const c = await fake.connection(0);
    assert.equal(c.headers['last-event-id'], '1733352000123-0');
  });

  test('bad options throw a TypeError that does not repeat the value', () => {
    const secret = 'not-a-key-but-secret';
    assert.throws(() => createRevocationListener({ url: 'http://127.0.0.1:1', apiKey: secret }), (err) => {
      assert.ok(err instanceof TypeError);
      assert.ok(!err.message.includes(secret));
      return true;
    });
    assert.throws(() => createRevocationListener({ url: 'http://127.0.0.1:1/?x=1', apiKey: KEY }), TypeError);
    assert.throws(() => createRevocationListener({ url: 'ws://127.0.0.1:1', apiKey: KEY }), TypeError);
    assert.throws(() => createRevocationListener({ url: 'http://127.0.0.1:1', apiKey: KEY, heartbeatTimeoutMs: 0 }), TypeError);
    assert.throws(() => createRevocationListener({ url: 'http://127.0.0.1:1', apiKey: KEY, reconnectDelayMs: 500, maxReconnectDelayMs: 100 }), TypeError);
    assert.throws(() => createRevocationListener({ url: 'http://127.0.0.1:1', apiKey: KEY, lastEventId: 'a\r\nx: y' }), TypeError);
  });
});

describe('closing revoked connections', () => {
  test('user_revoked closes exactly the matching connections with 4401, the event split byte by byte', async () => {
    const fake = closeLater(await fakeEventStream());
    const { listener, errors } = listen({ url: fake.url });
    const app = await trackedApp(listener);
    const c = await fake.connection(0);

    const old = '2026-12-04T10:00:00Z';
    const before = '2026-12-04T10:00:01.500Z';
    const aliceChat = await app.open('alice', 'chat', old);
    const aliceOther = await app.open('alice', 'default', old);
    const aliceAfter = await app.open('alice', 'chat', before); // issued at `before`: not before it
    const aliceUnreadable = await app.open('alice', 'chat', 'yesterday');
    const bobChat = await app.open('bob', 'chat', old);
    const zoeChat = await app.open('zoë', 'chat', old);
    assert.equal(aliceChat.hello.tracked, true);
    assert.equal(listener.tracked, 6);

    const revoked = nextEvent(listener, 'user_revoked');
    const text = ': keep-alive\r\n\r\n'
      + sse('user_revoked', { user_id: 'alice', audience: 'chat', before, reason: 'request' }, '100-0').replaceAll('\n', '\r\n')
      + sse('user_revoked', { user_id: 'zoë', audience: 'chat', before, reason: 'reuse' }, '101-0');
    // Every byte in its own write, so the UTF-8 of "ë" is split too.
    for (const byte of Buffer.from(text)) await c.send(Buffer.from([byte]));

    const event = await revoked;
    assert.deepEqual(event, { userId: 'alice', audience: 'chat', before, reason: 'request', lastEventId: '100-0', closed: 2 });
    for (const s of [aliceChat, aliceUnreadable]) {
      const closed = await s.closed;
      assert.equal(closed.code, 4401);
      assert.equal(closed.reason, 'revoked');
    }
    assert.equal(await stillOpen(aliceOther.ws), true, 'another audience stays');
    assert.equal(await stillOpen(aliceAfter.ws), true, 'a ticket issued at `before` stays');
    assert.equal(await stillOpen(bobChat.ws), true, 'another user stays');
    assert.equal((await zoeChat.closed).code, 4401, 'the second event, with a split multi-byte character');
    assert.equal(listener.lastEventId, '101-0');
    assert.equal(listener.tracked, 3);

    // audience null: every audience of the user.
    const all = nextEvent(listener, 'user_revoked');
    await c.send(sse('user_revoked', { user_id: 'alice', audience: null, before: '2026-12-04T10:00:02Z', reason: 'request' }, '102-0'));
    assert.equal((await all).closed, 2);
    assert.equal((await aliceOther.closed).code, 4401);
    assert.equal((await aliceAfter.closed).code, 4401);
    assert.equal(await stillOpen(bobChat.ws), true);
    assert.equal(listener.tracked, 1);
    assert.deepEqual(errors, []);
    assert.equal(fake.connections.length, 1, 'no reconnection');
  });

  test('a connection tracked after a revocation that covers it is closed at once', async () => {
    const fake = closeLater(await fakeEventStream());
    const { listener } = listen({ url: fake.url });
    const app = await trackedApp(listener);
    const c = await fake.connection(0);
    const revoked = nextEvent(listener, 'user_revoked');
    await c.send(sse('user_revoked', { user_id: 'alice', audience: 'chat', before: '2026-12-04T10:00:01.000Z', reason: 'request' }, '1-0'));
    assert.equal((await revoked).closed, 0);

    const identity = { userId: 'alice', audience: 'chat', claims: {}, origin: null, expiresAt: '2030-01-01T00:00:00Z' };
    assert.equal(listener.isRevoked({ ...identity, issuedAt: '2026-12-04T10:00:00.999Z' }), true);
    assert.equal(listener.isRevoked({ ...identity, issuedAt: '2026-12-04T10:00:01Z' }), false);
    assert.equal(listener.isRevoked({ ...identity, audience: 'default', issuedAt: '2026-12-04T10:00:00Z' }), false);

    await assert.rejects(app.open('alice', 'chat', '2026-12-04T10:00:00Z'), /closed with 4401 revoked/);
    const fresh = await app.open('alice', 'chat', '2026-12-04T10:00:01Z');
    assert.equal(fresh.hello.tracked, true);
    assert.equal(await stillOpen(fresh.ws), true);
  });

  test('attach with `revocations`: a tracked connection is closed; an upgrade redeemed after the revocation is refused 4401 revoked', async () => {
    const fake = closeLater(await fakeEventStream());
    const issuedAt = '2026-12-04T10:00:00Z';
    const redeem = await fakeWsticket(200, {
      user_id: 'alice', audience: 'chat', claims: {}, origin: 'http://localhost:3000', issued_at: issuedAt, expires_at: '2026-12-04T10:00:30Z',
    });
    cleanups.push(() => redeem.close());
    const { listener } = listen({ url: fake.url });
    const app = await startApp({ url: redeem.url, revocations: listener });
    cleanups.push(() => app.close());
    const c = await fake.connection(0);
    const ticket = `wst_k1_${'A'.repeat(43)}`; // the fake redeems any well-formed ticket

    const open = await openSocket(withTicket(app.wsUrl, ticket));
    assert.equal(open.hello.identity.userId, 'alice');
    assert.equal(listener.tracked, 1);

    const revoked = nextEvent(listener, 'user_revoked');
    await c.send(sse('user_revoked', { user_id: 'alice', audience: null, before: '2026-12-04T10:00:00.001Z', reason: 'request' }, '9-0'));
    assert.equal((await revoked).closed, 1);
    assert.deepEqual(await open.closed.then(({ code, reason }) => ({ code, reason })), { code: 4401, reason: 'revoked' });

    // The same (old) ticket redeems again at the fake: attach refuses it.
    await assert.rejects(openSocket(withTicket(app.wsUrl, ticket)), /closed with 4401 unauthorized/);
    assert.deepEqual(app.refusals.map((r) => [r.code, r.reason]), [[4401, 'revoked']]);
    assert.equal(listener.tracked, 0);
  });

  test('ticket_reused is reported and closes nothing by default; with closeOnTicketReused it closes that audience', async () => {
    const fake = closeLater(await fakeEventStream());
    const { listener } = listen({ url: fake.url });
    const strict = listen({ url: fake.url, closeOnTicketReused: true }).listener;
    const app = await trackedApp(listener);
    const strictApp = await trackedApp(strict);
    const [c0, c1] = [await fake.connection(0), await fake.connection(1)];
    const iat = '2026-12-04T10:00:00Z';
    const kept = await app.open('alice', 'chat', iat);
    const closedOne = await strictApp.open('alice', 'chat', iat);
    const otherAudience = await strictApp.open('alice', 'default', iat);

    const reused = nextEvent(listener, 'ticket_reused');
    const reusedStrict = nextEvent(strict, 'ticket_reused');
    const event = sse('ticket_reused', { user_id: 'alice', audience: 'chat' }, '5-0');
    await c0.send(event);
    await c1.send(event);
    assert.deepEqual(await reused, { userId: 'alice', audience: 'chat', lastEventId: '5-0', closed: 0 });
    assert.equal((await reusedStrict).closed, 1);
    assert.equal(await stillOpen(kept.ws), true);
    assert.equal((await closedOne.closed).code, 4401);
    assert.equal(await stillOpen(otherAudience.ws), true);
  });
});

describe('stream events and bad data', () => {
  test('gap is reported to a gap listener, else on console.warn', async () => {
    const fake = closeLater(await fakeEventStream());
    const { listener } = listen({ url: fake.url, lastEventId: '1-0' });
    const c = await fake.connection(0);
    const gap = nextEvent(listener, 'gap');
    await c.send('event: gap\ndata: {"detail":"events after the given Last-Event-ID may have been missed"}\n\n');
    assert.deepEqual(await gap, { detail: 'events after the given Last-Event-ID may have been missed', lastEventId: '1-0' });

    const quiet = listen({ url: fake.url }).listener;
    const c1 = await fake.connection(1);
    await nextEvent(quiet, 'connect');
    const warned = captureConsole('warn');
    try {
      await c1.send('event: gap\ndata: {"detail":"missed"}\n\n');
      await until(() => warned.lines.length > 0, 'a console.warn line');
    } finally {
      warned.restore();
    }
    assert.deepEqual(warned.lines, ['wsticket-node: revocation listener: gap: missed']);
  });

  test('an event with bad data is reported as bad_event and skipped; the stream goes on', async () => {
    const fake = closeLater(await fakeEventStream());
    const { listener, errors } = listen({ url: fake.url });
    const app = await trackedApp(listener);
    const c = await fake.connection(0);
    const s = await app.open('alice', 'chat', '2026-12-04T10:00:00Z');
    const revoked = nextEvent(listener, 'user_revoked');
    await c.send('id: 1-0\nevent: user_revoked\ndata: {not json\n\n');
    await c.send(sse('user_revoked', { user_id: 'alice', audience: 'chat', before: 'yesterday', reason: 'request' }, '2-0'));
    await c.send(sse('user_revoked', { user_id: 'alice', audience: 5, before: '2026-12-04T10:00:01Z', reason: 'request' }, '3-0'));
    await c.send(sse('something_new', { user_id: 'alice' }, '4-0'));
    await c.send(sse('user_revoked', { user_id: 'alice', audience: 'chat', before: '2026-12-04T10:00:01Z', reason: 'request' }, '5-0'));
    assert.equal((await revoked).lastEventId, '5-0');
    assert.equal((await s.closed).code, 4401);
    assert.deepEqual(errors.map((e) => e.kind), ['bad_event', 'bad_event', 'bad_event'], 'an unknown event type is ignored silently');
    assert.equal(fake.connections.length, 1);
  });

  test('a line over 1 MiB drops the connection (bad_response) and it is made again', async () => {
    const fake = closeLater(await fakeEventStream());
    const { listener, errors } = listen({ url: fake.url, reconnectDelayMs: 20 });
    const c = await fake.connection(0);
    await nextEvent(listener, 'connect');
    const failed = nextEvent(listener, 'error');
    c.send(`data: ${'x'.repeat((1 << 20) + 10)}`).catch(() => {});
    assert.equal((await failed).kind, 'bad_response');
    await fake.connection(1);
    assert.equal(errors.length, 1);
  });
});

describe('reconnection', () => {
  test('after the stream ends: reconnects after the retry: delay, resuming with Last-Event-ID', async () => {
    const fake = closeLater(await fakeEventStream());
    const { listener, errors } = listen({ url: fake.url, reconnectDelayMs: 5000 });
    const c0 = await fake.connection(0);
    const reused = nextEvent(listener, 'ticket_reused');
    await c0.send('retry: 150\n\n' + sse('ticket_reused', { user_id: 'alice', audience: 'chat' }, '41-0') + 'id: 42-0\n\n');
    await reused;
    const ended = performance.now();
    c0.end();
    const c1 = await fake.connection(1);
    assert.deepEqual(errors.map((e) => e.kind), ['stream_ended']);
    const m = /^wsticket ended the event stream; reconnecting in (\d+) ms$/.exec(errors[0].message);
    const delay = Number(m?.[1]);
    assert.ok(delay >= 75 && delay <= 150, `the retry: 150 of the stream replaced reconnectDelayMs: ${delay} ms`);
    assert.ok(c1.at - ended >= delay - 1, `reconnected ${Math.round(c1.at - ended)} ms after the end`);
    assert.equal(c1.headers['last-event-id'], '42-0', 'an id without data moves the position too');
    await until(() => listener.connected, 'connected again');
  });

  test('the delay doubles on each failure up to maxReconnectDelayMs, and starts over after a connection', async () => {
    const failing = 7;
    const fake = closeLater(await fakeEventStream({
      respond: (index, res) => {
        if (index >= failing) return false;
        res.writeHead(503, { 'content-type': 'application/problem+json' });
        res.end(JSON.stringify({ code: 'store_unavailable' }));
        return true;
      },
    }));
    const { listener, errors } = listen({ url: fake.url, reconnectDelayMs: 20, maxReconnectDelayMs: 160 });
    const connected = nextEvent(listener, 'connect', 10_000);
    const open = await fake.connection(failing, 10_000);
    await connected;
    assert.equal(errors.length, failing);
    assert.ok(errors.every((e) => e.kind === 'unavailable' && e.status === 503 && e.problemCode === 'store_unavailable'));
    // The delay each error announced: between half and all of the doubled delay, capped.
    const delays = errors.map((e) => Number(/reconnecting in (\d+) ms$/.exec(e.message)?.[1]));
    const ceilings = [20, 40, 80, 160, 160, 160, 160];
    delays.forEach((delay, i) => {
      assert.ok(delay >= ceilings[i] / 2 && delay <= ceilings[i], `delay ${i + 1}: ${delay} ms, for a ceiling of ${ceilings[i]} (${delays})`);
    });
    // And each was waited for.
    const at = fake.connections.map((c) => c.at);
    at.slice(1).forEach((t, i) => {
      assert.ok(t - at[i] >= delays[i] - 1, `attempt ${i + 2} came ${Math.round(t - at[i])} ms after the one before, announced ${delays[i]} ms`);
    });

    const next = nextEvent(listener, 'error');
    open.end();
    const ended = await next;
    assert.equal(ended.kind, 'stream_ended');
    const delay = Number(/reconnecting in (\d+) ms$/.exec(ended.message)?.[1]);
    assert.ok(delay >= 10 && delay <= 20, `after a connection the delay starts over: ${delay} ms`);
    await fake.connection(failing + 1);
  });

  test('heartbeats keep the stream; silence for heartbeatTimeoutMs drops it and it is made again', async () => {
    const fake = closeLater(await fakeEventStream());
    const { listener, errors } = listen({ url: fake.url, heartbeatTimeoutMs: 300, reconnectDelayMs: 20 });
    const c0 = await fake.connection(0);
    await c0.send('id: 7-0\nevent: ticket_reused\ndata: {"user_id":"a","audience":"chat"}\n\n');
    // Heartbeats every 50 ms for 500 ms: longer than the timeout, and no error.
    for (let i = 0; i < 10; i++) {
      await c0.send(': keep-alive\n\n');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual(errors, []);
    assert.equal(fake.connections.length, 1);
    const silentSince = performance.now();
    const failed = nextEvent(listener, 'error');
    const err = await failed;
    const silence = performance.now() - silentSince;
    assert.equal(err.kind, 'heartbeat_timeout');
    assert.match(err.message, /nothing received on the event stream for 300 ms/);
    assert.ok(silence >= 200, `dropped after ${Math.round(silence)} ms of silence`);
    await c0.gone;
    const c1 = await fake.connection(1);
    assert.equal(c1.headers['last-event-id'], '7-0');
  });
});

describe('refusals and failures', () => {
  /**
   * @param {number} status
   * @param {unknown} body
   * @param {string} [contentType]
   */
  const answering = (status, body, contentType = 'application/problem+json') => fakeEventStream({
    respond: (_index, res) => {
      res.writeHead(status, { 'content-type': contentType });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
      return true;
    },
  });

  /**
   * Expects the first error to be `kind`, and the listener to try again.
   * @param {Awaited<ReturnType<typeof fakeEventStream>>} fake
   * @param {ListenerErrorKind} kind
   */
  async function firstError(fake, kind) {
    closeLater(fake);
    const { listener } = listen({ url: fake.url, reconnectDelayMs: 20 });
    const err = /** @type {ListenerError} */ (await nextEvent(listener, 'error'));
    assert.equal(err.name, 'WsticketError');
    assert.equal(err.kind, kind);
    assert.ok(!err.message.includes(KEY) && !err.message.includes(fake.url), 'no key, no URL in the message');
    assert.equal(listener.connected, false);
    await fake.connection(1); // retried
    return err;
  }

  test('401: misconfigured, a clear message, retried', async () => {
    const err = await firstError(await answering(401, { code: 'unauthenticated' }), 'misconfigured');
    assert.equal(err.status, 401);
    assert.equal(err.problemCode, 'unauthenticated');
    assert.match(err.message, /^wsticket answered 401 unauthenticated to GET \/v1\/events: the API key is unknown to wsticket \(check apiKey\); reconnecting in \d+ ms$/);
  });

  test('403: misconfigured, the key lacks the permission', async () => {
    const err = await firstError(await answering(403, { code: 'forbidden' }), 'misconfigured');
    assert.equal(err.status, 403);
    assert.match(err.message, /lacks the redeem or revoke permission/);
  });

  test('404 (a wsticket without /v1/events, or a wrong url): misconfigured', async () => {
    const err = await firstError(await answering(404, { code: 'not_found' }), 'misconfigured');
    assert.match(err.message, /recent enough to serve \/v1\/events/);
  });

  test('200 that is not an event stream: misconfigured', async () => {
    const err = await firstError(await answering(200, '<html></html>', 'text/html'), 'misconfigured');
    assert.match(err.message, /with text\/html, not text\/event-stream/);
  });

  test('no answer within connectTimeoutMs: timeout', async () => {
    const silent = await silentServer();
    cleanups.push(() => silent.close());
    const { listener } = listen({ url: silent.url, connectTimeoutMs: 150, reconnectDelayMs: 20 });
    const started = performance.now();
    const err = await nextEvent(listener, 'error');
    assert.equal(err.kind, 'timeout');
    assert.ok(performance.now() - started >= 140);
    await until(() => silent.connections() >= 2, 'a second attempt');
  });

  test('nothing listening: unreachable, ECONNREFUSED', async () => {
    const { listener } = listen({ url: `http://127.0.0.1:${await closedPort()}`, reconnectDelayMs: 20 });
    const err = await nextEvent(listener, 'error');
    assert.equal(err.kind, 'unreachable');
    assert.match(err.message, /ECONNREFUSED/);
  });

  test('close() stops the listener: the stream is closed and no attempt follows', async () => {
    const fake = closeLater(await answering(503, { code: 'store_unavailable' }));
    const { listener } = listen({ url: fake.url, reconnectDelayMs: 10, maxReconnectDelayMs: 10 });
    await fake.connection(2);
    listener.close();
    const count = fake.connections.length;
    await new Promise((resolve) => setTimeout(resolve, 100)); // ten reconnection delays
    assert.equal(fake.connections.length, count);

    const open = closeLater(await fakeEventStream());
    const second = listen({ url: open.url, reconnectDelayMs: 10 }).listener;
    await nextEvent(second, 'connect');
    second.close();
    await open.connections[0].gone;
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(open.connections.length, 1);
    assert.equal(second.connected, false);
  });

  test('without an error listener, errors go to console.error as one line, without the key', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const logged = captureConsole('error');
    const listener = createRevocationListener({ url, apiKey: KEY, reconnectDelayMs: 5000 });
    try {
      await until(() => logged.lines.length > 0, 'a console.error line');
    } finally {
      listener.close();
      logged.restore();
    }
    assert.equal(logged.lines.length, 1);
    assert.match(logged.lines[0], /^wsticket-node: revocation listener: unreachable: cannot reach wsticket for GET \/v1\/events: ECONNREFUSED; reconnecting in \d+ ms$/);
    assert.ok(!logged.lines[0].includes(KEY));
  });
});

/**
 * Replaces console[method] until restore(), collecting its lines.
 * @param {'warn' | 'error'} method
 */
function captureConsole(method) {
  const original = console[method];
  /** @type {string[]} */
  const lines = [];
  console[method] = (...args) => { lines.push(args.join(' ')); };
  return { lines, restore: () => { console[method] = original; } };
}
