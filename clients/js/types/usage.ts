// Type-level test: how an app uses the declarations. Compiled by
// `npm run typecheck`, never run. Lines marked @ts-expect-error must fail.

import { MintError, WsTicketSocket } from 'wsticket-client'; // through package.json "exports"
import type {
  MintResult,
  WsTicketCloseEvent,
  WsTicketMessageEvent,
  WsTicketSocketOptions,
  WsTicketState,
  WsTicketStateEvent,
} from 'wsticket-client';

// With mintUrl: the defaults are the browser's own objects.
const socket = new WsTicketSocket('wss://chat.example.com/ws', {
  mintUrl: '/v1/tickets',
  mintBody: { audience: 'chat' },
  mintHeaders: () => ({ Authorization: 'Bearer id-token' }),
  protocols: ['chat.v2'],
  binaryType: 'arraybuffer',
  baseDelayMs: 500,
  maxDelayMs: 60_000,
  stableAfterMs: 10_000,
  timeoutMs: 5_000,
  WebSocket: globalThis.WebSocket,
  fetch: globalThis.fetch,
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (id) => globalThis.clearTimeout(id),
  random: Math.random,
  globalTarget: globalThis.window,
});

// With the app's own mint function, in its three shapes.
new WsTicketSocket(new URL('wss://chat.example.com/ws'), { mint: async () => 'wst_k1_x' });
new WsTicketSocket('wss://chat.example.com/ws', { mint: async ({ signal }) => ({ ticket: signal.aborted ? '' : 'x' }) });
new WsTicketSocket('wss://chat.example.com/ws', { mint: () => 'wst_k1_x', carrier: 'query', globalTarget: null });

// A mint that tells the socket why it failed.
const mint = async ({ signal }: { signal: AbortSignal }): Promise<MintResult> => {
  const response = await fetch('/api/ws-ticket', { method: 'POST', signal });
  if (response.status === 401) throw new MintError('signed out', { status: 401 });
  if (response.status === 429) throw new MintError('slow down', { status: 429, retryAfter: 5, code: 'rate_limited' });
  return (await response.json()) as { ticket: string };
};
const options: WsTicketSocketOptions = { mint };
new WsTicketSocket('wss://chat.example.com/ws', options);

// Typed events.
socket.addEventListener('state', (event) => {
  const state: WsTicketState = event.state;
  const previous: WsTicketState = event.previous;
  const delay: number | undefined = event.delay;
  const code: number | undefined = event.code;
  const status: number | undefined = event.status;
  const error: unknown = event.error;
  void [state, previous, delay, code, status, error];
});
socket.addEventListener('message', (event: WsTicketMessageEvent) => void event.data);
socket.addEventListener('close', (event: WsTicketCloseEvent) => {
  const closed: [number, string, boolean] = [event.code, event.reason, event.wasClean];
  if (closed[0] === 4000) socket.close();
});
socket.addEventListener('open', function (this: WsTicketSocket) {
  const sent: boolean = this.send('hello');
  void sent;
});
const onState = (event: WsTicketStateEvent) => void event.state;
socket.addEventListener('state', onState);
socket.removeEventListener('state', onState);
socket.addEventListener('custom', (event: Event) => void event.type, { once: true });

// Getters, methods and statics.
const now: WsTicketState = socket.state;
const ready: number = socket.readyState;
const protocol: string = socket.protocol;
const open: 1 = WsTicketSocket.OPEN;
void [now, ready, protocol, open, WsTicketSocket.CONNECTING, WsTicketSocket.CLOSING, WsTicketSocket.CLOSED];
socket.send(new Uint8Array([1, 2, 3]));
socket.reconnect();
socket.close();
socket.close(4000, 'bye');

const mintError = new MintError('denied', { status: 403, cause: new Error('x') });
const fields: [number, number | undefined, string | undefined, string] = [
  mintError.status,
  mintError.retryAfter,
  mintError.code,
  mintError.message,
];
void fields;
const isError: Error = mintError;
void isError;

// Misuse the declarations refuse.
// @ts-expect-error: a mint or a mintUrl is required
new WsTicketSocket('wss://x/ws', {});
// @ts-expect-error: not both
new WsTicketSocket('wss://x/ws', { mint: () => 't', mintUrl: '/v1/tickets' });
// @ts-expect-error: mintBody only goes with mintUrl
new WsTicketSocket('wss://x/ws', { mint: () => 't', mintBody: {} });
// @ts-expect-error: no such carrier
new WsTicketSocket('wss://x/ws', { mint: () => 't', carrier: 'cookie' });
// @ts-expect-error: a mint gives a ticket
new WsTicketSocket('wss://x/ws', { mint: async () => 42 });
// @ts-expect-error: no such state
socket.addEventListener('state', (event) => event.state === 'reconnecting');
// @ts-expect-error: a MintError has a status
new MintError('x', {});
// @ts-expect-error: state is read-only
socket.state = 'open';
