// Compiled by `npm run typecheck` (tsc --noEmit), never run: it checks that
// index.d.ts describes a usable API, the way an application would use it.

import http from 'node:http';
import https from 'node:https';
import { WebSocket, WebSocketServer } from 'ws';
import {
  attach,
  CloseCode,
  createAuthenticator,
  createHandleProtocols,
  createRevocationListener,
  EventStreamParser,
  handleProtocols,
  SUBPROTOCOL,
  SUBPROTOCOL_PREFIX,
  WsticketError,
  type AuthResult,
  type Identity,
  type ListenerErrorKind,
  type Refusal,
  type RevocationListener,
  type UserRevokedEvent,
} from 'wsticket-node';

const server = http.createServer();
const wss = new WebSocketServer({ noServer: true, handleProtocols });
const detach: () => void = attach(server, wss, {
  url: 'http://127.0.0.1:8080',
  redeemKey: 'wsk_example',
  timeoutMs: 1500,
  audience: ['chat'],
  onError: (err: WsticketError) => {
    const kind: 'unreachable' | 'timeout' | 'unavailable' | 'misconfigured' | 'bad_response' = err.kind;
    const status: number | undefined = err.status;
    console.error(kind, status, err.problemCode, err.requestId, err.message);
  },
  onRefused: (refusal: Refusal, req: http.IncomingMessage) => {
    const code: 4401 | 4403 | 4503 = refusal.code;
    console.warn(code, refusal.reason, refusal.requestId, req.url);
  },
  filter: (req) => req.url?.startsWith('/ws') ?? false,
});
detach();

wss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
  const identity: Identity | undefined = ws.wsticket;
  if (identity !== undefined) {
    const user: string = identity.userId;
    const origin: string | null = identity.origin;
    const room: unknown = identity.claims['room'];
    ws.send(JSON.stringify({ user, origin, room, audience: identity.audience, url: req.url }));
  }
});

// A shared authenticator, with the HTTPS agent of the application.
const authenticator = createAuthenticator({
  url: new URL('https://wsticket.internal'),
  redeemKey: 'wsk_example',
  agent: new https.Agent({ keepAlive: true }),
});
attach(https.createServer(), new WebSocketServer({ noServer: true }), { authenticator, onRefused: () => {} });

// The lower-level call, with the result narrowed on `ok` and `code`.
async function lowLevel(req: http.IncomingMessage): Promise<string> {
  const result: AuthResult = await authenticator.authenticate(req);
  if (result.ok) return result.identity.userId;
  switch (result.code) {
    case CloseCode.UNAUTHORIZED: {
      const r: 'missing_ticket' | 'ambiguous_ticket' | 'malformed_ticket' | 'invalid_request' | 'ticket_invalid' | 'ticket_reused' = result.reason;
      return r;
    }
    case CloseCode.FORBIDDEN:
      return result.reason;
    case CloseCode.UNAVAILABLE:
      return result.reason;
  }
}
void lowLevel;
authenticator.close();

const preferred = createHandleProtocols({ prefer: ['chat.v2', 'chat.v1'] });
const chosen: string | false = preferred(new Set(['chat.v1', SUBPROTOCOL, `${SUBPROTOCOL_PREFIX}wst_x`]), new http.IncomingMessage(null as never));
void chosen;
new WebSocketServer({ noServer: true, handleProtocols: preferred });

const code: 4401 = CloseCode.UNAUTHORIZED;
void code;

// @ts-expect-error: url and redeemKey, or an authenticator, are required
attach(server, wss, { timeoutMs: 10 });
// @ts-expect-error: close codes are constants
CloseCode.UNAUTHORIZED = 4000;

// attach() hands the identity to the connection handler as well; a handler
// with three parameters needs them annotated (@types/ws types two).
wss.on('connection', (ws: WebSocket, req: http.IncomingMessage, identity: Identity) => {
  const same: boolean = ws.wsticket === identity;
  console.log(same, identity.userId, req.url);
});
wss.once('connection', (ws, req) => { ws.close(1000, String(req.url)); });

// The revocation listener: opt-in, shared by attach() through `revocations`.
const revocations: RevocationListener = createRevocationListener({
  url: 'http://127.0.0.1:8080',
  apiKey: 'wsk_example',
  heartbeatTimeoutMs: 45_000,
  maxReconnectDelayMs: 5000,
});
attach(server, wss, { url: 'http://127.0.0.1:8080', redeemKey: 'wsk_example', revocations });
revocations.on('user_revoked', (e: UserRevokedEvent) => {
  const audience: string | null = e.audience;
  console.log(e.userId, audience, e.before, e.reason, e.closed, e.lastEventId);
});
revocations.on('ticket_reused', (e) => console.warn('possible ticket leak', e.userId, e.audience));
revocations.on('gap', (e) => console.warn(e.detail));
revocations.on('error', (err) => {
  const kind: ListenerErrorKind = err.kind;
  console.error(kind, err.status, err.message);
});
revocations.on('connect', () => console.log('subscribed', revocations.connected, revocations.lastEventId));
wss.on('connection', (ws: WebSocket) => {
  // For connections accepted without attach():
  const tracked: boolean = revocations.track(ws, ws.wsticket);
  void tracked;
});
// @ts-expect-error: not an event of the listener
revocations.on('user_revoke', () => {});
revocations.close();

new EventStreamParser({ onEvent: (e) => console.log(e.type, e.data, e.lastEventId), onRetry: (ms: number) => void ms }).push('data: x\n\n');
