// Client-side cost of one redeem call: this package's http.Agent client
// against the same call made with global fetch. The stub server runs in a
// child process, so the CPU time measured is the client's alone.
//
//   node bench/redeem-client.js [requests=20000]
//
// Not part of the package, the tests or ci.sh.

import { spawn } from 'node:child_process';
import http from 'node:http';
import { createAuthenticator } from '../index.js';

const total = Number(process.argv[2] ?? 20000);
const STUB = `
const http = require('node:http');
const answer = JSON.stringify({user_id: 'alice', origin: 'http://localhost:3000', audience: 'default', claims: {room: '42'}, issued_at: '2025-06-01T12:00:00Z', expires_at: '2025-06-01T12:00:30Z'});
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => { res.writeHead(200, {'content-type': 'application/json', 'cache-control': 'no-store'}); res.end(answer); });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
`;
const stub = spawn(process.execPath, ['-e', STUB], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((resolve) => stub.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
const url = `http://127.0.0.1:${port}`;
const key = 'wsk_demo-redeem-key-not-for-production-00000000';
const ticket = `wst_dev_${'A'.repeat(43)}`;

const authenticator = createAuthenticator({ url, redeemKey: key });
function request() {
  const req = new http.IncomingMessage(/** @type {any} */ (null));
  req.url = `/ws?ticket=${ticket}`;
  req.headers = { origin: 'http://localhost:3000' };
  return req;
}
const viaPackage = async () => {
  const r = await authenticator.authenticate(request());
  if (!r.ok) throw new Error(r.reason);
};
const viaFetch = async () => {
  const body = JSON.stringify({ ticket, origin: 'http://localhost:3000' });
  const res = await fetch(`${url}/v1/tickets/redeem`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, 'x-request-id': 'bench' },
    body,
    signal: AbortSignal.timeout(2000),
  });
  const json = JSON.parse(await res.text());
  if (res.status !== 200 || typeof json.user_id !== 'string') throw new Error(String(res.status));
};

/**
 * @param {() => Promise<void>} call
 * @param {number} n
 * @param {number} parallel
 */
async function measure(call, n, parallel) {
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < n / parallel; i++) await Promise.all(Array.from({ length: parallel }, call));
  const wall = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { wall: (wall * 1000) / n, cpu: (used.user + used.system) / n };
}

console.log(`node ${process.version}, ${total} redeems per row, stub wsticket in another process`);
console.log('client                 in flight   wall µs/redeem   client CPU µs/redeem');
for (const parallel of [1, 16]) {
  await measure(viaPackage, 2000, parallel); // warm-up
  await measure(viaFetch, 2000, parallel);
  for (const [name, call] of /** @type {const} */ ([['wsticket-node (http)', viaPackage], ['fetch', viaFetch]])) {
    const { wall, cpu } = await measure(call, total, parallel);
    console.log(`${name.padEnd(22)} ${String(parallel).padStart(9)}   ${wall.toFixed(0).padStart(14)}   ${cpu.toFixed(0).padStart(20)}`);
  }
}
authenticator.close();
stub.kill();
