// Test helpers: a real wsticket process per test file, a ws server wired
// with attach(), and real ws clients. Not a test file itself (the test
// script runs test/*.test.js).

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';
import { attach } from '../index.js';

/** @typedef {import('../index.js').WsticketError} WsticketError */
/** @typedef {import('../index.js').Refusal} Refusal */
/** @typedef {import('../index.js').Identity} Identity */
/** @typedef {import('../index.js').AuthenticatorOptions} AuthenticatorOptions */
/** @typedef {import('../index.js').AttachHooks} AttachHooks */

// The repository's debug build, found from this file, so that the tests run
// from any working directory: integrations/node/test -> <repo>/target/debug.
const DEFAULT_BIN = fileURLToPath(new URL('../../../target/debug/wsticket', import.meta.url));
export const WSTICKET_BIN = process.env.WSTICKET_BIN || DEFAULT_BIN;

// The public demo keys and origin of `wsticket serve --dev`.
export const ISSUE_KEY = 'wsk_demo-issue-key-not-for-production-000000000';
export const REDEEM_KEY = 'wsk_demo-redeem-key-not-for-production-00000000';
export const ORIGIN = 'http://localhost:3000';

/** A fresh, well-formed API key and the key_sha256 that configures it. */
export function newApiKey() {
  const key = 'wsk_' + randomBytes(32).toString('base64url');
  return { key, sha256: createHash('sha256').update(key).digest('hex') };
}

// Strips ANSI colour codes, in case the log is coloured.
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/**
 * The demo keys of `serve --dev` as `[[clients]]` entries, for a complete
 * configuration (`serve --dev` refuses to run beside configured clients).
 * @returns {string}
 */
export function demoClients() {
  const sha = (/** @type {string} */ key) => createHash('sha256').update(key).digest('hex');
  return `
[[clients]]
name = "demo-issuer"
key_sha256 = "${sha(ISSUE_KEY)}"
can = ["issue"]

[[clients]]
name = "demo-redeemer"
key_sha256 = "${sha(REDEEM_KEY)}"
can = ["redeem"]
`;
}

/**
 * Starts wsticket on free loopback ports (port 0; the bound addresses are
 * read from its `wsticket listening` log line): `serve --dev`, or, with
 * `config`, `serve --config` with that complete configuration (in-memory
 * store; use demoClients() for the demo keys).
 * @param {{config?: string}} [options] a complete TOML configuration
 * @returns {Promise<{url: string, log: () => string, stop: () => Promise<void>}>}
 */
export async function startWsticket(options = {}) {
  try {
    accessSync(WSTICKET_BIN, constants.X_OK);
  } catch {
    throw new Error(`no wsticket binary at ${WSTICKET_BIN}: build it (cargo build) or set WSTICKET_BIN`);
  }
  /** @type {Record<string, string>} */
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    // A WSTICKET_CONFIG, WSTICKET_REDIS_URL, ... of the caller's shell must not leak in.
    if (!name.startsWith('WSTICKET_') && value !== undefined) env[name] = value;
  }
  Object.assign(env, {
    WSTICKET_LISTEN: '127.0.0.1:0',
    WSTICKET_ADMIN_LISTEN: '127.0.0.1:0',
    WSTICKET_LOG: 'info',
    NO_COLOR: '1',
  });
  const args = options.config === undefined ? ['serve', '--dev'] : ['serve'];
  /** @type {string | undefined} */
  let dir;
  if (options.config !== undefined) {
    dir = mkdtempSync(join(tmpdir(), 'wsticket-node-test-'));
    const file = join(dir, 'wsticket.toml');
    writeFileSync(file, options.config);
    args.push('--config', file);
  }

  const child = spawn(WSTICKET_BIN, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  let log = '';
  let exited = false;
  const exit = new Promise((resolve) => child.on('exit', () => { exited = true; resolve(undefined); }));

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wsticket did not report its address in 10 s:\n${log}`)), 10_000);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`wsticket exited (${code}) before listening:\n${log}`)); });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (/** @type {string} */ chunk) => {
      log += chunk.replace(ANSI, '');
      // e.g. `... INFO wsticket::startup: wsticket listening addr=127.0.0.1:39649 admin_addr=127.0.0.1:34333`
      const m = /wsticket listening.*?(?<![\w])addr=(\S+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(`http://${m[1]}`);
      }
    });
  });

  return {
    url,
    log: () => log,
    async stop() {
      process.removeListener('exit', killOnExit);
      if (!exited) {
        child.kill('SIGINT'); // SIGINT skips shutdown_delay_secs
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exit;
        clearTimeout(timer);
      }
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Mints a ticket with the demo issue key.
 * @param {string} wsticketUrl
 * @param {{userId?: string, origin?: string, audience?: string, claims?: Record<string, unknown>}} [body]
 * @returns {Promise<string>}
 */
export async function mint(wsticketUrl, body = {}) {
  const res = await fetch(`${wsticketUrl}/v1/tickets`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ISSUE_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      user_id: body.userId ?? 'alice',
      origin: body.origin ?? ORIGIN,
      audience: body.audience,
      claims: body.claims ?? { room: '42' },
    }),
  });
  if (res.status !== 201) throw new Error(`mint: ${res.status} ${await res.text()}`);
  const { ticket } = /** @type {{ticket: string}} */ (await res.json());
  return ticket;
}

/**
 * A free loopback port, closed again: nothing listens on it.
 * @returns {Promise<number>}
 */
export async function closedPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  await new Promise((resolve) => server.close(() => resolve(undefined)));
  return port;
}

/**
 * A TCP server that accepts connections and never answers.
 * @returns {Promise<{url: string, connections: () => number, close: () => Promise<void>}>}
 */
export async function silentServer() {
  /** @type {Set<net.Socket>} */
  const sockets = new Set();
  let count = 0;
  const server = net.createServer((socket) => {
    count += 1;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => count,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}

/**
 * An HTTP server that answers every request with the given status and body.
 * @param {number} status
 * @param {unknown} body
 * @returns {Promise<{url: string, requests: () => Array<{url: string | undefined, headers: http.IncomingHttpHeaders, body: string}>, connections: () => number, close: () => Promise<void>}>}
 */
export async function fakeWsticket(status, body) {
  let connections = 0;
  /** @type {Array<{url: string | undefined, headers: http.IncomingHttpHeaders, body: string}>} */
  const requests = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { text += c; });
    req.on('end', () => {
      requests.push({ url: req.url, headers: req.headers, body: text });
      res.writeHead(status, { 'content-type': status === 200 ? 'application/json' : 'application/problem+json' });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    });
  });
  server.on('connection', () => { connections += 1; });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    connections: () => connections,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}

/**
 * @typedef {object} Hello what the test app sends on each authenticated connection
 * @property {Identity | undefined} identity the third argument of 'connection'
 * @property {Identity | undefined} wsticket ws.wsticket
 * @property {string | undefined} url req.url as the app sees it
 * @property {string} protocol the selected subprotocol
 * @property {string | undefined} protocolHeader req.headers['sec-websocket-protocol']
 * @property {string[]} rawHeaders req.rawHeaders
 */

/**
 * An HTTP server on a free loopback port with a ws server wired by attach().
 * Each authenticated connection is sent a Hello and left open.
 * @param {Partial<AuthenticatorOptions> & AttachHooks & {wss?: import('ws').ServerOptions, authenticator?: import('../index.js').Authenticator}} options
 */
export async function startApp(options) {
  /** @type {WsticketError[]} */
  const errors = [];
  /** @type {Refusal[]} */
  const refusals = [];
  const { wss: wssOptions, onError, onRefused, ...rest } = options;
  const server = http.createServer((_req, res) => { res.writeHead(404); res.end(); });
  const wss = new WebSocketServer({ noServer: true, ...wssOptions });
  const detach = attach(server, wss, {
    url: rest.url ?? 'http://127.0.0.1:1',
    redeemKey: rest.redeemKey ?? REDEEM_KEY,
    ...rest,
    onError: (err) => { errors.push(err); onError?.(err); },
    onRefused: (refusal, req) => { refusals.push(refusal); onRefused?.(refusal, req); },
  });
  wss.on('connection', (/** @type {import('ws').WebSocket} */ ws, /** @type {http.IncomingMessage} */ req, /** @type {Identity} */ identity) => {
    /** @type {Hello} */
    const hello = {
      identity,
      wsticket: ws.wsticket,
      url: req.url,
      protocol: ws.protocol,
      protocolHeader: req.headers['sec-websocket-protocol'],
      rawHeaders: req.rawHeaders,
    };
    ws.send(JSON.stringify(hello));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  return {
    wsUrl: `ws://127.0.0.1:${port}`,
    server,
    wss,
    detach,
    errors,
    refusals,
    async close() {
      for (const client of wss.clients) client.terminate();
      server.closeAllConnections();
      await new Promise((resolve) => wss.close(() => resolve(undefined)));
      await new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}

/**
 * @typedef {object} Outcome
 * @property {boolean} opened the handshake completed
 * @property {Hello | undefined} hello what the app sent, when authenticated
 * @property {number | undefined} code the close code
 * @property {string} reason the close reason
 * @property {string} protocol the selected subprotocol ('' for none)
 * @property {number | undefined} httpStatus the status of a refused handshake
 * @property {Error | undefined} error a client-side error
 */

/**
 * Opens a WebSocket with a real ws client and waits until the app says
 * hello (then closes it with 1000) or the connection is closed.
 * @param {string} url
 * @param {{origin?: string | null, protocols?: string[], headers?: Record<string, string>}} [options]
 * @returns {Promise<Outcome>}
 */
export function connect(url, options = {}) {
  const origin = options.origin === undefined ? ORIGIN : options.origin ?? undefined;
  return new Promise((resolve) => {
    const ws = new WebSocket(url, options.protocols ?? [], { origin, headers: options.headers, handshakeTimeout: 10_000 });
    /** @type {Outcome} */
    const outcome = { opened: false, hello: undefined, code: undefined, reason: '', protocol: '', httpStatus: undefined, error: undefined };
    ws.on('open', () => { outcome.opened = true; outcome.protocol = ws.protocol; });
    ws.on('message', (data) => {
      outcome.hello = JSON.parse(String(data));
      ws.close(1000);
    });
    ws.on('unexpected-response', (_req, res) => {
      outcome.httpStatus = res.statusCode;
      res.resume();
      ws.terminate();
    });
    ws.on('error', (err) => { outcome.error = err; });
    ws.on('close', (code, reason) => {
      outcome.code = code;
      outcome.reason = reason.toString();
      resolve(outcome);
    });
  });
}

/**
 * @param {string} wsUrl
 * @param {string} ticket
 * @param {string} [path]
 */
export function withTicket(wsUrl, ticket, path = '/ws') {
  return `${wsUrl}${path}?ticket=${encodeURIComponent(ticket)}`;
}

// ---------------------------------------------------------------------------
// Revocation: the event stream, long-lived connections, Redis

/**
 * The next `name` event of `emitter` (its first argument), or a rejection
 * after `timeoutMs`. Unlike events.once, an 'error' event in between does
 * not reject it.
 * @param {import('node:events').EventEmitter} emitter
 * @param {string} name
 * @param {number} [timeoutMs]
 * @returns {Promise<any>}
 */
export function nextEvent(emitter, name, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const on = (/** @type {unknown} */ value) => {
      clearTimeout(timer);
      resolve(value);
    };
    const timer = setTimeout(() => {
      emitter.removeListener(name, on);
      reject(new Error(`no '${name}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    emitter.once(name, on);
  });
}

/**
 * Waits until `condition()` is true, checking on every turn of the event
 * loop's timers (every 5 ms), or rejects after `timeoutMs`.
 * @param {() => boolean} condition
 * @param {string} what
 * @param {number} [timeoutMs]
 */
export async function until(condition, what, timeoutMs = 5000) {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * @typedef {object} Closed how an open connection ended
 * @property {number} code
 * @property {string} reason
 * @property {number} at performance.now() when the client saw it
 */

/**
 * @typedef {object} OpenSocket a client connection the app accepted, left open
 * @property {WebSocket} ws
 * @property {any} hello the app's first message, parsed
 * @property {Promise<Closed>} closed
 * @property {() => Closed | undefined} closedNow
 */

/**
 * Opens a WebSocket and waits for the app's first message (a JSON hello);
 * rejects when the connection closes or fails first.
 * @param {string} url
 * @param {{origin?: string}} [options]
 * @returns {Promise<OpenSocket>}
 */
export function openSocket(url, options = {}) {
  const ws = new WebSocket(url, { origin: options.origin ?? ORIGIN, handshakeTimeout: 10_000 });
  /** @type {Closed | undefined} */
  let closedNow;
  /** @type {Promise<Closed>} */
  const closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => {
      closedNow = { code, reason: reason.toString(), at: performance.now() };
      resolve(closedNow);
    });
  });
  return new Promise((resolve, reject) => {
    ws.on('error', (err) => reject(err));
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      ws.terminate();
      reject(new Error(`handshake refused with HTTP ${res.statusCode}`));
    });
    ws.once('message', (data) => resolve({ ws, hello: JSON.parse(String(data)), closed, closedNow: () => closedNow }));
    closed.then((c) => reject(new Error(`closed with ${c.code} ${c.reason} before the app's hello`)));
  });
}

/**
 * True when the server still holds the connection open: a ping is answered
 * with a pong and no close frame came before it (frames keep their order,
 * so a close the server sent earlier arrives before the pong).
 * @param {WebSocket} ws
 * @param {number} [timeoutMs]
 * @returns {Promise<boolean>}
 */
export function stillOpen(ws, timeoutMs = 5000) {
  if (ws.readyState !== WebSocket.OPEN) return Promise.resolve(false);
  return new Promise((resolve, reject) => {
    const done = (/** @type {boolean} */ open) => {
      clearTimeout(timer);
      ws.removeListener('pong', onPong);
      ws.removeListener('close', onClose);
      resolve(open);
    };
    const onPong = () => done(ws.readyState === WebSocket.OPEN);
    const onClose = () => done(false);
    const timer = setTimeout(() => reject(new Error(`no pong within ${timeoutMs} ms`)), timeoutMs);
    ws.on('pong', onPong);
    ws.on('close', onClose);
    ws.ping();
  });
}

/**
 * @typedef {object} StreamConnection one GET to the fake event stream
 * @property {string | undefined} url
 * @property {http.IncomingHttpHeaders} headers
 * @property {number} at performance.now() when it arrived
 * @property {(text: string | Buffer) => Promise<void>} send writes, and waits until it is flushed
 * @property {() => void} end ends the response
 * @property {() => void} destroy cuts the connection
 * @property {Promise<void>} gone resolves when the client went away
 */

/**
 * A fake wsticket event stream on a free loopback port. By default each
 * request is answered 200 text/event-stream (headers flushed) and left open
 * for the test to write to; `respond` may answer otherwise (it is given the
 * connection's index and the response) and returns true when it did.
 * @param {{respond?: (index: number, res: http.ServerResponse) => boolean}} [options]
 */
export async function fakeEventStream(options = {}) {
  /** @type {StreamConnection[]} */
  const connections = [];
  /** @type {Array<() => void>} */
  const waiters = [];
  const server = http.createServer((req, res) => {
    req.resume();
    const index = connections.length;
    /** @type {StreamConnection} */
    const connection = {
      url: req.url,
      headers: req.headers,
      at: performance.now(),
      send: (text) => new Promise((resolve, reject) => res.write(text, (err) => (err ? reject(err) : resolve(undefined)))),
      end: () => res.end(),
      destroy: () => res.destroy(),
      gone: new Promise((resolve) => res.on('close', () => resolve(undefined))),
    };
    connections.push(connection);
    for (const wake of waiters.splice(0)) wake();
    if (options.respond?.(index, res)) return;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.flushHeaders();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${port}`,
    connections,
    /**
     * The index-th connection (0-based), once it arrived.
     * @param {number} index
     * @param {number} [timeoutMs]
     * @returns {Promise<StreamConnection>}
     */
    async connection(index, timeoutMs = 5000) {
      const deadline = performance.now() + timeoutMs;
      while (connections.length <= index) {
        const left = deadline - performance.now();
        if (left <= 0) throw new Error(`connection ${index} to the fake event stream did not come within ${timeoutMs} ms (${connections.length} came)`);
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => { clearTimeout(timer); resolve(undefined); });
        });
      }
      return connections[index];
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}

/**
 * POST /v1/users/revoke.
 * @param {string} wsticketUrl
 * @param {string} key an API key whose client can revoke
 * @param {{user_id: string, audience?: string}} body
 * @returns {Promise<{revoked_before: string}>}
 */
export async function revokeUser(wsticketUrl, key, body) {
  const res = await fetch(`${wsticketUrl}/v1/users/revoke`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`revoke: ${res.status} ${text}`);
  return JSON.parse(text);
}

/** The redis-server binary: $REDIS_SERVER_BIN, else redis-server on the PATH. */
export const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN || 'redis-server';

/**
 * Starts a throw-away redis-server on a free loopback port, without
 * persistence.
 * @returns {Promise<{url: string, stop: () => Promise<void>}>}
 */
export async function startRedis() {
  const port = await closedPort();
  const child = spawn(REDIS_SERVER_BIN, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  let log = '';
  const exit = new Promise((resolve) => child.on('exit', () => resolve(undefined)));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server was not ready in 10 s:\n${log}`)), 10_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${REDIS_SERVER_BIN} (install Redis, or set REDIS_SERVER_BIN): ${err.message}`));
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`redis-server exited (${code}):\n${log}`)); });
    const onData = (/** @type {Buffer} */ chunk) => {
      log += chunk.toString();
      if (log.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve(undefined);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      process.removeListener('exit', killOnExit);
      child.kill('SIGKILL');
      await exit;
    },
  };
}
