// What wsticket-node adds to a WebSocket handshake, in CPU of the process
// that serves the WebSockets: the same `ws` server run twice, (a) `ws`
// alone, accepting every upgrade, and (b) wired with attach() as README.md
// tells, redeeming a pre-minted ticket per upgrade against a real wsticket
// (Redis store). A load generator in its own process opens connections in
// a loop (open, wait for open, close) with N in flight; the server's CPU
// (utime + stime of /proc/<pid>/stat, every thread) is divided by the
// handshakes. The variants alternate (a, b, a, b, ...) in one run.
//
//   flock /tmp/wsticket-heavy.lock node bench/handshake.js [options]
//
//   --connections N   handshakes in flight (default 16)
//   --handshakes N    handshakes per round (default 20000)
//   --rounds N        rounds of (a, b) (default 2)
//   --warmup N        handshakes per variant before the first round (default 5000)
//   --carrier C       query (?ticket=, the default) or protocol (Sec-WebSocket-Protocol)
//   --profile DIR     run both servers with node --cpu-prof, profiles written
//                     to DIR/ws.cpuprofile and DIR/helper.cpuprofile (the
//                     profiler's own cost is then in the figures)
//
// The wsticket binary is $WSTICKET_BIN, else the repository's
// target/release/wsticket, else target/debug/wsticket; redis-server is
// $REDIS_SERVER_BIN, else the one on the PATH. See bench/README.md.
//
// Not part of the package, the tests or ci.sh. It prints no ticket and no
// key: they live in this process, its children and a temporary directory
// (mode 0700) that is removed at the end.

import { fork, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';
import { attach, handleProtocols } from '../index.js';

const SELF = fileURLToPath(import.meta.url);
const ORIGIN = 'https://app.example.com';
const BUDGET_US = 350;

/** @typedef {'ws' | 'helper'} Variant */
/** @typedef {'query' | 'protocol'} Carrier */
/**
 * @typedef {{cmd: 'run', port: number, tickets: string[] | null, count: number, connections: number, carrier: Carrier}} RunCommand
 * @typedef {{handshakes: number, failed: number, refusedCodes: number, elapsedMs: number}} RunResult
 * @typedef {{accepted: number, refused: number, errors: number}} ServerCounts
 */

// ---------------------------------------------------------------------------
// Role: the WebSocket server (a child process, one per variant)

/** @param {Variant} variant */
async function serverRole(variant) {
  const server = http.createServer((_req, res) => {
    res.writeHead(404);
    res.end();
  });
  /** @type {ServerCounts} */
  const counts = { accepted: 0, refused: 0, errors: 0 };
  if (variant === 'ws') {
    // ws alone: every upgrade is accepted, as without authentication.
    const wss = new WebSocketServer({ noServer: true });
    wss.on('connection', () => { counts.accepted += 1; });
    server.on('upgrade', (req, socket, head) => {
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    });
  } else {
    // As README.md's example wires it; onRefused and onError only count.
    const url = process.env.BENCH_WSTICKET_URL;
    const redeemKey = process.env.BENCH_REDEEM_KEY;
    if (url === undefined || redeemKey === undefined) throw new Error('BENCH_WSTICKET_URL and BENCH_REDEEM_KEY are required');
    const wss = new WebSocketServer({ noServer: true, handleProtocols });
    attach(server, wss, {
      url,
      redeemKey,
      onRefused: () => { counts.refused += 1; },
      onError: () => { counts.errors += 1; },
    });
    wss.on('connection', () => { counts.accepted += 1; });
  }
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  process.on('message', (message) => {
    if (message === 'counts') process.send?.({ counts: { ...counts } });
  });
  process.on('disconnect', () => process.exit(0));
  process.send?.({ port });
}

// ---------------------------------------------------------------------------
// Role: the load generator (a child process)

/**
 * One connection: open, wait for 'open', close, wait for 'close'.
 * @param {RunCommand} run
 * @param {string | undefined} ticket
 * @returns {Promise<{ok: boolean, refused: boolean}>}
 */
function oneHandshake(run, ticket) {
  let url = `ws://127.0.0.1:${run.port}/ws`;
  /** @type {string[]} */
  let protocols = [];
  if (run.carrier === 'query') {
    if (ticket !== undefined) url += `?ticket=${encodeURIComponent(ticket)}`;
  } else {
    protocols = ticket === undefined ? ['wsticket'] : ['wsticket', `wsticket.${ticket}`];
  }
  return new Promise((resolve) => {
    let opened = false;
    let failed = false;
    const ws = new WebSocket(url, protocols, { origin: ORIGIN });
    ws.on('open', () => {
      opened = true;
      ws.close(1000);
    });
    ws.on('error', () => { failed = true; });
    ws.on('close', (code) => {
      // 4401/4403/4503: attach() refused the ticket (it completes the
      // handshake first, then closes with the code).
      resolve({ ok: opened && !failed && code < 4000, refused: code >= 4000 });
    });
  });
}

async function loadRole() {
  process.on('message', async (/** @type {RunCommand} */ run) => {
    if (run.cmd !== 'run') return;
    let next = 0;
    let handshakes = 0;
    let failed = 0;
    let refusedCodes = 0;
    const start = performance.now();
    const loop = async () => {
      while (next < run.count) {
        const i = next;
        next += 1;
        const { ok, refused } = await oneHandshake(run, run.tickets === null ? undefined : run.tickets[i]);
        if (ok) handshakes += 1;
        else failed += 1;
        if (refused) refusedCodes += 1;
      }
    };
    await Promise.all(Array.from({ length: run.connections }, loop));
    /** @type {RunResult} */
    const result = { handshakes, failed, refusedCodes, elapsedMs: performance.now() - start };
    process.send?.({ result });
  });
  process.on('disconnect', () => process.exit(0));
  process.send?.({ ready: true });
}

// ---------------------------------------------------------------------------
// Role: the conductor (this process): Redis, wsticket, tickets, rounds

/** @param {string[]} argv */
function parseArgs(argv) {
  const options = {
    connections: 16,
    handshakes: 20000,
    rounds: 2,
    warmup: 5000,
    carrier: /** @type {Carrier} */ ('query'),
    /** @type {string | undefined} */
    profile: undefined,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i];
    const value = argv[i + 1];
    if (name === '--profile') {
      if (value === undefined) throw new Error('--profile needs a directory');
      options.profile = value;
      continue;
    }
    if (name === '--carrier') {
      if (value !== 'query' && value !== 'protocol') throw new Error('--carrier is query or protocol');
      options.carrier = value;
      continue;
    }
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} needs a positive integer`);
    if (name === '--connections') options.connections = n;
    else if (name === '--handshakes') options.handshakes = n;
    else if (name === '--rounds') options.rounds = n;
    else if (name === '--warmup') options.warmup = n;
    else throw new Error(`unknown option ${name}`);
  }
  return options;
}

/** @param {string} message */
function note(message) {
  process.stderr.write(`[handshake ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** Kills what was started, in reverse order, at exit (also on an error). */
/** @type {Array<() => void>} */
const cleanups = [];
function cleanUp() {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      cleanup();
    } catch {
      // best effort
    }
  }
}
process.on('exit', cleanUp);
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) process.on(signal, () => process.exit(130));

/** A loopback port the OS picked, closed again for the child to take. */
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  await new Promise((resolve) => server.close(() => resolve(undefined)));
  return port;
}

/**
 * Starts a process and resolves once `ready` matches its output.
 * @param {string} what
 * @param {string} bin
 * @param {string[]} args
 * @param {NodeJS.ProcessEnv} env
 * @param {RegExp} ready
 * @returns {Promise<{pid: number, match: RegExpExecArray, kill: (signal?: NodeJS.Signals) => void}>}
 */
function startProcess(what, bin, args, env, ready) {
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(() => child.kill('SIGKILL'));
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} was not ready in 10 s:\n${log.slice(-2000)}`)), 10_000);
    child.on('error', (err) => { clearTimeout(timer); reject(new Error(`cannot start ${what} (${bin}): ${err.message}`)); });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} exited (${code}):\n${log.slice(-2000)}`)); });
    let found = false;
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      if (found) return; // keep draining the pipe, no longer keeping it
      log += chunk.toString();
      const m = ready.exec(log);
      if (m) {
        found = true;
        clearTimeout(timer);
        resolve({ pid: /** @type {number} */ (child.pid), match: m, kill: (signal) => child.kill(signal) });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
  });
}

/** @param {number} pid utime + stime, in clock ticks, of every thread */
function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of proc(5)
}

/** Busy clock ticks of the whole machine (not idle, not iowait). */
function busyTicks() {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).map(Number);
  return user + nice + system + irq + softirq + steal;
}

// Linux exposes CLK_TCK only through sysconf; it is 100 on every Linux
// platform Node supports (USER_HZ is fixed in the kernel ABI).
const TICK_US = 10_000;

/**
 * Mints `count` tickets with the issue key, `parallel` at a time.
 * @param {string} url
 * @param {string} mintKey
 * @param {number} count
 * @returns {Promise<string[]>}
 */
async function mintTickets(url, mintKey, count) {
  const agent = new http.Agent({ keepAlive: true });
  /** @type {string[]} */
  const tickets = [];
  let next = 0;
  /** @param {number} i */
  const mintOne = (i) => new Promise((resolve, reject) => {
    const body = JSON.stringify({ user_id: `bench-user-${i % 100}`, origin: ORIGIN, ttl_secs: 900, claims: { room: '42' } });
    const req = http.request(`${url}/v1/tickets`, {
      method: 'POST',
      agent,
      headers: { authorization: `Bearer ${mintKey}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => {
        if (res.statusCode !== 201) {
          reject(new Error(`mint answered ${res.statusCode}`)); // the body is not printed: it could echo the request
          return;
        }
        resolve(/** @type {{ticket: string}} */ (JSON.parse(text)).ticket);
      });
    });
    req.on('error', reject);
    req.end(body);
  });
  const loop = async () => {
    while (next < count) {
      const i = next;
      next += 1;
      tickets[i] = /** @type {string} */ (await mintOne(i));
    }
  };
  await Promise.all(Array.from({ length: 32 }, loop));
  agent.destroy();
  return tickets;
}

/**
 * Forks this file in a role and waits for its first message.
 * @param {string[]} args
 * @param {Record<string, string>} [env]
 * @param {string} [profileDir] where to write a --cpu-prof profile
 */
async function forkRole(args, env = {}, profileDir = undefined) {
  const execArgv = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', `${args[1]}.cpuprofile`];
  const child = fork(SELF, args, { env: { ...process.env, ...env }, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  cleanups.push(() => child.kill('SIGKILL'));
  /** @type {any} */
  const first = await new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited (${code})`)));
  });
  return { child, first };
}

/**
 * @param {import('node:child_process').ChildProcess} child
 * @param {unknown} message
 * @param {string} key the key of the awaited answer
 * @returns {Promise<any>}
 */
function ask(child, message, key) {
  return new Promise((resolve) => {
    /** @param {any} answer */
    const onMessage = (answer) => {
      if (answer !== null && typeof answer === 'object' && key in answer) {
        child.removeListener('message', onMessage);
        resolve(answer[key]);
      }
    };
    child.on('message', onMessage);
    child.send(/** @type {any} */ (message));
  });
}

function wsticketBinary() {
  if (process.env.WSTICKET_BIN) return process.env.WSTICKET_BIN;
  for (const build of ['release', 'debug']) {
    const bin = fileURLToPath(new URL(`../../../target/${build}/wsticket`, import.meta.url));
    try {
      accessSync(bin, constants.X_OK);
      return bin;
    } catch {
      // next
    }
  }
  throw new Error('no wsticket binary in target/release or target/debug: build one, or set WSTICKET_BIN');
}

async function conductor() {
  const options = parseArgs(process.argv.slice(2));
  const bin = wsticketBinary();
  const redisBin = process.env.REDIS_SERVER_BIN || 'redis-server';
  const dir = mkdtempSync(join(tmpdir(), 'wsticket-node-handshake-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));

  const redisPort = await freePort();
  const redis = await startProcess('redis-server', redisBin,
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { ...process.env }, /Ready to accept connections/);

  /** @param {string} key */
  const sha256 = (key) => createHash('sha256').update(key).digest('hex');
  const mintKey = `wsk_${randomBytes(32).toString('base64url')}`;
  const redeemKey = `wsk_${randomBytes(32).toString('base64url')}`;
  const config = join(dir, 'wsticket.toml');
  writeFileSync(config, `listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[store]
redis_url = "redis://127.0.0.1:${redisPort}/0"

[tickets]
max_ttl_secs = 3600
allowed_origins = ["${ORIGIN}"]
secrets = [{ id = "k1", secret = "${randomBytes(32).toString('base64url')}" }]

[[clients]]
name = "bench-issuer"
key_sha256 = "${sha256(mintKey)}"
can = ["issue"]

[[clients]]
name = "bench-redeemer"
key_sha256 = "${sha256(redeemKey)}"
can = ["redeem"]
`, { mode: 0o600 });
  /** @type {Record<string, string>} */
  const env = { NO_COLOR: '1', WSTICKET_LOG: 'info,wsticket::access=off' };
  for (const [name, value] of Object.entries(process.env)) {
    // Nothing of the caller's WSTICKET_* may override the generated config.
    if (!name.startsWith('WSTICKET_') && value !== undefined) env[name] = value;
  }
  const wsticket = await startProcess('wsticket', bin, ['serve', '--config', config], env,
    /wsticket listening.*?(?<![\w])addr=(\S+)/);
  const wsticketUrl = `http://${wsticket.match[1]}`;
  note(`redis-server pid ${redis.pid}, wsticket pid ${wsticket.pid} (${bin}) at ${wsticketUrl}`);

  const perRound = options.handshakes;
  const needed = options.warmup + options.rounds * perRound;
  const mintStart = performance.now();
  const tickets = await mintTickets(wsticketUrl, mintKey, needed);
  note(`minted ${needed} tickets in ${((performance.now() - mintStart) / 1000).toFixed(1)} s`);

  const servers = {
    ws: await forkRole(['--server', 'ws'], {}, options.profile),
    helper: await forkRole(['--server', 'helper'], { BENCH_WSTICKET_URL: wsticketUrl, BENCH_REDEEM_KEY: redeemKey }, options.profile),
  };
  const load = await forkRole(['--load']);
  let ticketOffset = 0;
  /** @param {number} n */
  const takeTickets = (n) => {
    const taken = tickets.slice(ticketOffset, ticketOffset + n);
    ticketOffset += n;
    return taken;
  };

  /**
   * One measured run of `count` handshakes against a variant.
   * @param {Variant} variant
   * @param {number} count
   */
  const measure = async (variant, count) => {
    const { child, first } = servers[variant];
    const pid = /** @type {number} */ (child.pid);
    const ours = [pid, /** @type {number} */ (load.child.pid), wsticket.pid, redis.pid, process.pid];
    const before = await ask(child, 'counts', 'counts');
    /** @type {RunCommand} */
    const run = {
      cmd: 'run',
      port: first.port,
      tickets: variant === 'helper' ? takeTickets(count) : null,
      count,
      connections: options.connections,
      carrier: options.carrier,
    };
    const ticks0 = cpuTicks(pid);
    const ourTicks0 = ours.reduce((sum, p) => sum + cpuTicks(p), 0);
    const busy0 = busyTicks();
    /** @type {RunResult} */
    const result = await ask(load.child, run, 'result');
    const ticks1 = cpuTicks(pid);
    const ourTicks1 = ours.reduce((sum, p) => sum + cpuTicks(p), 0);
    const busy1 = busyTicks();
    const after = await ask(child, 'counts', 'counts');
    const elapsedTicks = result.elapsedMs / 10;
    return {
      variant,
      ...result,
      accepted: after.accepted - before.accepted,
      refused: after.refused - before.refused,
      errors: after.errors - before.errors,
      cpuUs: (ticks1 - ticks0) * TICK_US,
      // CPU of processes other than ours during the run, in % of one core:
      // anything well above 0 means something else competed for the machine.
      otherPercent: Math.max(0, (busy1 - busy0) - (ourTicks1 - ourTicks0)) / elapsedTicks * 100,
    };
  };

  note(`warm-up: ${options.warmup} handshakes per variant`);
  await measure('ws', options.warmup);
  await measure('helper', options.warmup);

  /** @type {Array<Awaited<ReturnType<typeof measure>> & {round: number}>} */
  const rows = [];
  for (let round = 1; round <= options.rounds; round += 1) {
    for (const variant of /** @type {const} */ (['ws', 'helper'])) {
      const row = await measure(variant, perRound);
      note(`round ${round} ${variant}: ${row.handshakes} handshakes in ${(row.elapsedMs / 1000).toFixed(1)} s, `
        + `${row.failed} failed, server accepted ${row.accepted} refused ${row.refused} (errors ${row.errors}), `
        + `other processes ${row.otherPercent.toFixed(0)}% of a core`);
      if (row.failed !== 0 || row.accepted !== row.handshakes) {
        throw new Error(`round ${round} ${variant}: ${row.failed} handshakes failed, ${row.refused} refused: the figures would not mean anything`);
      }
      rows.push({ ...row, round });
    }
  }

  const name = { ws: '(a) ws alone', helper: '(b) ws + wsticket-node attach()' };
  /** @param {number} n */
  const us = (n) => n.toFixed(0);
  /** @param {typeof rows} some */
  const total = (some) => {
    const handshakes = some.reduce((s, r) => s + r.handshakes, 0);
    return {
      rate: handshakes / (some.reduce((s, r) => s + r.elapsedMs, 0) / 1000),
      perHandshake: some.reduce((s, r) => s + r.cpuUs, 0) / handshakes,
    };
  };
  /** @param {number} added */
  const verdict = (added) => (added <= BUDGET_US ? `within ${BUDGET_US} µs` : `OVER ${BUDGET_US} µs`);

  const lines = [
    `node ${process.version}, ${cpus().length} CPUs, wsticket ${bin.includes('/release/') ? 'release' : 'debug?'} build (${bin}), Redis store, `
      + `${options.connections} connections in flight, ${perRound} handshakes per row, ${options.carrier} carrier`,
    '',
    '| variant | round | handshakes/s | server CPU µs per handshake | added µs over ws alone | verdict |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const row of rows) {
    const perHandshake = row.cpuUs / row.handshakes;
    const rate = row.handshakes / (row.elapsedMs / 1000);
    if (row.variant === 'ws') {
      lines.push(`| ${name.ws} | ${row.round} | ${rate.toFixed(0)} | ${us(perHandshake)} | | |`);
    } else {
      const pair = /** @type {(typeof rows)[number]} */ (rows.find((r) => r.variant === 'ws' && r.round === row.round));
      const added = perHandshake - pair.cpuUs / pair.handshakes;
      lines.push(`| ${name.helper} | ${row.round} | ${rate.toFixed(0)} | ${us(perHandshake)} | ${us(added)} | ${verdict(added)} |`);
    }
  }
  const a = total(rows.filter((r) => r.variant === 'ws'));
  const b = total(rows.filter((r) => r.variant === 'helper'));
  lines.push(`| ${name.ws} | all | ${a.rate.toFixed(0)} | ${us(a.perHandshake)} | | |`);
  lines.push(`| ${name.helper} | all | ${b.rate.toFixed(0)} | ${us(b.perHandshake)} | ${us(b.perHandshake - a.perHandshake)} | ${verdict(b.perHandshake - a.perHandshake)} |`);
  process.stdout.write(`${lines.join('\n')}\n`);

  // The children exit when their IPC channel closes (and write their
  // --cpu-prof profiles then); SIGKILL at exit is for the ones that do not.
  await Promise.all([load.child, servers.ws.child, servers.helper.child].map((child) => {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.disconnect();
    return Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
  }));
}

const role = process.argv[2];
if (role === '--server') await serverRole(/** @type {Variant} */ (process.argv[3]));
else if (role === '--load') await loadRole();
else {
  try {
    await conductor();
  } catch (err) {
    process.stderr.write(`handshake.js: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
  process.exit();
}
