// Real-browser end-to-end test of examples/django-chat.
//
// Starts `wsticket serve --dev` and the example under daphne on loopback
// ports, drives the chat page in headless Chromium (Debian's, through
// playwright-core), and checks what the README promises. Run it with
// ./ci.sh, which installs what it needs; by hand:
//
//   E2E_PYTHON=../.venv/bin/python node chat.e2e.mjs
//
// Environment: E2E_PYTHON (the example's venv python), WSTICKET_BIN (else
// target/debug/wsticket of this checkout), E2E_CHROMIUM (else
// /usr/bin/chromium), E2E_KEEP=1 keeps the temporary directory (logs, db).
//
// Nothing printed holds a ticket or a key: tickets stay in variables, the
// WebSocket handshakes are recorded with a hash of the ticket entry only,
// and every line printed (log tails included) goes through redact().

import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EXAMPLE = path.resolve(HERE, '..');
const REPO = path.resolve(EXAMPLE, '../..');
// Relative paths are taken from the current directory (the test runs manage.py from EXAMPLE).
const fromCwd = (value) => (value.includes('/') ? path.resolve(value) : value);
const PYTHON = fromCwd(process.env.E2E_PYTHON || path.join(EXAMPLE, '.venv/bin/python'));
const WSTICKET_BIN = fromCwd(process.env.WSTICKET_BIN || path.join(REPO, 'target/debug/wsticket'));
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const USER = 'alice';
const PASSWORD = 'wonderland'; // chat/management/commands/demo_users.py
const PROTOCOL = 'chat.v1';
const ARTIFACTS = path.join(HERE, 'artifacts');

// ---- output, never with a ticket or key ------------------------------------

const redact = (text) => String(text)
  .replace(/wst_[A-Za-z0-9_-]+/g, 'wst_<redacted>')
  .replace(/wsk_[A-Za-z0-9_-]+/g, 'wsk_<redacted>');
const say = (...lines) => console.log(redact(lines.join('\n')));
const show = (value) => redact(typeof value === 'string' ? value : JSON.stringify(value));
const ticketRef = (entry) => createHash('sha256').update(entry).digest('hex').slice(0, 12);
const monotonic = () => performance.now();

class Failure extends Error {
  constructor(message, details = {}) {
    super(message);
    this.details = details;
  }
}

/** Fails with what was expected and what happened. */
function check(ok, what, expected, actual) {
  if (!ok) throw new Failure(what, { expected, actual });
}
const checkEqual = (actual, expected, what) => check(isDeepStrictEqual(actual, expected), what, expected, actual);

/** Polls `probe` until it returns something truthy; fails after `timeout` ms with the last value. */
async function until(probe, what, { timeout = 15000, every = 50, expected } = {}) {
  const deadline = monotonic() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last?.ok ?? last) return last?.value ?? last;
    if (monotonic() > deadline) {
      throw new Failure(`timed out after ${timeout} ms: ${what}`, { expected: expected ?? what, actual: last?.actual ?? last });
    }
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}

// ---- processes ---------------------------------------------------------------

const services = new Set();

class Service {
  /** `lines` may be shared by the runs of one server, so that a log tail spans a restart. */
  constructor(name, command, args, options, lines = []) {
    this.name = name;
    this.command = command;
    this.args = args;
    this.options = options;
    this.lines = lines;
    this.proc = null;
  }

  start() {
    this.lines.push(`---- ${this.name} started`);
    const proc = spawn(this.command, this.args, { ...this.options, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    services.add(this);
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.lines.push(`---- ${this.name} exited (${signal ?? code})`);
        services.delete(this);
        resolve({ code, signal });
      });
      proc.on('error', (error) => {
        this.lines.push(`---- ${this.name} could not start: ${error.message}`);
        services.delete(this);
        resolve({ code: null, signal: null, error });
      });
    });
    for (const stream of [proc.stdout, proc.stderr]) {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop();
        for (const line of parts) this.lines.push(redact(line));
      });
    }
    return this;
  }

  get running() {
    return services.has(this);
  }

  /** The last `n` lines of output, ANSI colours removed. */
  tail(n = 25) {
    return this.lines.slice(-n).map((line) => line.replace(/\x1b\[[0-9;]*m/g, ''));
  }

  async stop() {
    if (!this.running) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(timer);
  }
}

function killAll() {
  for (const service of services) service.proc.kill('SIGKILL');
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function httpGet(url) {
  try {
    const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(2000) });
    return { status: response.status, text: await response.text() };
  } catch (error) {
    return { status: 0, text: String(error.cause?.code ?? error.message) };
  }
}

/** Waits until `url` answers 200, failing early if `service` exits. */
async function untilServing(service, url, timeout = 30000) {
  await until(async () => {
    if (!service.running) throw new Failure(`${service.name} exited before it served ${url}`, {});
    const { status } = await httpGet(url);
    return { ok: status === 200, actual: `HTTP ${status || 'no answer'}` };
  }, `${service.name} answers 200 on ${url}`, { timeout, every: 100 });
}

// ---- wsticket ----------------------------------------------------------------

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wsticket-chat-e2e-'));
const wsticketEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WSTICKET_')));
let wsticketConfig;
const wsticketLines = [];

/** `wsticket serve --dev` with the e2e origin added; port 0 picks a free port. */
async function startWsticket(listen, adminListen) {
  const service = new Service('wsticket', WSTICKET_BIN, ['serve', '--dev', '--config', wsticketConfig], {
    env: { ...wsticketEnv, WSTICKET_LISTEN: listen, WSTICKET_ADMIN_LISTEN: adminListen, NO_COLOR: '1' },
  }, wsticketLines).start();
  const from = wsticketLines.length - 1;
  const addresses = await until(() => {
    if (!service.running) throw new Failure('wsticket exited at start-up', {});
    for (const line of service.lines.slice(from)) {
      const match = /wsticket listening addr=(\S+) admin_addr=(\S+)/.exec(line);
      if (match) return { ok: true, value: { listen: match[1], admin: match[2] } };
    }
    return null;
  }, 'wsticket logs "wsticket listening addr=… admin_addr=…"', { timeout: 30000 });
  await untilServing(service, `http://${addresses.listen}/healthz`);
  return { service, ...addresses };
}

/** Sums a Prometheus counter over the series whose labels include `labels`. */
async function metric(adminAddress, name, labels = {}) {
  const { status, text } = await httpGet(`http://${adminAddress}/metrics`);
  check(status === 200, 'wsticket /metrics answers', 200, status);
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^(\w+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(match[3]);
  }
  return sum;
}

async function counters(adminAddress) {
  const redeemed = (outcome) => metric(adminAddress, 'wsticket_redemptions_total', { outcome });
  return {
    issued: await metric(adminAddress, 'wsticket_tickets_issued_total'),
    ok: await redeemed('ok'),
    reused: await redeemed('reused'),
    originMismatch: await redeemed('origin_mismatch'),
  };
}

/** wsticket's log lines "ticket redeemed … ticket_ref=…" from line `since` on: the refs (not secrets). */
const redeemedRefs = (since) => wsticketLines.slice(since)
  .map((line) => /wsticket::core::redeem: ticket redeemed .*ticket_ref="?([A-Za-z0-9_-]+)/.exec(line)?.[1])
  .filter(Boolean);

const delta = (after, before) => Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - before[k]]));

// ---- the browser side ----------------------------------------------------------

/**
 * Records the WebSocket handshakes of a page from Chromium's DevTools
 * protocol: the URL, the offered subprotocols (a ticket entry only as a hash)
 * and the one the server selected, as the browser saw them on the wire.
 */
async function recordHandshakes(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const list = [];
  const byId = new Map();
  const header = (headers, name) => {
    const key = Object.keys(headers ?? {}).find((k) => k.toLowerCase() === name);
    return key === undefined ? undefined : headers[key];
  };
  cdp.on('Network.webSocketCreated', ({ requestId, url }) => {
    const parsed = new URL(url);
    const entry = {
      path: parsed.pathname,
      ticketInQuery: parsed.searchParams.has('ticket'),
      offered: null,
      ticketRefs: [],
      status: null,
      selected: null,
    };
    byId.set(requestId, entry);
    list.push(entry);
  });
  cdp.on('Network.webSocketWillSendHandshakeRequest', ({ requestId, request }) => {
    const entry = byId.get(requestId);
    if (!entry) return;
    const offered = (header(request.headers, 'sec-websocket-protocol') ?? '')
      .split(',').map((p) => p.trim()).filter(Boolean);
    entry.offered = offered.map((p) => (p.startsWith('wsticket.') ? 'wsticket.<ticket>' : p));
    entry.ticketRefs = offered.filter((p) => p.startsWith('wsticket.')).map(ticketRef);
  });
  cdp.on('Network.webSocketHandshakeResponseReceived', ({ requestId, response }) => {
    const entry = byId.get(requestId);
    if (!entry) return;
    entry.status = response.status;
    const selected = header(response.headers, 'sec-websocket-protocol') ?? '';
    entry.selected = selected.startsWith('wsticket.') ? 'wsticket.<ticket> (!)' : selected;
  });
  return list;
}

/** A page plus what the test watches on it. */
async function openPage(browser, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const watched = { name, context, page, handshakes: await recordHandshakes(page), mints: [], console: [] };
  page.on('response', (response) => {
    if (new URL(response.url()).pathname === '/ws-ticket/') watched.mints.push(response.status());
  });
  page.on('console', (message) => watched.console.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => watched.console.push(`pageerror: ${error.message}`));
  return watched;
}

/**
 * Waits until the page has made `mints` mint requests and `handshakes`
 * WebSocket handshakes that got an answer: the browser reports them on
 * their own channels, maybe a moment after the page saw the outcome.
 */
async function settled(watched, { mints, handshakes }) {
  await until(() => {
    const answered = watched.handshakes.filter((h) => h.status !== null).length;
    return {
      ok: watched.mints.length >= mints && answered >= handshakes,
      actual: { mints: watched.mints, handshakes: watched.handshakes },
    };
  }, `the browser reports ${mints} mint(s) and ${handshakes} answered handshake(s)`, { timeout: 5000 });
}

async function login(watched, origin) {
  const { page } = watched;
  await page.goto(`${origin}/`);
  checkEqual(new URL(page.url()).pathname, '/login/', `an anonymous visit to ${origin}/ is sent to the login page`);
  await page.fill('input[name=username]', USER);
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForURL(`${origin}/`), page.click('button[type=submit]')]);
  await page.waitForFunction(() => window.chat !== undefined);
}

const chatEvents = (page) => page.evaluate(() => window.chat.events);
const chatMessages = (page) => page.evaluate(() => window.chat.messages);

/** Waits for a socket event (window.chat.events) from index `since` on that matches. */
async function untilEvent(page, since, match, what, timeout) {
  return until(async () => {
    const events = (await chatEvents(page)).slice(since);
    const found = events.find((e) => Object.entries(match).every(([k, v]) => e[k] === v));
    return { ok: Boolean(found), value: found, actual: events.map(describe) };
  }, what, { timeout, expected: match });
}

async function untilMessage(page, match, what, timeout) {
  return until(async () => {
    const messages = await chatMessages(page);
    const found = messages.filter((m) => Object.entries(match).every(([k, v]) => m[k] === v));
    return { ok: found.length > 0, value: found.at(-1), actual: messages.slice(-10) };
  }, what, { timeout, expected: match });
}

const describe = (e) => Object.entries(e).filter(([k, v]) => v !== undefined && k !== 'at')
  .map(([k, v]) => `${k}=${v}`).join(' ');

/** Sends a chat message through the page's UI and waits for it to come back from the server. */
async function exchange(page, connection) {
  const text = `hello from the e2e test ${randomBytes(4).toString('hex')}`;
  await page.fill('#text', text);
  await page.click('#send button');
  const echoed = await untilMessage(page, { type: 'message', text }, 'the chat message comes back from the server');
  checkEqual(echoed.user, USER, 'the server names the sender by the ticket\'s user');
  checkEqual(echoed.connection, connection, 'the message went over the current connection');
}

/** Mints through the example's view from the page, as the page itself would (CSRF token included). */
const mintInPage = (page) => page.evaluate(async () => {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]*)/);
  const response = await fetch('/ws-ticket/', {
    method: 'POST',
    headers: { 'X-CSRFToken': match ? decodeURIComponent(match[1]) : '', 'content-type': 'application/json' },
    body: '{}',
  });
  const body = await response.json().catch(() => null);
  return { status: response.status, ticket: body?.ticket ?? null, code: body?.code ?? null };
});

/**
 * Opens a plain WebSocket from the page with a given ticket (subprotocol
 * carrier, as wsticket-client does), and reports what happened: whether it
 * opened, the selected protocol, the messages, the close code.
 */
const connectInPage = (page, ticket, { closeAfterHello = false } = {}) => page.evaluate(
  ({ ticket, protocol, closeAfterHello }) => new Promise((resolve) => {
    const url = new URL('/ws/chat/', location.href);
    url.protocol = 'ws:';
    const ws = new WebSocket(url, [protocol, `wsticket.${ticket}`]);
    const out = { opened: false, protocol: null, messages: [], code: null, reason: null };
    const timer = setTimeout(() => { out.code = 'timeout'; ws.close(); resolve(out); }, 10000);
    ws.onopen = () => { out.opened = true; out.protocol = ws.protocol; };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      out.messages.push(message.type);
      if (closeAfterHello && message.type === 'hello') {
        out.hello = { user: message.user, protocol: message.protocol };
        ws.close(1000);
      }
    };
    ws.onclose = (event) => { clearTimeout(timer); out.code = event.code; out.reason = event.reason; resolve(out); };
  }),
  { ticket, protocol: PROTOCOL, closeAfterHello },
);

// ---- the steps ------------------------------------------------------------------

const ctx = {};

const steps = [
  ['a page on the allowed origin logs in, mints, connects over the subprotocol carrier and exchanges a message', async () => {
    const a = ctx.a;
    const before = await counters(ctx.wsticket.admin);
    ctx.logAtStart = wsticketLines.length;
    await login(a, ctx.allowedOrigin);
    await untilEvent(a.page, 0, { kind: 'state', state: 'open' }, 'the socket opens');
    const hello = await untilMessage(a.page, { type: 'hello' }, 'the server says hello');
    checkEqual(hello.user, USER, 'hello names the signed-in user');
    checkEqual(hello.protocol, PROTOCOL, 'the consumer runs chat.v1');
    checkEqual(hello.origin, ctx.allowedOrigin, 'the ticket was bound to the page\'s origin');
    checkEqual(await a.page.evaluate(() => window.chat.socket.protocol), PROTOCOL, 'socket.protocol');

    await settled(a, { mints: 1, handshakes: 1 });
    checkEqual(a.mints, [201], 'the page minted once through the Django view (HTTP statuses)');
    checkEqual(a.handshakes.length, 1, 'WebSocket handshakes so far');
    const [handshake] = a.handshakes;
    checkEqual(handshake.ticketInQuery, false, 'the WebSocket URL carries no ticket');
    checkEqual(handshake.offered, [PROTOCOL, 'wsticket.<ticket>'], 'the offered subprotocols (Sec-WebSocket-Protocol request header)');
    checkEqual(handshake.status, 101, 'the handshake status');
    checkEqual(handshake.selected, PROTOCOL, 'the subprotocol the server selected (response header): the app\'s, never the ticket entry');

    await exchange(a.page, hello.connection);
    ctx.firstHello = hello;
    const after = await counters(ctx.wsticket.admin);
    checkEqual(delta(after, before), { issued: 1, ok: 1, reused: 0, originMismatch: 0 }, 'wsticket counted one mint and one redemption');
  }],

  ['when the server drops the connection, the client reconnects with a new ticket', async () => {
    const a = ctx.a;
    const before = await counters(ctx.wsticket.admin);
    const since = (await chatEvents(a.page)).length;
    await a.page.click('#drop');
    const closed = await untilEvent(a.page, since, { kind: 'close' }, 'the server closes the connection');
    checkEqual(closed.code, 4000, 'the close code of the server\'s drop');
    await untilEvent(a.page, since, { kind: 'state', state: 'backoff', code: 4000 }, 'the client backs off after the drop');
    await untilEvent(a.page, since, { kind: 'state', state: 'open' }, 'the client reconnects');
    const hello = await until(async () => {
      const hellos = (await chatMessages(a.page)).filter((m) => m.type === 'hello');
      return { ok: hellos.length === 2, value: hellos[1], actual: hellos };
    }, 'a second hello, from the new connection');
    check(hello.connection !== ctx.firstHello.connection, 'the consumer saw two different connections', 'two connection ids', [ctx.firstHello.connection, hello.connection]);
    checkEqual(hello.user, USER, 'the new connection is the same user\'s');

    await settled(a, { mints: 2, handshakes: 2 });
    checkEqual(a.mints, [201, 201], 'the client minted again through the view');
    checkEqual(a.handshakes.length, 2, 'WebSocket handshakes so far');
    const [first, second] = a.handshakes;
    checkEqual(second.ticketRefs.length, 1, 'the new handshake carries one ticket entry');
    check(first.ticketRefs[0] !== second.ticketRefs[0], 'the two handshakes carried different tickets (compared by hash)', 'different', [first.ticketRefs[0], second.ticketRefs[0]]);
    checkEqual(second.selected, PROTOCOL, 'the new handshake\'s selected subprotocol');
    const after = await counters(ctx.wsticket.admin);
    checkEqual(delta(after, before), { issued: 1, ok: 1, reused: 0, originMismatch: 0 }, 'wsticket counted one more mint and one more redemption');
    checkEqual(after.ok - ctx.okAtStart, 2, 'two successful redemptions since the page opened');
    const refs = redeemedRefs(ctx.logAtStart);
    check(refs.length === 2 && refs[0] !== refs[1], 'wsticket logged two redemptions of two different tickets ("ticket redeemed … ticket_ref=…")', 'two different ticket_refs', refs);
    await exchange(a.page, hello.connection);
  }],

  ['a page on another origin cannot mint', async () => {
    const b = ctx.b;
    const before = await counters(ctx.wsticket.admin);
    await login(b, ctx.otherOrigin);
    const denied = await untilEvent(b.page, 0, { kind: 'state', state: 'denied' }, 'the client stops as "denied"');
    checkEqual(denied.status, 403, 'the mint\'s HTTP status');
    checkEqual(denied.problem, 'origin_not_allowed', 'the problem code (from wsticket, through the view)');
    await settled(b, { mints: 1, handshakes: 0 });
    checkEqual(b.mints, [403], 'the mint requests of the page (HTTP statuses)');
    checkEqual(b.handshakes.length, 0, 'WebSockets opened by the page');
    checkEqual((await b.page.textContent('#state')).trim(), 'denied', 'the state shown on the page');
    const after = await counters(ctx.wsticket.admin);
    checkEqual(delta(after, before), { issued: 0, ok: 0, reused: 0, originMismatch: 0 }, 'wsticket issued and redeemed nothing');
  }],

  ['a ticket minted on the allowed origin and carried to the other origin is refused with 4403', async () => {
    const before = await counters(ctx.wsticket.admin);
    const minted = await mintInPage(ctx.a.page);
    checkEqual([minted.status, typeof minted.ticket], [201, 'string'], 'a mint on the allowed origin');
    const result = await connectInPage(ctx.b.page, minted.ticket);
    checkEqual(result.code, 4403, 'the close code on the other origin');
    checkEqual(result.messages, [], 'messages received before the close');
    checkEqual(result.protocol, PROTOCOL, 'the selected subprotocol of the refused connection');
    await settled(ctx.b, { mints: 1, handshakes: 1 });
    checkEqual(ctx.b.handshakes.at(-1)?.selected, PROTOCOL, 'the selected subprotocol on the wire');
    const after = await counters(ctx.wsticket.admin);
    checkEqual(delta(after, before), { issued: 1, ok: 0, reused: 0, originMismatch: 1 }, 'wsticket counted an origin mismatch');
  }],

  ['a replayed ticket is refused with 4401', async () => {
    const before = await counters(ctx.wsticket.admin);
    const minted = await mintInPage(ctx.a.page);
    checkEqual([minted.status, typeof minted.ticket], [201, 'string'], 'a mint on the allowed origin');
    const first = await connectInPage(ctx.a.page, minted.ticket, { closeAfterHello: true });
    checkEqual([first.opened, first.hello, first.code], [true, { user: USER, protocol: PROTOCOL }, 1000], 'the first use: open, hello, closed by the page');
    const replay = await connectInPage(ctx.a.page, minted.ticket);
    checkEqual(replay.code, 4401, 'the close code of the replay');
    checkEqual(replay.messages, [], 'messages received by the replay');
    const after = await counters(ctx.wsticket.admin);
    checkEqual(delta(after, before), { issued: 1, ok: 1, reused: 1, originMismatch: 0 }, 'wsticket counted one redemption and one reuse');
  }],

  ['with wsticket stopped the client backs off without connecting, and recovers when wsticket is back', async () => {
    const a = ctx.a;
    const { listen, admin } = ctx.wsticket;
    await ctx.wsticket.service.stop();
    const handshakes = a.handshakes.length;
    const mints = a.mints.length;
    const since = (await chatEvents(a.page)).length;
    await a.page.click('#drop'); // the open connection does not need wsticket: have the server drop it
    await untilEvent(a.page, since, { kind: 'close', code: 4000 }, 'the server drops the connection');
    const failures = await until(async () => {
      const events = (await chatEvents(a.page)).slice(since);
      const failed = events.filter((e) => e.kind === 'state' && e.state === 'backoff' && e.status === 503);
      return { ok: failed.length >= 2, value: failed, actual: events.map(describe) };
    }, 'two mints fail with 503 and are backed off from', { timeout: 20000 });
    checkEqual(failures.map((e) => e.problem), ['wsticket_unavailable', 'wsticket_unavailable'], 'the problem code of the failed mints');
    const events = (await chatEvents(a.page)).slice(since);
    checkEqual(events.filter((e) => e.kind === 'open').length, 0, 'connections opened while wsticket was down');
    checkEqual(a.handshakes.length, handshakes, 'WebSocket handshakes attempted while wsticket was down');
    check(a.mints.length - mints >= 2 && a.mints.slice(mints).every((s) => s === 503), 'the mints while wsticket was down', '503s', a.mints.slice(mints));
    const state = await a.page.evaluate(() => window.chat.socket.state);
    check(state === 'backoff' || state === 'connecting', 'the socket is not open', 'backoff or connecting', state);

    ctx.wsticket = await startWsticket(listen, admin); // the same ports
    checkEqual([ctx.wsticket.listen, ctx.wsticket.admin], [listen, admin], 'wsticket is back on the same addresses');
    await untilEvent(a.page, since, { kind: 'state', state: 'open' }, 'the client reconnects', 30000);
    const hello = await until(async () => {
      const hellos = (await chatMessages(a.page)).filter((m) => m.type === 'hello');
      return { ok: hellos.length === 3, value: hellos[2], actual: hellos };
    }, 'a hello from the new connection');
    await settled(a, { mints: a.mints.length, handshakes: handshakes + 1 });
    checkEqual(a.handshakes.length, handshakes + 1, 'WebSocket handshakes after the recovery');
    checkEqual(a.handshakes.at(-1).selected, PROTOCOL, 'the selected subprotocol after the recovery');
    await exchange(a.page, hello.connection);
    // A new process: its counters started at zero.
    const after = await counters(ctx.wsticket.admin);
    checkEqual(after, { issued: 1, ok: 1, reused: 0, originMismatch: 0 }, 'the restarted wsticket minted and redeemed the reconnect\'s ticket');
  }],
];

// ---- set-up, run, report ------------------------------------------------------------

async function setUp() {
  check(spawnSync(WSTICKET_BIN, ['--version']).status === 0, `a wsticket binary at ${WSTICKET_BIN} (set WSTICKET_BIN)`, 'runs', 'does not');
  const djangoPort = await freePort();
  ctx.allowedOrigin = `http://localhost:${djangoPort}`;
  ctx.otherOrigin = `http://127.0.0.1:${djangoPort}`;
  // serve --dev allows http://localhost:3000; a [tickets] table may add ours.
  wsticketConfig = path.join(tmp, 'wsticket.toml');
  writeFileSync(wsticketConfig, `[tickets]\nallowed_origins = ["${ctx.allowedOrigin}"]\n`);
  ctx.wsticket = await startWsticket('127.0.0.1:0', '127.0.0.1:0');

  const djangoEnv = {
    ...process.env,
    DJANGO_SETTINGS_MODULE: 'chatsite.settings',
    DJANGO_CHAT_DB: path.join(tmp, 'db.sqlite3'),
    CHAT_WSTICKET_URL: `http://${ctx.wsticket.listen}`,
    PYTHONUNBUFFERED: '1',
    PYTHONDONTWRITEBYTECODE: '1',
  };
  for (const args of [['migrate', '--noinput', '-v', '0'], ['demo_users']]) {
    const run = spawnSync(PYTHON, ['manage.py', ...args], { cwd: EXAMPLE, env: djangoEnv, encoding: 'utf8' });
    check(run.status === 0, `manage.py ${args[0]} succeeds`, 'exit 0', `exit ${run.status}: ${run.error?.message ?? ''}${run.stdout}${run.stderr}`);
  }
  ctx.daphne = new Service('daphne', PYTHON, ['-m', 'daphne', '-b', '127.0.0.1', '-p', String(djangoPort), 'chatsite.asgi:application'], {
    cwd: EXAMPLE,
    env: djangoEnv,
  }).start();
  await untilServing(ctx.daphne, `${ctx.otherOrigin}/login/`);

  ctx.browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  ctx.a = await openPage(ctx.browser, `allowed origin ${ctx.allowedOrigin}`);
  ctx.b = await openPage(ctx.browser, `other origin ${ctx.otherOrigin}`);
  ctx.okAtStart = (await counters(ctx.wsticket.admin)).ok;
}

async function report(error) {
  say('', `  failed: ${error instanceof Failure ? error.message : error.stack ?? error}`);
  if (error instanceof Failure && 'expected' in error.details) {
    say(`    expected: ${show(error.details.expected)}`, `    actual:   ${show(error.details.actual)}`);
  }
  for (const watched of [ctx.a, ctx.b].filter(Boolean)) {
    say(`  -- page on the ${watched.name}`);
    try {
      say(`     url: ${watched.page.url()}`);
      const events = await watched.page.evaluate(() => window.chat?.events ?? []);
      say(`     socket events (last 12):`, ...events.slice(-12).map((e) => `       ${describe(e)}`));
      mkdirSync(ARTIFACTS, { recursive: true });
      const file = path.join(ARTIFACTS, `${watched === ctx.a ? 'allowed' : 'other'}-origin.png`);
      await watched.page.screenshot({ path: file });
      say(`     screenshot: ${path.relative(process.cwd(), file)}`);
    } catch (e) {
      say(`     (page not readable: ${e.message.split('\n')[0]})`);
    }
    say(`     mint statuses: ${show(watched.mints)}`, `     handshakes: ${show(watched.handshakes)}`);
    if (watched.console.length) say('     console (last 8):', ...watched.console.slice(-8).map((l) => `       ${l}`));
  }
  for (const service of [ctx.wsticket?.service, ctx.daphne].filter(Boolean)) {
    say(`  -- ${service.name} log (last 25 lines)`, ...service.tail(25).map((l) => `     ${l}`));
  }
}

async function main() {
  const started = monotonic();
  let passed = 0;
  let failed = 0;
  let failure;
  try {
    const t = monotonic();
    await setUp();
    say(`set-up: wsticket, daphne and Chromium started (${((monotonic() - t) / 1000).toFixed(1)} s)`);
  } catch (error) {
    failure = error;
    say('not ok - set-up');
  }
  for (const [i, [name, run]] of steps.entries()) {
    if (failure) break;
    const t = monotonic();
    try {
      await run();
      passed += 1;
      say(`ok ${i + 1} - ${name} (${((monotonic() - t) / 1000).toFixed(1)} s)`);
    } catch (error) {
      failed += 1;
      failure = error;
      say(`not ok ${i + 1} - ${name} (${((monotonic() - t) / 1000).toFixed(1)} s)`);
    }
  }
  if (failure) await report(failure);
  await ctx.browser?.close().catch(() => {});
  await Promise.all([ctx.daphne?.stop(), ctx.wsticket?.service.stop()]);
  if (process.env.E2E_KEEP === '1') say(`kept: ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
  const skipped = steps.length - passed - failed;
  say('', `${passed} passed, ${failure && !failed ? 1 : failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  say(`(${((monotonic() - started) / 1000).toFixed(1)} s)`);
  process.exitCode = failure ? 1 : 0;
}

await main();
