// Audiences: wsticket's audience_mismatch, and the `audience` option.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ORIGIN, connect, demoClients, mint, newApiKey, startApp, startWsticket, withTicket } from './helpers.js';

const limited = newApiKey();

/** @type {Awaited<ReturnType<typeof startWsticket>>} */
let wsticket;
before(async () => {
  wsticket = await startWsticket({
    config: `
[tickets]
allowed_origins = ["${ORIGIN}"]
audiences = ["default", "other"]
default_audience = "default"
${demoClients()}
[[clients]]
name = "ws-default-only"
key_sha256 = "${limited.sha256}"
can = ["redeem"]
audiences = ["default"]
`,
  });
});
after(async () => { await wsticket?.stop(); });

test('a ticket for an audience the redeem key may not use: 4403 audience_mismatch', async () => {
  const app = await startApp({ url: wsticket.url, redeemKey: limited.key });
  try {
    const other = await mint(wsticket.url, { audience: 'other' });
    const outcome = await connect(withTicket(app.wsUrl, other));
    assert.equal(outcome.opened, true);
    assert.equal(outcome.hello, undefined);
    assert.equal(outcome.code, 4403);
    assert.deepEqual(app.refusals.map((r) => r.reason), ['audience_mismatch']);
    assert.deepEqual(app.errors, []);

    const mine = await mint(wsticket.url, { audience: 'default' });
    const ok = await connect(withTicket(app.wsUrl, mine));
    assert.equal(ok.hello?.identity?.audience, 'default');
    assert.equal(ok.hello?.identity?.userId, 'alice');
  } finally {
    await app.close();
  }
});

test('the audience option refuses other audiences the key may redeem: 4403 audience_not_accepted', async () => {
  // The demo redeem key may redeem every audience.
  const app = await startApp({ url: wsticket.url, audience: ['default'] });
  try {
    const other = await mint(wsticket.url, { audience: 'other' });
    const outcome = await connect(withTicket(app.wsUrl, other));
    assert.equal(outcome.code, 4403);
    assert.equal(outcome.hello, undefined);
    assert.deepEqual(app.refusals.map((r) => r.reason), ['audience_not_accepted']);

    const ok = await connect(withTicket(app.wsUrl, await mint(wsticket.url, { audience: 'default' })));
    assert.equal(ok.hello?.identity?.audience, 'default');
  } finally {
    await app.close();
  }
  const any = await startApp({ url: wsticket.url, audience: 'other' });
  try {
    const ok = await connect(withTicket(any.wsUrl, await mint(wsticket.url, { audience: 'other' })));
    assert.equal(ok.hello?.identity?.audience, 'other');
  } finally {
    await any.close();
  }
});
