// The lower-level API: authenticate(req) in a set-up of the application's
// own, handleProtocols on its own, and option checking.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocketServer } from 'ws';
import { CloseCode, createAuthenticator, createHandleProtocols, handleProtocols } from '../index.js';
import { closedPort, connect, mint, REDEEM_KEY, startWsticket, withTicket } from './helpers.js';

/** @type {Awaited<ReturnType<typeof startWsticket>>} */
let wsticket;
before(async () => { wsticket = await startWsticket(); });
after(async () => { await wsticket?.stop(); });

describe('authenticate(req)', () => {
  test('in an upgrade handler of the application\'s own', async () => {
    const authenticator = createAuthenticator({ url: wsticket.url, redeemKey: REDEEM_KEY });
    const server = http.createServer();
    const wss = new WebSocketServer({ noServer: true, handleProtocols });
    /** @type {Array<{before: string | undefined, after: string | undefined, result: import('../index.js').AuthResult}>} */
    const seen = [];
    server.on('upgrade', async (req, socket, head) => {
      const before = req.url;
      const pending = authenticator.authenticate(req);
      const after = req.url; // already without the ticket, before the redeem returns
      const result = await pending;
      seen.push({ before, after, result });
      wss.handleUpgrade(req, socket, head, (ws) => {
        if (!result.ok) return ws.close(result.code);
        ws.send(JSON.stringify({ identity: result.identity }));
      });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
    const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
    try {
      const ticket = await mint(wsticket.url);
      const ok = await connect(`ws://127.0.0.1:${port}/ws?ticket=${ticket}&a=1`);
      assert.equal(ok.hello?.identity?.userId, 'alice');
      const reused = await connect(`ws://127.0.0.1:${port}/ws?ticket=${ticket}`);
      assert.equal(reused.code, CloseCode.UNAUTHORIZED);

      assert.equal(seen[0].before, `/ws?ticket=${ticket}&a=1`);
      assert.equal(seen[0].after, '/ws?a=1');
      const first = seen[0].result;
      assert.ok(first.ok);
      assert.deepEqual(first.identity, {
        userId: 'alice',
        claims: { room: '42' },
        audience: 'default',
        origin: 'http://localhost:3000',
        issuedAt: first.identity.issuedAt,
        expiresAt: first.identity.expiresAt,
      });
      assert.match(first.requestId, /^[0-9a-f]{32}$/);
      const second = seen[1].result;
      assert.equal(second.ok, false);
      assert.equal(second.ok === false && second.code, 4401);
      assert.equal(second.ok === false && second.reason, 'ticket_reused');
    } finally {
      server.closeAllConnections();
      wss.close();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
      authenticator.close();
    }
  });

  test('never rejects, and removes every ticket parameter, keeping the rest', async () => {
    const authenticator = createAuthenticator({ url: wsticket.url, redeemKey: REDEEM_KEY });
    try {
      /**
       * @param {string} url
       * @param {Record<string, string>} [headers]
       */
      const fakeReq = (url, headers = {}) => {
        const req = new http.IncomingMessage(/** @type {any} */ (null));
        req.url = url;
        req.headers = headers;
        req.rawHeaders = Object.entries(headers).flat();
        return req;
      };
      /** @type {Array<[string, string, string]>} */
      const cases = [
        ['/ws', '/ws', 'missing_ticket'],
        ['/ws?', '/ws', 'missing_ticket'],
        ['/ws?ticket', '/ws', 'missing_ticket'],
        ['/ws?a=1&ticket=x&b=2&ticket=x', '/ws?a=1&b=2', 'malformed_ticket'],
        ['/ws?tick%65t=x&ticket2=y', '/ws?ticket2=y', 'malformed_ticket'],
        ['/ws?a=%ZZ&&ticket=x&', '/ws?a=%ZZ', 'malformed_ticket'],
        ['/ws?ticket=a&ticket=b', '/ws', 'ambiguous_ticket'],
      ];
      for (const [url, expected, reason] of cases) {
        const req = fakeReq(url);
        const result = await authenticator.authenticate(req);
        assert.equal(req.url, expected, url);
        assert.equal(result.ok === false && result.reason, reason, url);
      }

      const req = fakeReq('/ws', { 'sec-websocket-protocol': 'chat, WSTICKET.x, wsticket', origin: 'http://localhost:3000' });
      const result = await authenticator.authenticate(req);
      assert.equal(result.ok === false && result.reason, 'malformed_ticket');
      assert.equal(req.headers['sec-websocket-protocol'], 'chat, wsticket');
      assert.deepEqual(req.rawHeaders, ['sec-websocket-protocol', 'chat, wsticket', 'origin', 'http://localhost:3000']);

      const only = fakeReq('/ws', { 'sec-websocket-protocol': 'wsticket.x' });
      await authenticator.authenticate(only);
      assert.equal(only.headers['sec-websocket-protocol'], undefined, 'an emptied header is removed');
      assert.deepEqual(only.rawHeaders, []);
    } finally {
      authenticator.close();
    }
  });
});

describe('handleProtocols', () => {
  const req = new http.IncomingMessage(/** @type {any} */ (null));
  const T = 'wsticket.wst_dev_' + 'A'.repeat(43);

  test('selects the first application protocol, else wsticket, else none; never a ticket', () => {
    assert.equal(handleProtocols(new Set([T, 'wsticket']), req), 'wsticket');
    assert.equal(handleProtocols(new Set(['wsticket', T, 'chat.v1', 'chat.v2']), req), 'chat.v1');
    assert.equal(handleProtocols(new Set([T]), req), false);
    assert.equal(handleProtocols(new Set(['WSTICKET.wst_x', 'wst_dev_x', 'Wsticket.y']), req), false);
    assert.equal(handleProtocols(new Set(['graphql-ws']), req), 'graphql-ws');
  });

  test('with the application\'s preference order', () => {
    const select = createHandleProtocols({ prefer: ['chat.v2', 'chat.v1'] });
    assert.equal(select(new Set(['chat.v1', 'chat.v2', T]), req), 'chat.v2');
    assert.equal(select(new Set(['chat.v1', T]), req), 'chat.v1');
    assert.equal(select(new Set(['chat.v3', 'wsticket', T]), req), 'wsticket');
    assert.equal(select(new Set(['chat.v3', T]), req), false);
    assert.throws(() => createHandleProtocols({ prefer: ['wsticket.x'] }), TypeError);
    assert.throws(() => createHandleProtocols({ prefer: ['wst_dev_x'] }), TypeError);
  });
});

describe('options', () => {
  test('are checked at creation, and errors never repeat a secret', () => {
    const secret = 'wsk_this-is-secret';
    /** @param {() => unknown} fn */
    const message = (fn) => {
      try {
        fn();
      } catch (err) {
        assert.ok(err instanceof TypeError);
        return err.message;
      }
      assert.fail('did not throw');
    };
    const m1 = message(() => createAuthenticator({ url: `http://user:${secret}@127.0.0.1:1`, redeemKey: REDEEM_KEY }));
    assert.match(m1, /credentials/);
    assert.ok(!m1.includes(secret));
    const m2 = message(() => createAuthenticator({ url: 'http://127.0.0.1:1', redeemKey: `${secret} ` }));
    assert.match(m2, /redeemKey/);
    assert.ok(!m2.includes(secret));
    message(() => createAuthenticator({ url: 'http://127.0.0.1:1/?x=1', redeemKey: REDEEM_KEY }));
    message(() => createAuthenticator({ url: 'ftp://127.0.0.1:1', redeemKey: REDEEM_KEY }));
    message(() => createAuthenticator({ url: 'not a url', redeemKey: REDEEM_KEY }));
    message(() => createAuthenticator({ url: 'http://127.0.0.1:1', redeemKey: REDEEM_KEY, timeoutMs: 0 }));
    message(() => createAuthenticator({ url: 'http://127.0.0.1:1', redeemKey: REDEEM_KEY, timeoutMs: 1.5 }));
    assert.match(message(() => createAuthenticator({ url: 'https://127.0.0.1:1', redeemKey: REDEEM_KEY, agent: new http.Agent() })), /https\.Agent/);
  });

  test('https, with an agent of the application\'s (a private CA)', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'wsticket-node-tls-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const made = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    // scripts/test installs openssl where it is missing: never skipped.
    assert.equal(made.status, 0, `openssl could not make a test certificate: ${made.error ?? ''}`);
    const cert = readFileSync(join(dir, 'cert.pem'));
    /** @type {string[]} */
    const bodies = [];
    const server = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        bodies.push(body);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ user_id: 'bob', origin: null, audience: 'default', claims: {}, issued_at: '2025-06-01T12:00:00Z', expires_at: '2025-06-01T12:00:30Z' }));
      });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
    t.after(() => { server.closeAllConnections(); server.close(); });
    const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
    const ticket = `wst_dev_${'A'.repeat(43)}`;
    const fakeReq = () => {
      const req = new http.IncomingMessage(/** @type {any} */ (null));
      req.url = `/ws?ticket=${ticket}`;
      req.headers = {};
      return req;
    };

    // Without the CA the certificate is refused: 4503 unreachable.
    /** @type {string[]} */
    const kinds = [];
    const strict = createAuthenticator({ url: `https://127.0.0.1:${port}`, redeemKey: REDEEM_KEY, onError: (e) => kinds.push(e.kind) });
    const refused = await strict.authenticate(fakeReq());
    strict.close();
    assert.equal(refused.ok === false && refused.reason, 'unreachable');
    assert.deepEqual(kinds, ['unreachable']);

    const agent = new https.Agent({ keepAlive: true, ca: cert });
    t.after(() => agent.destroy());
    const trusting = createAuthenticator({ url: `https://127.0.0.1:${port}`, redeemKey: REDEEM_KEY, agent });
    const result = await trusting.authenticate(fakeReq());
    assert.ok(result.ok);
    assert.deepEqual(result.identity, { userId: 'bob', origin: null, audience: 'default', claims: {}, issuedAt: '2025-06-01T12:00:00Z', expiresAt: '2025-06-01T12:00:30Z' });
    assert.deepEqual(bodies.map((b) => JSON.parse(b)), [{ ticket, origin: null }]);
  });

  test('the default onError writes one line without the ticket or key', async () => {
    const authenticator = createAuthenticator({ url: `http://127.0.0.1:${await closedPort()}`, redeemKey: REDEEM_KEY });
    const ticket = await mint(wsticket.url);
    /** @type {unknown[][]} */
    const lines = [];
    const original = console.error;
    console.error = (...args) => { lines.push(args); };
    try {
      const req = new http.IncomingMessage(/** @type {any} */ (null));
      req.url = withTicket('', ticket);
      req.headers = { origin: 'http://localhost:3000' };
      const result = await authenticator.authenticate(req);
      assert.equal(result.ok === false && result.code, 4503);
    } finally {
      console.error = original;
      authenticator.close();
    }
    assert.equal(lines.length, 1);
    const text = lines[0].map(String).join(' ');
    assert.match(text, /^wsticket-node: unreachable: cannot reach wsticket: ECONNREFUSED \(request id [0-9a-f]{32}\)$/);
    assert.ok(!text.includes(ticket) && !text.includes(REDEEM_KEY));
  });
});
