// Type declarations for wsticket-node. The implementation is index.js; its
// JSDoc refers to these types, and `tsc --noEmit` (npm run typecheck)
// checks both against each other.

import type { EventEmitter } from 'node:events';
import type { Agent as HttpAgent, IncomingMessage, Server as HttpServer } from 'node:http';
import type { Agent as HttpsAgent, Server as HttpsServer } from 'node:https';
import type { WebSocket, WebSocketServer } from 'ws';

/** Who the ticket belonged to: the `200` answer of `POST /v1/tickets/redeem`. */
export interface Identity {
  /** `user_id` of the redeem answer. */
  userId: string;
  /** `claims` of the redeem answer, untouched; `{}` when the ticket has none. */
  claims: Record<string, unknown>;
  /** The ticket's audience. */
  audience: string;
  /** The ticket's canonical origin, or `null` for an origin-less ticket. */
  origin: string | null;
  /** RFC 3339, UTC, as wsticket sent it. */
  issuedAt: string;
  /** RFC 3339, UTC, as wsticket sent it. */
  expiresAt: string;
}

/** The WebSocket close codes a refused upgrade is closed with. */
export declare const CloseCode: {
  /** No ticket, or a malformed, unknown, expired or reused one: mint a new ticket. */
  readonly UNAUTHORIZED: 4401;
  /** Wrong origin or audience: do not retry with the same set-up. */
  readonly FORBIDDEN: 4403;
  /** wsticket unreachable, too slow, failing or misconfigured: retry later with a new ticket. */
  readonly UNAVAILABLE: 4503;
};
export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

/** Why an upgrade closes with 4401. */
export type UnauthorizedReason =
  | 'missing_ticket' // no ticket in the query string nor in Sec-WebSocket-Protocol
  | 'ambiguous_ticket' // two different tickets offered; none was redeemed
  | 'malformed_ticket' // not of the form wst_<kid>_<43 base64url>; not sent to wsticket
  | 'invalid_request' // wsticket: 400
  | 'ticket_invalid' // wsticket: 404, unknown or expired
  | 'ticket_reused'; // wsticket: 409
/** Why an upgrade closes with 4403. */
export type ForbiddenReason =
  | 'origin_mismatch' // wsticket: 403
  | 'audience_mismatch' // wsticket: 403
  | 'ip_mismatch' // wsticket: 403, a ticket bound to another client address
  | 'audience_not_accepted'; // redeemed, but not one of the `audience` option's
/** Why an upgrade closes with 4503; the same value as the reported error's `kind`. */
export type ErrorKind =
  | 'unreachable' // connection refused, reset, DNS failure, ...
  | 'timeout' // no complete answer within timeoutMs
  | 'unavailable' // wsticket answered 5xx (503 store_unavailable, ...)
  | 'misconfigured' // 401/403 about the redeem key, a 404 that is not ticket_invalid, a redirect, ...
  | 'bad_response'; // a 200 whose body is not a redeem answer
/**
 * Why an upgrade closes with 4401 `revoked` under `attach` with a
 * `revocations` listener: the ticket redeemed, but its user was revoked
 * (for tickets issued before the revocation) while the redeem was under way.
 */
export type RevokedReason = 'revoked';
export type RefusalReason = UnauthorizedReason | ForbiddenReason | ErrorKind | RevokedReason;

export interface AuthSuccess {
  ok: true;
  identity: Identity;
  /** The X-Request-Id sent with the redeem. */
  requestId: string;
}

export type AuthFailure = { ok: false; requestId: string } & (
  | { code: 4401; reason: UnauthorizedReason }
  | { code: 4403; reason: ForbiddenReason }
  | { code: 4503; reason: ErrorKind }
);

export type AuthResult = AuthSuccess | AuthFailure;

/**
 * Reported through `onError` for every 4503 (`K` is then `ErrorKind`), and
 * through a revocation listener's `'error'` event (`K` is `ListenerErrorKind`).
 * Its message holds no ticket, no key and no URL.
 */
export declare class WsticketError<K extends string = ErrorKind> extends Error {
  constructor(kind: K, message: string, details?: { status?: number; problemCode?: string; requestId?: string; cause?: unknown });
  readonly kind: K;
  /** The HTTP status wsticket answered, when it answered. */
  readonly status: number | undefined;
  /** The `code` of wsticket's problem answer, when there was one. */
  readonly problemCode: string | undefined;
  /** The X-Request-Id sent with the redeem (undefined for listener errors). */
  readonly requestId: string | undefined;
}

export interface AuthenticatorOptions {
  /** Base URL of wsticket, `http://` or `https://`, e.g. `http://wsticket:8080`. No credentials, query or fragment. */
  url: string | URL;
  /** An API key with the `redeem` permission (`wsk_…`). */
  redeemKey: string;
  /** Deadline for the whole redeem call (connect, answer, body), in ms. Default 2000. */
  timeoutMs?: number;
  /** When set, redeemed tickets of any other audience are refused with 4403 `audience_not_accepted`. */
  audience?: string | readonly string[];
  /** The agent for the redeem calls. Default: a keep-alive agent owned by the authenticator. */
  agent?: HttpAgent | HttpsAgent;
  /** Called for every 4503 (never with a ticket or key). Default: one line on console.error. */
  onError?: (error: WsticketError) => void;
  /**
   * The client's address as this server sees it, sent with each redeem as
   * `client_ip` for tickets bound to an address (`bind_ip`); unbound tickets
   * ignore it. Default: the socket's peer address. Behind your own proxy,
   * return the client's address from its header instead. A bound ticket
   * redeemed with another address closes with 4403 `ip_mismatch`.
   */
  clientIp?: (req: IncomingMessage) => string | undefined;
}

export interface Authenticator {
  /**
   * Authenticates an upgrade request. Synchronously, before it awaits
   * anything, it removes the ticket from `req.url` and from the request's
   * Sec-WebSocket-Protocol header. Never rejects.
   */
  authenticate(req: IncomingMessage): Promise<AuthResult>;
  /** Destroys the idle sockets of the authenticator's own agent (not of one passed in). */
  close(): void;
}

export declare function createAuthenticator(options: AuthenticatorOptions): Authenticator;

export interface Refusal {
  code: CloseCodeValue;
  reason: RefusalReason;
  requestId: string;
}

export interface AttachHooks {
  /** Upgrades for which it returns false are left alone, for another 'upgrade' listener. Default: all are handled. */
  filter?: (req: IncomingMessage) => boolean;
  /** Called for each refused upgrade, before the close. `req.url` no longer holds the ticket. */
  onRefused?: (refusal: Refusal, req: IncomingMessage) => void;
  /**
   * A revocation listener: every accepted connection is tracked by it (and
   * closed with 4401 when its user is revoked); an upgrade whose user it saw
   * revoked during the redeem is refused with 4401 `revoked`.
   */
  revocations?: RevocationListener;
}

export type AttachOptions = (AuthenticatorOptions | { authenticator: Authenticator }) & AttachHooks;

/**
 * Handles `server`'s upgrades for `wss` (which must be created with
 * `noServer: true`): authenticate, complete the handshake, then either emit
 * `'connection'` with `(ws, req, identity)` and `ws.wsticket = identity`, or
 * close at once with 4401, 4403 or 4503. Returns a function that removes
 * the 'upgrade' listener.
 */
export declare function attach(server: HttpServer | HttpsServer, wss: WebSocketServer, options: AttachOptions): () => void;

export type HandleProtocols = (protocols: Set<string>, request: IncomingMessage) => string | false;

/**
 * The `handleProtocols` for `new WebSocketServer({handleProtocols})`: selects
 * the first offered application protocol, else `wsticket`, else none. It
 * never selects a `wsticket.<ticket>` entry or anything shaped like a ticket.
 */
export declare const handleProtocols: HandleProtocols;

/**
 * Like `handleProtocols`, with the application's protocols in its order of
 * preference: the first of `prefer` the client offered, else `wsticket` if
 * offered, else none.
 */
export declare function createHandleProtocols(options?: { prefer?: readonly string[] }): HandleProtocols;

/** The bare subprotocol a page with no protocol of its own offers: `'wsticket'`. */
export declare const SUBPROTOCOL: 'wsticket';
/** The prefix of the subprotocol carrier entry: `'wsticket.'`. */
export declare const SUBPROTOCOL_PREFIX: 'wsticket.';

// ---------------------------------------------------------------------------
// The event stream and the revocation listener

/** One event of a text/event-stream, as `EventStreamParser` dispatches it. */
export interface EventStreamEvent {
  /** The `event` field, or `'message'` when the event has none. */
  type: string;
  /** The `data` lines, joined with "\n". */
  data: string;
  /** The last event ID string after this event: its `id`, or the latest before it. */
  lastEventId: string;
}

export interface EventStreamParserOptions {
  onEvent: (event: EventStreamEvent) => void;
  /** A valid `retry:` field (digits only), in ms. */
  onRetry?: (ms: number) => void;
  /** A comment line, without the colon and one leading space (heartbeats are `keep-alive`). */
  onComment?: (text: string) => void;
  /** The id to start from (the one a reconnection resumed after). Default `''`. */
  lastEventId?: string;
  /** The longest line, and the longest data of one event, in characters. Default 1 Mi. */
  maxChars?: number;
}

/**
 * A streaming text/event-stream parser (the Server-Sent Events rules): lines
 * end with CRLF, LF or CR, split across chunks anywhere; `data` lines are
 * joined; comments and unknown fields are ignored; a leading BOM is dropped.
 */
export declare class EventStreamParser {
  constructor(options: EventStreamParserOptions);
  /** Feeds decoded text. Throws a RangeError when a line or an event's data is over `maxChars`. */
  push(chunk: string): void;
  /** The last event ID string: the latest `id` field of a complete event block. */
  readonly lastEventId: string;
}

/** Why a revocation listener reports an error. All but `bad_event` end the connection, which is made again. */
export type ListenerErrorKind =
  | 'unreachable' // connection refused, reset, DNS failure, ...
  | 'timeout' // no answer to GET /v1/events within connectTimeoutMs
  | 'unavailable' // wsticket answered 5xx
  | 'misconfigured' // 401 (unknown key), 403 (key lacks redeem and revoke), 404, not an event stream, ...
  | 'heartbeat_timeout' // nothing received (not even a heartbeat) for heartbeatTimeoutMs
  | 'stream_ended' // wsticket ended or cut the stream (it shuts down, a proxy timed out, ...)
  | 'bad_response' // a line over 1 MiB
  | 'bad_event'; // an event whose data is not what the contract says; only that event is ignored

export interface RevocationListenerOptions {
  /** Base URL of wsticket, as for `createAuthenticator`. `/v1/events` is appended. */
  url: string | URL;
  /** An API key whose client `can` redeem or revoke (`wsk_…`); the redeem key of the WebSocket server will do. */
  apiKey: string;
  /** Deadline for the answer to GET /v1/events (status and headers), in ms. Default 5000. */
  connectTimeoutMs?: number;
  /** Silence after which the stream counts as dead and is made again, in ms. Default 45000: 3 heartbeats at wsticket's default. */
  heartbeatTimeoutMs?: number;
  /** The first reconnection delay, in ms, until wsticket's `retry:` replaces it. Default 1000. */
  reconnectDelayMs?: number;
  /** The ceiling of the doubling reconnection delay, in ms. Default 5000. */
  maxReconnectDelayMs?: number;
  /** Resume after this event id (one a previous listener reported). Default: only new events. */
  lastEventId?: string;
  /** Also close the user's connections (of that audience) on `ticket_reused`. Default false. */
  closeOnTicketReused?: boolean;
  /** The agent for GET /v1/events. Default: one owned by the listener. */
  agent?: HttpAgent | HttpsAgent;
}

/** A `user_revoked` event, after the listener closed the matching connections. */
export interface UserRevokedEvent {
  userId: string;
  /** The audience revoked, or `null` for all. */
  audience: string | null;
  /** RFC 3339: tickets issued before it are dead. */
  before: string;
  /** `'request'` (POST /v1/users/revoke) or `'reuse'` (a reused ticket revoked its user). */
  reason: string;
  /** The stream position after this event: the id to resume after. */
  lastEventId: string;
  /** How many tracked connections were closed with 4401. */
  closed: number;
}

/** A `ticket_reused` event: a ticket of the user was presented twice (a likely leak). */
export interface TicketReusedEvent {
  userId: string;
  audience: string | null;
  lastEventId: string;
  /** Connections closed for it: 0 unless `closeOnTicketReused`. */
  closed: number;
}

/** A `gap` event: the resume position was older than wsticket keeps; events may have been missed. */
export interface GapEvent {
  detail: string;
  lastEventId: string;
}

export interface RevocationListenerEvents {
  /** GET /v1/events answered 200: the listener is subscribed. */
  connect: [];
  user_revoked: [event: UserRevokedEvent];
  ticket_reused: [event: TicketReusedEvent];
  /** Without a 'gap' listener, one line on console.warn. */
  gap: [event: GapEvent];
  /** Without an 'error' listener, one line on console.error (never an unhandled 'error'). */
  error: [error: WsticketError<ListenerErrorKind>];
}

/**
 * Subscribes to wsticket's event stream and closes the tracked connections
 * of revoked users with 4401 (reason `revoked`).
 */
export interface RevocationListener extends EventEmitter<RevocationListenerEvents> {
  /** True while GET /v1/events is answered and the stream is open. */
  readonly connected: boolean;
  /** The id to resume after (sent as Last-Event-ID on reconnection); `''` before any. */
  readonly lastEventId: string;
  /** How many connections are tracked. */
  readonly tracked: number;
  /**
   * Tracks an open connection until it closes. `identity` defaults to
   * `ws.wsticket` (set by `attach`, which calls this itself with its
   * `revocations` option). When the listener already saw the user revoked
   * (a revocation in the last 60 s covering the ticket), closes it with 4401
   * at once and returns false.
   */
  track(ws: WebSocket, identity?: Identity): boolean;
  /** True when a revocation seen in the last 60 s covers this identity's ticket. */
  isRevoked(identity: Identity): boolean;
  /** Stops listening; tracked connections stay open and are no longer watched. */
  close(): void;
}

/**
 * Starts listening at once (after the current synchronous code), and
 * reconnects until `close()`.
 */
export declare function createRevocationListener(options: RevocationListenerOptions): RevocationListener;

declare module 'ws' {
  interface WebSocket {
    /** The identity, set by `attach` before it emits 'connection'. */
    wsticket?: Identity;
  }
}
