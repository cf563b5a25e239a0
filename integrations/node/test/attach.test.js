// attach() against a real `wsticket serve --dev`, with real ws clients.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { WebSocketServer } from 'ws';
import { attach, createHandleProtocols, handleProtocols } from '../index.js';
import { connect, mint, ORIGIN, REDEEM_KEY, startApp, startWsticket, withTicket } from './helpers.js';

/** @type {Awaited<ReturnType<typeof startWsticket>>} */
let wsticket;
before(async () => { wsticket = await startWsticket(); });
after(async () => { await wsticket?.stop(); });

/**
 * Runs `body` with an app attached to the test's wsticket, closed afterwards.
 * @param {Parameters<typeof startApp>[0]} options
 * @param {(app: Awaited<ReturnType<typeof startApp>>) => Promise<void>} body
 */
async function withApp(options, body) {
  const app = await startApp({ url: wsticket.url, ...options });
  try {
    await body(app);
  } finally {
    await app.close();
  }
}

/** @param {import('./helpers.js').Outcome} outcome */
function assertAuthenticated(outcome) {
  assert.equal(outcome.opened, true, 'the handshake completed');
  assert.ok(outcome.hello, `the app said hello (closed with ${outcome.code} ${outcome.reason})`);
  const { identity, wsticket: attached } = outcome.hello;
  assert.deepEqual(identity?.userId, 'alice');
  assert.deepEqual(identity?.claims, { room: '42' });
  assert.equal(identity?.audience, 'default');
  assert.equal(identity?.origin, ORIGIN);
  // issued_at has milliseconds (it is compared with a revocation's `before`).
  assert.match(identity?.issuedAt ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{3})?Z$/);
  assert.match(identity?.expiresAt ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.deepEqual(attached, identity, 'ws.wsticket is the identity handed to the connection handler');
  return outcome.hello;
}

/**
 * @param {import('./helpers.js').Outcome} outcome
 * @param {number} code
 */
function assertClosedWith(outcome, code) {
  assert.equal(outcome.opened, true, 'the handshake completed before the close');
  assert.equal(outcome.hello, undefined, 'the app never saw the connection');
  assert.equal(outcome.code, code);
}

describe('success', () => {
  test('query carrier: identity attached, ticket removed from req.url', async () => {
    await withApp({}, async (app) => {
      const ticket = await mint(wsticket.url);
      const outcome = await connect(`${app.wsUrl}/ws?room=42&ticket=${ticket}&x=a%20b`);
      const hello = assertAuthenticated(outcome);
      assert.equal(hello.url, '/ws?room=42&x=a%20b', 'other parameters are kept as they were');
      assert.equal(outcome.protocol, '');
      assert.deepEqual(app.refusals, []);
      assert.deepEqual(app.errors, []);
    });
  });

  test('query carrier: a query of only the ticket leaves no "?"', async () => {
    await withApp({}, async (app) => {
      const hello = assertAuthenticated(await connect(withTicket(app.wsUrl, await mint(wsticket.url))));
      assert.equal(hello.url, '/ws');
    });
  });

  test('subprotocol carrier, no protocol of the page: "wsticket" is selected', async () => {
    await withApp({ wss: { handleProtocols } }, async (app) => {
      const ticket = await mint(wsticket.url);
      const outcome = await connect(`${app.wsUrl}/ws`, { protocols: ['wsticket', `wsticket.${ticket}`] });
      const hello = assertAuthenticated(outcome);
      assert.equal(outcome.protocol, 'wsticket');
      assert.equal(hello.protocol, 'wsticket');
      assert.equal(hello.protocolHeader, 'wsticket', 'the ticket entry is gone from the header the app sees');
      assert.ok(!hello.rawHeaders.some((h) => h.includes(ticket)), 'and from rawHeaders');
      assert.equal(hello.url, '/ws');
    });
  });

  test('subprotocol carrier with the app\'s protocol: the app\'s is selected, never the ticket entry', async () => {
    await withApp({ wss: { handleProtocols } }, async (app) => {
      const ticket = await mint(wsticket.url);
      const outcome = await connect(`${app.wsUrl}/ws`, { protocols: [`wsticket.${ticket}`, 'wsticket', 'chat.v1'] });
      assertAuthenticated(outcome);
      assert.equal(outcome.protocol, 'chat.v1');
    });
  });

  test('the app\'s preference order decides between offered protocols', async () => {
    await withApp({ wss: { handleProtocols: createHandleProtocols({ prefer: ['chat.v2', 'chat.v1'] }) } }, async (app) => {
      const ticket = await mint(wsticket.url);
      const outcome = await connect(`${app.wsUrl}/ws`, { protocols: ['chat.v1', `wsticket.${ticket}`, 'chat.v2'] });
      assertAuthenticated(outcome);
      assert.equal(outcome.protocol, 'chat.v2');
    });
  });

  test('without a handleProtocols, ws\'s default cannot select the ticket entry either', async () => {
    await withApp({}, async (app) => {
      const ticket = await mint(wsticket.url);
      // ws selects the first offered protocol by default; the ticket entry comes first.
      const outcome = await connect(`${app.wsUrl}/ws`, { protocols: [`wsticket.${ticket}`, 'wsticket'] });
      assertAuthenticated(outcome);
      assert.equal(outcome.protocol, 'wsticket');
    });
  });

  test('the same ticket in both carriers counts once', async () => {
    await withApp({ wss: { handleProtocols } }, async (app) => {
      const ticket = await mint(wsticket.url);
      const outcome = await connect(withTicket(app.wsUrl, ticket), { protocols: ['wsticket', `wsticket.${ticket}`] });
      assertAuthenticated(outcome);
    });
  });
});

describe('refusals', () => {
  test('no ticket: 4401', async () => {
    await withApp({}, async (app) => {
      const outcome = await connect(`${app.wsUrl}/ws?room=42`);
      assertClosedWith(outcome, 4401);
      assert.equal(outcome.reason, 'unauthorized');
      assert.deepEqual(app.refusals.map((r) => r.reason), ['missing_ticket']);
    });
  });

  test('an empty ticket parameter is no ticket: 4401', async () => {
    await withApp({}, async (app) => {
      assertClosedWith(await connect(`${app.wsUrl}/ws?ticket=`), 4401);
      assert.deepEqual(app.refusals.map((r) => r.reason), ['missing_ticket']);
    });
  });

  test('reused ticket: 4401', async () => {
    await withApp({}, async (app) => {
      const ticket = await mint(wsticket.url);
      assertAuthenticated(await connect(withTicket(app.wsUrl, ticket)));
      assertClosedWith(await connect(withTicket(app.wsUrl, ticket)), 4401);
      assert.deepEqual(app.refusals.map((r) => r.reason), ['ticket_reused']);
    });
  });

  test('unknown ticket (well-formed, never minted): 4401', async () => {
    await withApp({}, async (app) => {
      const ticket = `wst_dev_${'A'.repeat(42)}A`;
      assertClosedWith(await connect(withTicket(app.wsUrl, ticket)), 4401);
      assert.deepEqual(app.refusals.map((r) => r.reason), ['ticket_invalid']);
    });
  });

  test('malformed ticket: 4401, without a redeem', async () => {
    await withApp({}, async (app) => {
      assertClosedWith(await connect(withTicket(app.wsUrl, 'wst_dev_short')), 4401);
      assertClosedWith(await connect(`${app.wsUrl}/ws`, { protocols: ['wsticket', 'wsticket.not-a-ticket'] }), 4401);
      assert.deepEqual(app.refusals.map((r) => r.reason), ['malformed_ticket', 'malformed_ticket']);
    });
  });

  test('wsticket refuses a ticket of the right form but non-canonical base64url: 4401 invalid_request', async () => {
    await withApp({}, async (app) => {
      // 43 characters whose last one has trailing bits set: wsticket's parser refuses it.
      assertClosedWith(await connect(withTicket(app.wsUrl, `wst_dev_${'A'.repeat(42)}B`)), 4401);
      assert.deepEqual(app.refusals.map((r) => r.reason), ['invalid_request']);
    });
  });

  test('two different tickets: 4401, and neither is used up', async () => {
    await withApp({ wss: { handleProtocols } }, async (app) => {
      const a = await mint(wsticket.url);
      const b = await mint(wsticket.url);
      assertClosedWith(await connect(withTicket(app.wsUrl, a), { protocols: ['wsticket', `wsticket.${b}`] }), 4401);
      assertClosedWith(await connect(`${app.wsUrl}/ws?ticket=${a}&ticket=${b}`), 4401);
      assert.deepEqual(app.refusals.map((r) => r.reason), ['ambiguous_ticket', 'ambiguous_ticket']);
      assertAuthenticated(await connect(withTicket(app.wsUrl, a)));
      assertAuthenticated(await connect(withTicket(app.wsUrl, b)));
    });
  });

  test('wrong origin: 4403', async () => {
    await withApp({}, async (app) => {
      const ticket = await mint(wsticket.url);
      const outcome = await connect(withTicket(app.wsUrl, ticket), { origin: 'https://evil.example' });
      assertClosedWith(outcome, 4403);
      assert.equal(outcome.reason, 'forbidden');
      assert.deepEqual(app.refusals.map((r) => r.reason), ['origin_mismatch']);
      // The ticket was consumed by the refused redeem.
      assertClosedWith(await connect(withTicket(app.wsUrl, ticket)), 4401);
    });
  });

  test('no Origin header for a ticket with an origin: 4403', async () => {
    await withApp({}, async (app) => {
      const ticket = await mint(wsticket.url);
      assertClosedWith(await connect(withTicket(app.wsUrl, ticket), { origin: null }), 4403);
      assert.deepEqual(app.refusals.map((r) => r.reason), ['origin_mismatch']);
    });
  });

  test('the origin is compared in canonical form', async () => {
    await withApp({}, async (app) => {
      const ticket = await mint(wsticket.url);
      assertAuthenticated(await connect(withTicket(app.wsUrl, ticket), { origin: 'HTTP://LocalHost:3000' }));
    });
  });

  test('onRefused sees req.url without the ticket', async () => {
    /** @type {Array<string | undefined>} */
    const urls = [];
    await withApp({ onRefused: (_r, req) => urls.push(req.url) }, async (app) => {
      const ticket = await mint(wsticket.url);
      await connect(`${app.wsUrl}/ws?a=1&ticket=${ticket}`, { origin: 'https://evil.example' });
      assert.deepEqual(urls, ['/ws?a=1']);
    });
  });
});

test('concurrent upgrades with one ticket: exactly one succeeds', async () => {
  await withApp({}, async (app) => {
    const ticket = await mint(wsticket.url);
    const outcomes = await Promise.all(Array.from({ length: 12 }, () => connect(withTicket(app.wsUrl, ticket))));
    const successes = outcomes.filter((o) => o.hello !== undefined);
    assert.equal(successes.length, 1);
    assertAuthenticated(successes[0]);
    const refused = outcomes.filter((o) => o.hello === undefined);
    assert.deepEqual(refused.map((o) => o.code), Array(11).fill(4401));
    assert.equal(app.refusals.length, 11);
    assert.ok(app.refusals.every((r) => r.reason === 'ticket_reused' || r.reason === 'ticket_invalid'));
  });
});

describe('routing', () => {
  test('a path ws does not handle is refused with HTTP 400, and the ticket is not used', async () => {
    await withApp({ wss: { path: '/ws' } }, async (app) => {
      const ticket = await mint(wsticket.url);
      const outcome = await connect(withTicket(app.wsUrl, ticket, '/other'));
      assert.equal(outcome.opened, false);
      assert.equal(outcome.httpStatus, 400);
      assertAuthenticated(await connect(withTicket(app.wsUrl, ticket, '/ws')));
    });
  });

  test('filter leaves other upgrades to other listeners; detach removes the listener', async () => {
    await withApp({ filter: (req) => req.url?.startsWith('/ws') ?? false }, async (app) => {
      const other = new WebSocketServer({ noServer: true });
      /** @type {Array<string | undefined>} */
      const seen = [];
      other.on('connection', (ws, req) => { seen.push(req.url); ws.close(4000); });
      app.server.on('upgrade', (req, socket, head) => {
        if (!req.url?.startsWith('/ws')) other.handleUpgrade(req, socket, head, (ws) => other.emit('connection', ws, req));
      });
      const outcome = await connect(`${app.wsUrl}/plain`);
      assert.equal(outcome.code, 4000);
      assert.deepEqual(seen, ['/plain']);
      assert.deepEqual(app.refusals, []);

      app.detach();
      assert.equal(app.server.listenerCount('upgrade'), 1);
      other.close();
    });
  });

  test('attach refuses a WebSocketServer that handles upgrades itself', async () => {
    const server = http.createServer();
    const wss = new WebSocketServer({ server });
    assert.throws(
      () => attach(server, wss, { url: wsticket.url, redeemKey: REDEEM_KEY }),
      /noServer: true/,
    );
    wss.close();
  });
});

test('several apps can share one authenticator and its connections', async () => {
  const { createAuthenticator } = await import('../index.js');
  const authenticator = createAuthenticator({ url: wsticket.url, redeemKey: REDEEM_KEY });
  try {
    const a = await startApp({ authenticator });
    const b = await startApp({ authenticator });
    try {
      assertAuthenticated(await connect(withTicket(a.wsUrl, await mint(wsticket.url))));
      assertAuthenticated(await connect(withTicket(b.wsUrl, await mint(wsticket.url))));
    } finally {
      await a.close();
      await b.close();
    }
  } finally {
    authenticator.close();
  }
});
