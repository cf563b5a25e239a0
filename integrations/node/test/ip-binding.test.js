// Tickets bound to the client's address: the helper sends the address it
// saw as client_ip, and a mismatch closes with 4403 ip_mismatch.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ISSUE_KEY, ORIGIN, connect, demoClients, startApp, startWsticket, withTicket } from './helpers.js';

/** @type {Awaited<ReturnType<typeof startWsticket>>} */
let wsticket;
before(async () => {
  wsticket = await startWsticket({
    config: `
[tickets]
allowed_origins = ["${ORIGIN}"]
${demoClients()}
`,
  });
});
after(async () => { await wsticket?.stop(); });

/** @param {string} clientIp */
async function mintBound(clientIp) {
  const res = await fetch(`${wsticket.url}/v1/tickets`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ISSUE_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ user_id: 'alice', origin: ORIGIN, bind_ip: true, client_ip: clientIp }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return /** @type {{ticket: string}} */ (await res.json()).ticket;
}

test('by default the socket peer is the client address: a ticket bound to it opens', async () => {
  const app = await startApp({ url: wsticket.url });
  try {
    const ok = await connect(withTicket(app.wsUrl, await mintBound('127.0.0.1')));
    assert.equal(ok.hello?.identity?.userId, 'alice');
    const other = await connect(withTicket(app.wsUrl, await mintBound('203.0.113.7')));
    assert.equal(other.code, 4403);
    assert.deepEqual(app.refusals.map((r) => r.reason), ['ip_mismatch']);
    assert.deepEqual(app.errors, []);
  } finally {
    await app.close();
  }
});

test('behind a proxy, the clientIp option names the address', async () => {
  const app = await startApp({
    url: wsticket.url,
    clientIp: (req) => String(req.headers['x-forwarded-for'] ?? '').split(',').pop()?.trim(),
  });
  try {
    const headers = { 'x-forwarded-for': '198.51.100.1, 203.0.113.7' };
    const ok = await connect(withTicket(app.wsUrl, await mintBound('203.0.113.7')), { headers });
    assert.equal(ok.hello?.identity?.userId, 'alice');
    const bad = await connect(withTicket(app.wsUrl, await mintBound('127.0.0.1')), { headers });
    assert.equal(bad.code, 4403);
  } finally {
    await app.close();
  }
});

test('what clientIp returns is sent only when it is an address', async () => {
  const app = await startApp({ url: wsticket.url, clientIp: () => 'not an address' });
  try {
    // An unbound ticket still opens (a malformed client_ip would be a 400).
    const res = await fetch(`${wsticket.url}/v1/tickets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ISSUE_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user_id: 'alice', origin: ORIGIN }),
    });
    const { ticket } = /** @type {{ticket: string}} */ (await res.json());
    const ok = await connect(withTicket(app.wsUrl, ticket));
    assert.equal(ok.hello?.identity?.userId, 'alice');
    // A bound one has no address to match.
    const bound = await connect(withTicket(app.wsUrl, await mintBound('127.0.0.1')));
    assert.equal(bound.code, 4403);
  } finally {
    await app.close();
  }
});
