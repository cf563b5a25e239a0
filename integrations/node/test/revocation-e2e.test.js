// End to end, as deployed: one Redis, two wsticket replicas sharing it, two
// WebSocket server processes (each with attach() and a revocation listener,
// each redeeming against and listening to its own replica), one user with a
// connection on each. A revocation made on replica A closes both
// connections with 4401 within a second of the revoke answer.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  demoClients, mint, newApiKey, openSocket, REDEEM_KEY, revokeUser, startRedis, startWsticket, stillOpen, withTicket,
} from './helpers.js';

/** @typedef {import('./helpers.js').Closed} Closed */

const APP = fileURLToPath(new URL('./fixtures/revocation-app.js', import.meta.url));
const DEADLINE_MS = 1000;

const revoker = newApiKey();

/** @type {Array<() => unknown>} */
const cleanups = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** @type {Awaited<ReturnType<typeof startWsticket>>} */
let replicaA;
/** @type {Awaited<ReturnType<typeof startWsticket>>} */
let replicaB;

before(async () => {
  const redis = await startRedis();
  cleanups.push(() => redis.stop());
  // Every replica shares the store and the ticket secrets.
  const config = `
[store]
redis_url = "${redis.url}"

[tickets]
allowed_origins = ["http://localhost:3000"]
secrets = [{ id = "k1", secret = "${randomBytes(32).toString('base64url')}" }]

[events]
heartbeat_secs = 1
${demoClients()}
[[clients]]
name = "revoker"
key_sha256 = "${revoker.sha256}"
can = ["revoke"]
`;
  replicaA = await startWsticket({ config });
  cleanups.push(() => replicaA.stop());
  replicaB = await startWsticket({ config });
  cleanups.push(() => replicaB.stop());
});

/**
 * Starts test/fixtures/revocation-app.js against `wsticketUrl` and waits
 * until it listens and its listener is subscribed.
 * @param {string} wsticketUrl
 * @returns {Promise<{wsUrl: string, log: () => string}>}
 */
async function startHelperProcess(wsticketUrl) {
  const child = spawn(process.execPath, [APP], {
    env: { ...process.env, APP_WSTICKET_URL: wsticketUrl, APP_REDEEM_KEY: REDEEM_KEY },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.on('exit', () => resolve(undefined)));
  cleanups.push(async () => {
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c) => { stderr += c; });
  let stdout = '';
  child.stdout.setEncoding('utf8');
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the helper process was not ready in 10 s:\n${stderr}`)), 10_000);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`the helper process exited (${code}):\n${stderr}`)); });
    child.stdout.on('data', (/** @type {string} */ chunk) => {
      stdout += chunk;
      const m = /^\{"port":(\d+)\}$/m.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  return { wsUrl: `ws://127.0.0.1:${port}`, log: () => `stdout:\n${stdout}\nstderr:\n${stderr}` };
}

/**
 * @param {Promise<Closed>} closed
 * @param {string} what
 * @returns {Promise<Closed>}
 */
function within5s(closed, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} was not closed within 5 s`)), 5000);
    closed.then((c) => { clearTimeout(timer); resolve(c); });
  });
}

test('Redis, two replicas, two WebSocket servers: a revocation on replica A closes the user\'s connections on both within 1 s', async () => {
  const helperA = await startHelperProcess(replicaA.url);
  const helperB = await startHelperProcess(replicaB.url);

  // The ticket for B is minted on A and redeemed on B: the replicas share the store.
  const onA = await openSocket(withTicket(helperA.wsUrl, await mint(replicaA.url, { userId: 'alice' })));
  const onB = await openSocket(withTicket(helperB.wsUrl, await mint(replicaA.url, { userId: 'alice' })));
  const bobOnB = await openSocket(withTicket(helperB.wsUrl, await mint(replicaB.url, { userId: 'bob' })));
  assert.equal(onA.hello.identity.userId, 'alice');
  assert.equal(onB.hello.identity.userId, 'alice');

  await revokeUser(replicaA.url, revoker.key, { user_id: 'alice' });
  const answered = performance.now();

  const [closedA, closedB] = await Promise.all([
    within5s(onA.closed, 'the connection on the server of replica A'),
    within5s(onB.closed, 'the connection on the server of replica B'),
  ]).catch((err) => {
    throw new Error(`${err.message}\nhelper A ${helperA.log()}\nhelper B ${helperB.log()}`);
  });
  const msA = Math.round(closedA.at - answered);
  const msB = Math.round(closedB.at - answered);
  // Shown in the test output: how far under the deadline the run was.
  console.log(`# closed ${msA} ms (replica A's server) and ${msB} ms (replica B's server) after the revoke answer`);
  assert.deepEqual([closedA.code, closedA.reason], [4401, 'revoked']);
  assert.deepEqual([closedB.code, closedB.reason], [4401, 'revoked']);
  assert.ok(msA < DEADLINE_MS, `replica A's server closed it ${msA} ms after the revoke answer`);
  assert.ok(msB < DEADLINE_MS, `replica B's server closed it ${msB} ms after the revoke answer`);
  assert.equal(await stillOpen(bobOnB.ws), true, 'another user stays connected');

  // A new ticket minted after the revocation works on either replica.
  const again = await openSocket(withTicket(helperB.wsUrl, await mint(replicaB.url, { userId: 'alice' })));
  assert.equal(await stillOpen(again.ws), true);
});
