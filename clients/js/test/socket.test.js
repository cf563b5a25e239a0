// WsTicketSocket's behaviour with an app-supplied mint function: tickets,
// carriers, close codes, back-off, wake-ups, close(), send() and events.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MintError, WsTicketSocket } from '../index.js';
import { countingMint, fakeWebSocketClass, flush, manualMint, setup, ticketOf } from './helpers.js';

describe('tickets', () => {
  test('starts connecting and mints in a microtask, then opens with the ticket', async () => {
    const m = manualMint();
    const t = setup({ mint: m.mint });
    assert.equal(t.socket.state, 'connecting');
    assert.equal(t.socket.readyState, WsTicketSocket.CONNECTING);
    assert.equal(m.calls.length, 0, 'no mint during the constructor');
    await flush();
    assert.equal(m.calls.length, 1);
    assert.ok(m.calls[0].signal instanceof AbortSignal);
    m.give('wst_k1_first');
    await flush();
    assert.equal(t.sockets.length, 1);
    t.ws.serverOpen('wsticket');
    assert.equal(t.socket.state, 'open');
    assert.equal(t.socket.readyState, WsTicketSocket.OPEN);
    assert.equal(t.socket.protocol, 'wsticket');
    assert.deepEqual(t.log, ['event:open', 'open']);
    assert.deepEqual(t.states[0], {
      state: 'open', previous: 'connecting', delay: undefined, code: undefined, status: undefined, error: undefined,
    });
  });

  test('mints a new ticket for every connect and reconnect, and never reuses one', async () => {
    const t = setup();
    await flush();
    const closes = [4401, 1006, 4503, 4401, 4401, 1011, 1000];
    for (const code of closes) {
      t.ws.serverOpen();
      t.ws.serverClose(code);
      if (t.socket.state === 'backoff') await t.clock.tick(t.lastState().delay);
      else await flush();
    }
    const tickets = t.sockets.map(ticketOf);
    assert.equal(t.sockets.length, closes.length + 1);
    assert.deepEqual(tickets, t.counting.issued, 'one mint per attempt, each ticket used once');
    assert.equal(new Set(tickets).size, tickets.length);
    assert.equal(t.counting.maxInFlight, 1);
  });

  test('never has two mints in flight: wake-ups, reconnect() and timeouts wait for it', async () => {
    const m = manualMint();
    const t = setup({ mint: m.mint, timeoutMs: 1000 });
    await flush();
    t.wake('online');
    t.wake('visibilitychange');
    t.socket.reconnect();
    await t.clock.tick(999);
    assert.equal(m.calls.length, 1);
    await t.clock.tick(1);
    assert.equal(m.calls[0].signal.aborted, true, 'the timeout aborts the mint');
    assert.equal(m.calls[0].signal.reason.name, 'TimeoutError');
    await t.clock.tick(120_000);
    assert.equal(m.calls.length, 1, 'a mint that ignores its signal is waited for, not doubled');
    m.fail(m.calls[0].signal.reason);
    await flush();
    assert.equal(t.socket.state, 'backoff');
    assert.equal(t.lastState().error.name, 'TimeoutError');
    t.wake('online');
    await flush();
    assert.equal(m.calls.length, 2);
    t.wake('online');
    t.wake('visibilitychange');
    await flush();
    assert.equal(m.calls.length, 2);
    assert.equal(m.maxInFlight, 1);
  });

  test('accepts a string, {ticket} or a plain value from the mint function', async () => {
    for (const answer of ['wst_k1_a', { ticket: 'wst_k1_a', expires_in: 30 }]) {
      for (const mint of [async () => answer, () => answer]) {
        const t = setup({ mint });
        await flush();
        assert.equal(ticketOf(t.ws), 'wst_k1_a');
      }
    }
  });

  test('a mint that gives no usable ticket backs off, and never opens a socket', async () => {
    for (const answer of ['', 'has space', 'a'.repeat(513), { token: 'x' }, null, 42]) {
      const t = setup({ mint: async () => answer });
      await flush();
      assert.equal(t.sockets.length, 0);
      assert.equal(t.socket.state, 'backoff');
      assert.ok(t.lastState().error instanceof TypeError);
    }
  });

  test('a mint that throws, at once or later, backs off', async () => {
    for (const mint of [() => { throw new Error('boom'); }, async () => { throw new Error('boom'); }]) {
      const t = setup({ mint });
      await flush();
      assert.equal(t.socket.state, 'backoff');
      assert.equal(t.lastState().error.message, 'boom');
      assert.deepEqual(t.clock.pending(), [500]);
    }
  });
});

describe('mint errors from the app', () => {
  test('MintError 401 stops as "unauthenticated"', async () => {
    const t = setup({ mint: async () => { throw new MintError('signed out', { status: 401 }); } });
    await flush();
    assert.equal(t.socket.state, 'unauthenticated');
    assert.equal(t.socket.readyState, WsTicketSocket.CLOSED);
    assert.equal(t.lastState().status, 401);
    assert.deepEqual(t.clock.pending(), []);
    t.wake('online');
    t.wake('visibilitychange');
    await t.clock.tick(600_000);
    assert.equal(t.socket.state, 'unauthenticated');
  });

  test('MintError 403 stops as "denied"', async () => {
    const t = setup({ mint: async () => { throw new MintError('no', { status: 403, code: 'forbidden' }); } });
    await flush();
    assert.equal(t.socket.state, 'denied');
    assert.equal(t.lastState().error.code, 'forbidden');
    assert.deepEqual(t.clock.pending(), []);
  });

  test('MintError 429 waits retryAfter seconds, at least one', async () => {
    for (const [retryAfter, expected] of [[7, 7000], [0, 1000], [0.2, 1000], [undefined, 1000]]) {
      const t = setup({ mint: async () => { throw new MintError('slow down', { status: 429, retryAfter }); } });
      await flush();
      assert.equal(t.socket.state, 'backoff');
      assert.equal(t.lastState().delay, expected, `retryAfter ${retryAfter}`);
      assert.deepEqual(t.clock.pending(), [expected]);
    }
  });

  test('MintError with another status, and a MintError look-alike, are understood', async () => {
    const t = setup({ mint: async () => { throw new MintError('busy', { status: 503 }); } });
    await flush();
    assert.equal(t.socket.state, 'backoff');
    assert.equal(t.lastState().status, 503);
    // A MintError from another copy of the package: recognised by name.
    const foreign = Object.assign(new Error('signed out'), { name: 'MintError', status: 401 });
    const u = setup({ mint: async () => { throw foreign; } });
    await flush();
    assert.equal(u.socket.state, 'unauthenticated');
  });

  test('reconnect() starts over after "unauthenticated" (say, after signing in again)', async () => {
    let signedIn = false;
    const t = setup({
      mint: async () => {
        if (!signedIn) throw new MintError('signed out', { status: 401 });
        return 'wst_k1_ok';
      },
    });
    await flush();
    assert.equal(t.socket.state, 'unauthenticated');
    signedIn = true;
    t.socket.reconnect();
    await flush();
    assert.equal(ticketOf(t.ws), 'wst_k1_ok');
    t.ws.serverOpen();
    assert.equal(t.socket.state, 'open');
  });
});

describe('carriers', () => {
  test('subprotocol (default): offers "wsticket" and the ticket entry; the URL is untouched', async () => {
    const t = setup({ mint: () => 'wst_k1_abc' }, 'wss://chat.example.com/ws?room=1');
    await flush();
    assert.equal(t.ws.url, 'wss://chat.example.com/ws?room=1');
    assert.deepEqual(t.ws.protocols, ['wsticket', 'wsticket.wst_k1_abc']);
  });

  test("subprotocol: the app's protocols come first, and the ticket entry is never the selected one", async () => {
    const t = setup({ mint: () => 'wst_k1_abc', protocols: ['chat.v2', 'chat.v1'] });
    await flush();
    assert.deepEqual(t.ws.protocols, ['chat.v2', 'chat.v1', 'wsticket.wst_k1_abc']);
    t.ws.serverOpen('chat.v1');
    assert.equal(t.socket.protocol, 'chat.v1');

    const u = setup({ mint: () => 'wst_k1_abc', protocols: 'chat' });
    await flush();
    assert.deepEqual(u.ws.protocols, ['chat', 'wsticket.wst_k1_abc']);
    u.ws.serverOpen('wsticket.wst_k1_abc'); // a misconfigured server
    assert.equal(u.socket.protocol, '', 'the getter never hands out the ticket');
  });

  test('query: ?ticket= is appended correctly, and no ticket subprotocol is offered', async () => {
    const cases = [
      ['wss://x.example/ws', 'wss://x.example/ws?ticket=wst_k1_abc'],
      ['wss://x.example/ws?room=1', 'wss://x.example/ws?room=1&ticket=wst_k1_abc'],
      ['wss://x.example/ws?room=1&', 'wss://x.example/ws?room=1&ticket=wst_k1_abc'],
      ['wss://x.example/ws?', 'wss://x.example/ws?ticket=wst_k1_abc'],
      ['https://x.example/ws?a=%20b', 'https://x.example/ws?a=%20b&ticket=wst_k1_abc'],
    ];
    for (const [url, expected] of cases) {
      const t = setup({ mint: () => 'wst_k1_abc', carrier: 'query' }, url);
      await flush();
      assert.equal(t.ws.url, expected);
      assert.deepEqual(t.ws.protocols, []);
    }
    const t = setup({ mint: () => 'wst_k1_abc', carrier: 'query', protocols: ['chat'] }, new URL('wss://x.example/ws'));
    await flush();
    assert.equal(t.ws.url, 'wss://x.example/ws?ticket=wst_k1_abc');
    assert.deepEqual(t.ws.protocols, ['chat']);
  });

  test('refuses, at construction, set-ups that cannot work', () => {
    const WebSocket = fakeWebSocketClass();
    const make = (url, options) => () => new WsTicketSocket(url, { WebSocket, mint: () => 't', globalTarget: null, ...options });
    assert.throws(make('wss://x/ws#frag', {}), SyntaxError);
    assert.throws(make('ftp://x/ws', {}), SyntaxError);
    assert.throws(make('not a url', {}), SyntaxError);
    assert.throws(make('wss://x/ws?ticket=old', { carrier: 'query' }), SyntaxError);
    assert.throws(make('wss://x/ws', { carrier: 'cookie' }), TypeError);
    assert.throws(make('wss://x/ws', { protocols: ['wsticket.mine'] }), SyntaxError);
    assert.throws(make('wss://x/ws', { protocols: ['a', 'a'] }), SyntaxError);
    assert.throws(make('wss://x/ws', { protocols: ['with space'] }), SyntaxError);
    assert.throws(make('wss://x/ws', { protocols: [''] }), SyntaxError);
    assert.throws(make('wss://x/ws', { baseDelayMs: -1 }), RangeError);
    assert.throws(make('wss://x/ws', { timeoutMs: Number.NaN }), RangeError);
    assert.throws(() => new WsTicketSocket('wss://x/ws', { WebSocket, globalTarget: null }), TypeError);
    assert.throws(() => new WsTicketSocket('wss://x/ws', { WebSocket, mint: () => 't', mintUrl: '/t' }), TypeError);
    assert.throws(() => new WsTicketSocket('wss://x/ws', { mint: () => 't', globalTarget: null, WebSocket: undefined }), TypeError,
      'Node 20 has no WebSocket global: the default is missing');
  });

  test('a WebSocket constructor that throws backs off with an error that does not quote the ticket', async () => {
    class Throwing {
      constructor(url, protocols) {
        throw new SyntaxError(`The URL '${url}' or subprotocol '${protocols}' is invalid`);
      }
    }
    for (const carrier of ['subprotocol', 'query']) {
      const t = setup({ mint: () => 'wst_k1_secret', carrier, WebSocket: Throwing });
      await flush();
      assert.equal(t.socket.state, 'backoff');
      const { error } = t.lastState();
      assert.ok(error instanceof Error);
      assert.doesNotMatch(`${error.message} ${error.stack} ${error.cause}`, /secret|x\.example|chat\.example/);
    }
  });
});

describe('close codes', () => {
  test('4401: mints again at once, once; a second 4401 in a row backs off', async () => {
    const t = setup();
    await flush();
    t.ws.serverOpen();
    t.ws.serverClose(4401);
    assert.equal(t.socket.state, 'connecting');
    assert.deepEqual(t.clock.pending(), [10_000], 'only the mint timeout: no back-off wait');
    await flush();
    assert.equal(t.sockets.length, 2, 'a new ticket, at once');
    t.ws.serverOpen();
    t.ws.serverClose(4401);
    assert.equal(t.socket.state, 'backoff');
    assert.equal(t.lastState().code, 4401);
    assert.equal(t.lastState().delay, 500);
    await t.clock.tick(500);
    assert.equal(t.sockets.length, 3);
    t.ws.serverOpen();
    t.ws.serverClose(4401);
    assert.equal(t.lastState().delay, 1000, 'and keeps backing off, growing');
    assert.deepEqual(t.log, [
      'event:open', 'open', 'event:close:4401', 'connecting',
      'event:open', 'open', 'event:close:4401', 'backoff',
      'connecting', 'event:open', 'open', 'event:close:4401', 'backoff',
    ]);
  });

  test('4401 after a connection that stayed open is retried at once again', async () => {
    const t = setup();
    await flush();
    t.ws.serverOpen();
    t.ws.serverClose(4401);
    await flush();
    t.ws.serverOpen();
    await t.clock.tick(5000); // stable
    t.ws.serverClose(4401);
    assert.equal(t.socket.state, 'connecting');
  });

  test('4403: stops as "denied", and stays there', async () => {
    const t = setup();
    await flush();
    t.ws.serverOpen();
    t.ws.serverClose(4403, 'origin');
    assert.equal(t.socket.state, 'denied');
    assert.equal(t.lastState().code, 4403);
    assert.deepEqual(t.clock.pending(), []);
    t.wake('online');
    await t.clock.tick(600_000);
    assert.equal(t.sockets.length, 1);
    assert.equal(t.counting.issued.length, 1);
  });

  for (const [name, fail] of [
    ['4503', (ws) => { ws.serverOpen(); ws.serverClose(4503); }],
    ['1011', (ws) => { ws.serverOpen(); ws.serverClose(1011); }],
    ['1006 after open', (ws) => { ws.serverOpen(); ws.fail(); }],
    ['1006 in the handshake', (ws) => ws.fail()],
    ['1000 from the server', (ws) => { ws.serverOpen(); ws.serverClose(1000); }],
  ]) {
    test(`${name}: full-jitter back-off, random() · min(cap, base · 2^n)`, async () => {
      const randoms = [0, 0.999999, 0.5, 0.25, 0.999999, 0.999999, 0.999999];
      let r = 0;
      const t = setup({ baseDelayMs: 100, maxDelayMs: 1000, random: () => randoms[r++] });
      await flush();
      const delays = [];
      for (let i = 0; i < randoms.length; i += 1) {
        fail(t.ws);
        assert.equal(t.socket.state, 'backoff');
        delays.push(t.lastState().delay);
        await t.clock.tick(t.lastState().delay);
      }
      const ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
      delays.forEach((delay, i) => {
        assert.ok(delay >= 0 && delay < ceilings[i], `attempt ${i}: ${delay} within [0, ${ceilings[i]})`);
        assert.equal(delay, randoms[i] * ceilings[i]);
      });
      assert.equal(r, randoms.length, 'one random() per back-off');
    });
  }

  test('jitter with the real Math.random stays within its bounds', async () => {
    const t = setup({ baseDelayMs: 100, maxDelayMs: 3000, random: Math.random });
    await flush();
    for (let n = 0; n < 40; n += 1) {
      t.ws.fail();
      const { delay } = t.lastState();
      assert.ok(delay >= 0 && delay < Math.min(3000, 100 * 2 ** n), `attempt ${n}: ${delay}`);
      await t.clock.tick(delay);
    }
  });

  test('the back-off starts over once a connection stays open stableAfterMs; flapping does not reset it', async () => {
    const t = setup({ stableAfterMs: 2000 });
    await flush();
    const delays = [];
    for (let i = 0; i < 3; i += 1) {
      t.ws.serverOpen();
      await t.clock.tick(1999);
      t.ws.serverClose(1006);
      delays.push(t.lastState().delay);
      await t.clock.tick(t.lastState().delay);
    }
    t.ws.serverOpen();
    await t.clock.tick(2000);
    t.ws.serverClose(1006);
    delays.push(t.lastState().delay);
    assert.deepEqual(delays, [500, 1000, 2000, 500]);
  });

  test('the handshake times out after timeoutMs and backs off; the stale socket is ignored', async () => {
    const t = setup({ timeoutMs: 3000 });
    await flush();
    const stale = t.ws;
    await t.clock.tick(3000);
    assert.deepEqual(stale.closeCalls, [[undefined, undefined]]);
    assert.equal(t.socket.state, 'backoff');
    assert.equal(t.lastState().error.name, 'TimeoutError');
    stale.serverOpen();
    stale.serverClose(4403);
    assert.equal(t.socket.state, 'backoff');
    assert.ok(!t.log.includes('event:open'));
  });
});

describe('wake-ups', () => {
  for (const type of ['online', 'visibilitychange']) {
    test(`${type} during a back-off connects at once`, async () => {
      const t = setup();
      await flush();
      t.ws.fail();
      assert.deepEqual(t.clock.pending(), [500]);
      t.wake(type);
      assert.equal(t.socket.state, 'connecting');
      await flush();
      assert.equal(t.sockets.length, 2);
      assert.deepEqual(t.clock.pending(), [10_000], 'the back-off timer is gone; only the handshake timeout');
      t.ws.fail();
      assert.equal(t.lastState().delay, 1000, 'the failure count is kept');
    });
  }

  test('visibilitychange to hidden does nothing; online/visible while connecting or open do nothing', async () => {
    const t = setup();
    await flush();
    t.wake('online');
    await flush();
    assert.equal(t.sockets.length, 1);
    t.ws.serverOpen();
    t.wake('online');
    t.wake('visibilitychange');
    await flush();
    assert.equal(t.counting.issued.length, 1);
    t.ws.fail();
    t.globalTarget.visibilityState = 'hidden';
    t.wake('visibilitychange');
    await flush();
    assert.equal(t.socket.state, 'backoff');
    t.globalTarget.visibilityState = 'visible';
    t.wake('visibilitychange');
    await flush();
    assert.equal(t.sockets.length, 2);
  });

  test("visibilitychange is heard on the target's document when it has one (as in a browser)", async () => {
    const document = new EventTarget();
    document.visibilityState = 'visible';
    const window = new EventTarget();
    window.document = document;
    const t = setup({ globalTarget: window });
    await flush();
    t.ws.fail();
    document.dispatchEvent(new Event('visibilitychange'));
    await flush();
    assert.equal(t.sockets.length, 2);
  });

  test('a Retry-After wait is not cut short by online/visibility, only by reconnect()', async () => {
    let n = 0;
    const t = setup({
      mint: async () => {
        n += 1;
        if (n === 1) throw new MintError('slow down', { status: 429, retryAfter: 30 });
        return 'wst_k1_ok';
      },
    });
    await flush();
    assert.deepEqual(t.clock.pending(), [30_000]);
    t.wake('online');
    t.wake('visibilitychange');
    await flush();
    assert.equal(n, 1);
    t.socket.reconnect();
    await flush();
    assert.equal(n, 2);
    assert.equal(t.sockets.length, 1);
  });
});

describe('close()', () => {
  test('while open: closes with the code, dispatches close once the socket has, then nothing more', async () => {
    const t = setup();
    await flush();
    t.ws.serverOpen();
    t.socket.close(4000, 'bye');
    assert.deepEqual(t.ws.closeCalls, [[4000, 'bye']]);
    assert.equal(t.socket.state, 'closed');
    assert.equal(t.socket.readyState, WsTicketSocket.CLOSING);
    assert.equal(t.socket.send('x'), false);
    t.ws.serverClose(4000, 'bye');
    assert.equal(t.socket.readyState, WsTicketSocket.CLOSED);
    assert.deepEqual(t.log, ['event:open', 'open', 'closed', 'event:close:4000']);
    assert.deepEqual(t.clock.pending(), []);
    t.wake('online');
    await t.clock.tick(600_000);
    assert.equal(t.counting.issued.length, 1);
    t.socket.close(); // again: nothing
    t.socket.reconnect(); // closed for good
    await flush();
    assert.equal(t.counting.issued.length, 1);
    assert.equal(t.socket.state, 'closed');
  });

  test('during a back-off: cancels the wait', async () => {
    const t = setup();
    await flush();
    t.ws.fail();
    assert.deepEqual(t.clock.pending(), [500]);
    t.socket.close();
    assert.deepEqual(t.clock.pending(), []);
    assert.equal(t.socket.readyState, WsTicketSocket.CLOSED);
    await t.clock.tick(600_000);
    assert.equal(t.sockets.length, 1);
  });

  test('during a mint: aborts it and throws its ticket away', async () => {
    const m = manualMint();
    const t = setup({ mint: m.mint });
    await flush();
    t.socket.close();
    assert.equal(m.calls[0].signal.aborted, true);
    m.give('wst_k1_late');
    await flush();
    assert.equal(t.sockets.length, 0);
    assert.deepEqual(t.clock.pending(), []);
  });

  test('during the handshake: closes the socket; no open or close event follows', async () => {
    const t = setup();
    await flush();
    const ws = t.ws;
    t.socket.close();
    assert.equal(ws.closeCalls.length, 1);
    ws.serverOpen();
    ws.serverClose(1006);
    assert.deepEqual(t.log, ['closed']);
    assert.deepEqual(t.clock.pending(), []);
  });

  test('before the first mint: no mint at all', async () => {
    const m = manualMint();
    const t = setup({ mint: m.mint });
    t.socket.close();
    await flush();
    assert.equal(m.calls.length, 0);
  });

  test("from a 'close' listener: stops the reconnect (how an app stops on its own close codes)", async () => {
    const t = setup();
    t.socket.addEventListener('close', (e) => { if (e.code === 4000) t.socket.close(); });
    await flush();
    t.ws.serverOpen();
    t.ws.serverClose(4000, 'kicked');
    assert.equal(t.socket.state, 'closed');
    assert.deepEqual(t.clock.pending(), []);
  });

  test('refuses codes and reasons a WebSocket would refuse', async () => {
    const t = setup();
    assert.throws(() => t.socket.close(1001), RangeError);
    assert.throws(() => t.socket.close(5000), RangeError);
    assert.throws(() => t.socket.close(1000, 'x'.repeat(124)), RangeError);
    assert.equal(t.socket.state, 'connecting');
    t.socket.close(1000, 'é'.repeat(61));
    assert.equal(t.socket.state, 'closed');
  });
});

describe('send(), events and state', () => {
  test('send() returns false when not open (nothing queued) and true once handed to the socket', async () => {
    const t = setup({ binaryType: 'arraybuffer' });
    assert.equal(t.socket.send('early'), false);
    await flush();
    assert.equal(t.ws.binaryType, 'arraybuffer');
    assert.equal(t.socket.send('handshaking'), false);
    t.ws.serverOpen();
    const bytes = new Uint8Array([1, 2]);
    assert.equal(t.socket.send('hello'), true);
    assert.equal(t.socket.send(bytes), true);
    assert.deepEqual(t.ws.sent, ['hello', bytes]);
    t.ws.fail();
    assert.equal(t.socket.send('lost'), false);
    await t.clock.tick(500);
    t.ws.serverOpen();
    assert.deepEqual(t.ws.sent, [], 'nothing was queued');
  });

  test('message events carry data; every open is followed by exactly one close with code, reason and wasClean', async () => {
    const t = setup();
    const messages = [];
    const closes = [];
    t.socket.addEventListener('message', (e) => messages.push(e.data));
    t.socket.addEventListener('close', (e) => closes.push([e.code, e.reason, e.wasClean]));
    await flush();
    t.ws.serverMessage('too early'); // before open: not forwarded
    t.ws.serverOpen();
    t.ws.serverMessage('one');
    t.ws.serverMessage('two');
    t.ws.serverClose(4503, 'busy', true);
    await t.clock.tick(500);
    t.ws.fail(); // never opened: no close event
    await t.clock.tick(1000);
    t.ws.serverOpen();
    t.ws.fail();
    assert.deepEqual(messages, ['one', 'two']);
    assert.deepEqual(closes, [[4503, 'busy', true], [1006, '', false]]);
    assert.equal(t.log.filter((e) => e === 'event:open').length, closes.length);
  });

  test('state events say what happened: previous state, delay, close code or mint status', async () => {
    const t = setup();
    await flush();
    t.ws.serverOpen();
    t.ws.serverClose(4503);
    await t.clock.tick(500);
    assert.deepEqual(t.states, [
      { state: 'open', previous: 'connecting', delay: undefined, code: undefined, status: undefined, error: undefined },
      { state: 'backoff', previous: 'open', delay: 500, code: 4503, status: undefined, error: undefined },
      { state: 'connecting', previous: 'backoff', delay: undefined, code: undefined, status: undefined, error: undefined },
    ]);
  });

  test("'open' comes before the 'open' state; send() works in both; closing from either keeps open/close paired", async () => {
    const sent = [];
    const t = setup();
    t.socket.addEventListener('open', () => sent.push(t.socket.state, t.socket.send('from open')));
    t.socket.addEventListener('state', (e) => {
      if (e.state === 'open') {
        sent.push(t.socket.send('from state'));
        t.socket.close();
      }
    });
    await flush();
    t.ws.serverOpen();
    assert.deepEqual(sent, ['open', true, true]);
    t.ws.serverClose(1000);
    assert.deepEqual(t.log, ['event:open', 'open', 'closed', 'event:close:1000']);

    const u = setup();
    u.socket.addEventListener('open', () => u.socket.close());
    await flush();
    u.ws.serverOpen();
    u.ws.serverClose(1000);
    assert.deepEqual(u.log, ['event:open', 'closed', 'event:close:1000'], 'no open state once closed');
  });

  test('never logs anything', async () => {
    const methods = ['log', 'info', 'warn', 'error', 'debug', 'trace'];
    const original = methods.map((name) => console[name]);
    const calls = [];
    for (const name of methods) console[name] = (...args) => calls.push([name, ...args]);
    try {
      const t = setup();
      await flush();
      t.ws.serverOpen();
      t.ws.serverMessage('x');
      t.ws.serverClose(4401);
      await flush();
      t.ws.fail();
      await t.clock.tick(30_000);
      t.ws.serverOpen();
      t.ws.serverClose(4403);
      t.socket.close();
      const u = setup({ mint: async () => { throw new MintError('x', { status: 429 }); } });
      await t.clock.tick(1000);
      u.socket.close();
    } finally {
      methods.forEach((name, i) => { console[name] = original[i]; });
    }
    assert.deepEqual(calls, []);
  });

  test('statics and readyState follow WebSocket', async () => {
    assert.deepEqual(
      [WsTicketSocket.CONNECTING, WsTicketSocket.OPEN, WsTicketSocket.CLOSING, WsTicketSocket.CLOSED],
      [0, 1, 2, 3],
    );
    const t = setup();
    await flush();
    assert.equal(t.socket.readyState, 0);
    t.ws.fail();
    assert.equal(t.socket.state, 'backoff');
    assert.equal(t.socket.readyState, 0);
  });

  test('with no globalTarget and no window, it listens to nothing and still works', async () => {
    const { mint, issued } = countingMint();
    const WebSocket = fakeWebSocketClass();
    const socket = new WsTicketSocket('wss://x/ws', { mint, WebSocket, globalTarget: null });
    await flush();
    assert.equal(WebSocket.instances.length, 1);
    assert.equal(issued.length, 1);
    socket.close();
  });
});
