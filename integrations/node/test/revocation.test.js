// The revocation listener against a real wsticket (in-memory store):
// GET /v1/events, POST /v1/users/revoke, and connections accepted by
// attach() closed with 4401 when their user is revoked.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { createRevocationListener } from '../index.js';
import {
  demoClients, ISSUE_KEY, mint, newApiKey, nextEvent, openSocket, REDEEM_KEY, revokeUser, startApp, startWsticket, stillOpen, until, withTicket,
} from './helpers.js';

/** @typedef {import('../index.js').RevocationListener} RevocationListener */
/** @typedef {import('../index.js').UserRevokedEvent} UserRevokedEvent */

const revoker = newApiKey();
const defaultOnly = newApiKey();

/** @param {string} events the [events] table's lines */
const config = (events = 'heartbeat_secs = 1') => `
[tickets]
allowed_origins = ["http://localhost:3000"]
audiences = ["default", "chat"]

[events]
${events}
${demoClients()}
[[clients]]
name = "revoker"
key_sha256 = "${revoker.sha256}"
can = ["revoke"]

[[clients]]
name = "default-only-ws"
key_sha256 = "${defaultOnly.sha256}"
can = ["redeem"]
audiences = ["default"]
`;

/** @type {Awaited<ReturnType<typeof startWsticket>>} */
let wsticket;
/** @type {Array<() => unknown>} */
const cleanups = [];
before(async () => { wsticket = await startWsticket({ config: config() }); });
after(async () => {
  // Listeners and apps first: a listener whose wsticket stops reports it.
  for (const cleanup of cleanups.reverse()) await cleanup();
  await wsticket?.stop();
});

/**
 * A listener on the test's wsticket, connected, closed after the file.
 * @param {Partial<import('../index.js').RevocationListenerOptions>} [options]
 */
async function connectedListener(options = {}) {
  const listener = createRevocationListener({ url: wsticket.url, apiKey: REDEEM_KEY, ...options });
  /** @type {Error[]} */
  const errors = [];
  listener.on('error', (err) => errors.push(err));
  cleanups.push(() => listener.close());
  await nextEvent(listener, 'connect');
  return { listener, errors };
}

/**
 * An app wired by attach() to the test's wsticket, with `revocations`.
 * @param {RevocationListener | undefined} revocations
 */
async function appWith(revocations) {
  const app = await startApp({ url: wsticket.url, revocations });
  cleanups.push(() => app.close());
  return app;
}

/**
 * Opens a connection for `userId` through `app`, with a fresh ticket.
 * @param {{wsUrl: string}} app
 * @param {string} userId
 * @param {string} [audience]
 */
async function open(app, userId, audience) {
  return openSocket(withTicket(app.wsUrl, await mint(wsticket.url, { userId, audience })));
}

/**
 * The next user_revoked event about `userId` (others are skipped).
 * @param {RevocationListener} listener
 * @param {string} userId
 * @returns {Promise<UserRevokedEvent>}
 */
function revokedEvent(listener, userId) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { listener.removeListener('user_revoked', on); reject(new Error(`no user_revoked for ${userId} in 5 s`)); }, 5000);
    const on = (/** @type {UserRevokedEvent} */ e) => {
      if (e.userId !== userId) return;
      clearTimeout(timer);
      listener.removeListener('user_revoked', on);
      resolve(e);
    };
    listener.on('user_revoked', on);
  });
}

/**
 * GET /v1/events with `key`; resolves with the status, headers and the
 * first `bytes` of the body (or all of a refusal).
 * @param {string | undefined} key
 * @param {(body: string) => boolean} [enough] when to stop reading a 200
 * @returns {Promise<{status: number, headers: http.IncomingHttpHeaders, body: string, ms: number}>}
 */
function rawEvents(key, enough = () => true) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.get(`${wsticket.url}/v1/events`, { headers: key === undefined ? {} : { authorization: `Bearer ${key}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      const done = () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: performance.now() - started });
        req.destroy();
      };
      res.on('data', (c) => {
        body += c;
        if (res.statusCode === 200 && enough(body)) done();
      });
      res.on('end', done);
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('GET /v1/events: no answer in 5 s')));
  });
}

describe('GET /v1/events', () => {
  test('200 text/event-stream, no-store, retry first, then heartbeats every heartbeat_secs', async () => {
    const res = await rawEvents(REDEEM_KEY, (body) => body.includes(': keep-alive'));
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.match(res.body, /^retry: \d+\r?\n/);
    assert.ok(res.ms < 2500, `a heartbeat within ${Math.round(res.ms)} ms (heartbeat_secs = 1)`);
  });

  test('401 without a key or with an unknown one; 403 for a key that can neither redeem nor revoke', async () => {
    for (const [key, status] of /** @type {const} */ ([[undefined, 401], [newApiKey().key, 401], [ISSUE_KEY, 403]])) {
      const res = await rawEvents(key);
      assert.equal(res.status, status);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    }
    // The revoke permission is enough.
    assert.equal((await rawEvents(revoker.key)).status, 200);
  });

  test('the listener reports those refusals as misconfigured, with the status', async () => {
    for (const [key, status] of [[newApiKey().key, 401], [ISSUE_KEY, 403]]) {
      const listener = createRevocationListener({ url: wsticket.url, apiKey: String(key), reconnectDelayMs: 5000 });
      try {
        const err = await nextEvent(listener, 'error');
        assert.equal(err.kind, 'misconfigured');
        assert.equal(err.status, status);
        assert.equal(listener.connected, false);
      } finally {
        listener.close();
      }
    }
  });
});

describe('closing connections of revoked users', () => {
  test('a revoked user\'s connections close with 4401 within the second; other users\' stay open', async () => {
    const { listener, errors } = await connectedListener();
    const app = await appWith(listener);
    const alice = await open(app, 'alice');
    const aliceChat = await open(app, 'alice', 'chat');
    const bob = await open(app, 'bob');
    assert.equal(listener.tracked, 3);

    const event = revokedEvent(listener, 'alice');
    const { revoked_before: revokedBefore } = await revokeUser(wsticket.url, revoker.key, { user_id: 'alice' });
    const answered = performance.now();
    const e = await event;
    assert.equal(e.audience, null);
    assert.equal(e.before, revokedBefore);
    assert.equal(e.reason, 'request');
    assert.equal(e.closed, 2);
    for (const s of [alice, aliceChat]) {
      const closed = await s.closed;
      assert.equal(closed.code, 4401);
      assert.equal(closed.reason, 'revoked');
      assert.ok(closed.at - answered < 1000, `closed ${Math.round(closed.at - answered)} ms after the revoke answer`);
    }
    assert.equal(await stillOpen(bob.ws), true);
    assert.equal(listener.tracked, 1);
    assert.deepEqual(errors, []);
  });

  test('an audience-specific revocation leaves the user\'s other audiences open', async () => {
    const { listener } = await connectedListener();
    const app = await appWith(listener);
    const chat = await open(app, 'dora', 'chat');
    const other = await open(app, 'dora', 'default');

    const event = revokedEvent(listener, 'dora');
    await revokeUser(wsticket.url, revoker.key, { user_id: 'dora', audience: 'chat' });
    const e = await event;
    assert.equal(e.audience, 'chat');
    assert.equal(e.closed, 1);
    assert.equal((await chat.closed).code, 4401);
    assert.equal(await stillOpen(other.ws), true);
  });

  test('a connection with a ticket minted after the revocation survives it, even when the event comes after the connection', async () => {
    const { listener } = await connectedListener();
    const app = await appWith(listener);
    const unwatched = await appWith(undefined);
    // A connection opened before the revocation, on an app without a listener.
    const old = await open(unwatched, 'erin');

    // A revocation of someone else first: its event id is the resume point.
    const mark = revokedEvent(listener, 'frank');
    await revokeUser(wsticket.url, revoker.key, { user_id: 'frank' });
    const resumeAfter = (await mark).lastEventId;
    assert.notEqual(resumeAfter, '');

    const event = revokedEvent(listener, 'erin');
    const { revoked_before: revokedBefore } = await revokeUser(wsticket.url, revoker.key, { user_id: 'erin' });
    await event;
    const fresh = await open(app, 'erin');
    assert.ok(Date.parse(fresh.hello.identity.issuedAt) >= Date.parse(revokedBefore), 'minted after the revocation');
    assert.equal(await stillOpen(fresh.ws), true);

    // A second listener resumes before erin's revocation, so it gets the
    // event while both connections are already tracked by it.
    const replay = createRevocationListener({ url: wsticket.url, apiKey: REDEEM_KEY, lastEventId: resumeAfter });
    cleanups.push(() => replay.close());
    /** @type {string[]} */
    const seen = [];
    replay.on('user_revoked', (e) => seen.push(e.userId));
    const serverSide = (/** @type {{wss: import('ws').WebSocketServer}} */ a) => [...a.wss.clients].find((ws) => ws.wsticket?.userId === 'erin');
    const freshWs = serverSide(app);
    const oldWs = serverSide(unwatched);
    assert.ok(freshWs && oldWs);
    assert.equal(replay.track(freshWs), true);
    assert.equal(replay.track(oldWs), true);

    const replayed = await revokedEvent(replay, 'erin');
    assert.equal(replayed.before, revokedBefore);
    assert.equal(replayed.closed, 1);
    assert.equal((await old.closed).code, 4401, 'the ticket minted before is closed');
    assert.equal(await stillOpen(fresh.ws), true, 'the ticket minted after survives');
    assert.deepEqual(seen, ['erin'], 'resumed after frank\'s event');
  });

  test('an upgrade with a ticket minted before the revocation is refused (by wsticket, or by attach)', async () => {
    const { listener } = await connectedListener();
    const app = await appWith(listener);
    const ticket = await mint(wsticket.url, { userId: 'gina' });
    const event = revokedEvent(listener, 'gina');
    await revokeUser(wsticket.url, revoker.key, { user_id: 'gina' });
    await event;
    await assert.rejects(openSocket(withTicket(app.wsUrl, ticket)), /closed with 4401/);
  });

  test('ticket_reused is reported to the application', async () => {
    const { listener } = await connectedListener();
    const app = await appWith(listener);
    const ticket = await mint(wsticket.url, { userId: 'hank', audience: 'chat' });
    const first = await openSocket(withTicket(app.wsUrl, ticket));
    assert.equal(first.hello.identity.userId, 'hank');
    const reused = nextEvent(listener, 'ticket_reused');
    await assert.rejects(openSocket(withTicket(app.wsUrl, ticket)), /closed with 4401/);
    const e = await reused;
    assert.equal(e.userId, 'hank');
    assert.equal(e.audience, 'chat');
    assert.notEqual(e.lastEventId, '');
  });

  test('a client only gets the events of its audiences, and audience-null ones', async () => {
    const { listener } = await connectedListener({ apiKey: defaultOnly.key });
    /** @type {Array<string | null>} */
    const audiences = [];
    listener.on('user_revoked', (e) => { if (e.userId === 'ivan') audiences.push(e.audience); });
    await revokeUser(wsticket.url, revoker.key, { user_id: 'ivan', audience: 'chat' });
    await revokeUser(wsticket.url, revoker.key, { user_id: 'ivan', audience: 'default' });
    await revokeUser(wsticket.url, revoker.key, { user_id: 'ivan' });
    // Events come in order: once the last one is here, a chat one would have come before.
    await until(() => audiences.includes(null), 'the audience-null revocation');
    assert.deepEqual(audiences, ['default', null]);
  });
});

describe('revocation on reuse', () => {
  // `tickets.on_reuse = "revoke_user"`: the server's option (src/config/tickets.rs)
  // that makes a reused ticket revoke its user, with reason "reuse".
  test('a reused ticket revokes its user: ticket_reused, then user_revoked (reuse) closes the user\'s connections', async () => {
    const strict = await startWsticket({ config: config('heartbeat_secs = 1').replace('[tickets]', '[tickets]\non_reuse = "revoke_user"') });
    cleanups.push(() => strict.stop());
    const listener = createRevocationListener({ url: strict.url, apiKey: REDEEM_KEY });
    cleanups.push(() => listener.close());
    await nextEvent(listener, 'connect');
    const app = await startApp({ url: strict.url, revocations: listener });
    cleanups.push(() => app.close());
    /** @type {string[]} */
    const order = [];
    listener.on('ticket_reused', () => order.push('ticket_reused'));
    listener.on('user_revoked', (e) => order.push(`user_revoked ${e.reason}`));

    const leaked = await mint(strict.url, { userId: 'judy' });
    const first = await openSocket(withTicket(app.wsUrl, leaked));
    const second = await openSocket(withTicket(app.wsUrl, await mint(strict.url, { userId: 'judy' })));
    const revoked = nextEvent(listener, 'user_revoked');
    await assert.rejects(openSocket(withTicket(app.wsUrl, leaked)), /closed with 4401/);
    const e = await revoked;
    assert.equal(e.userId, 'judy');
    assert.equal(e.reason, 'reuse');
    assert.equal(e.closed, 2);
    assert.equal((await first.closed).code, 4401);
    assert.equal((await second.closed).code, 4401);
    assert.ok(order.includes('ticket_reused'), `events: ${order}`);
  });
});

describe('resuming', () => {
  test('Last-Event-ID older than the backlog: gap first, then the events still kept', async () => {
    const small = await startWsticket({ config: config('heartbeat_secs = 1\nbacklog = 2') });
    cleanups.push(() => small.stop());
    const first = createRevocationListener({ url: small.url, apiKey: REDEEM_KEY });
    cleanups.push(() => first.close());
    await nextEvent(first, 'connect');
    /** @type {string[]} */
    const ids = [];
    first.on('user_revoked', (e) => ids.push(e.lastEventId));
    for (const user of ['u1', 'u2', 'u3', 'u4']) {
      const event = nextEvent(first, 'user_revoked');
      await revokeUser(small.url, revoker.key, { user_id: user });
      await event;
    }
    assert.equal(ids.length, 4);

    const resumed = createRevocationListener({ url: small.url, apiKey: REDEEM_KEY, lastEventId: ids[0] });
    cleanups.push(() => resumed.close());
    /** @type {string[]} */
    const order = [];
    resumed.on('gap', () => order.push('gap'));
    resumed.on('user_revoked', (e) => order.push(e.userId));
    await until(() => order.includes('u4'), 'the replay up to u4');
    assert.equal(order[0], 'gap', `order: ${order}`);
    assert.ok(order.includes('u4') && !order.includes('u1'), `order: ${order}`);
  });
});
