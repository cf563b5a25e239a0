// Type declarations for wsticket-node. The implementation is index.js; its
// JSDoc refers to these types, and `tsc --noEmit` (npm run typecheck)
// checks both against each other.

import type { Agent as HttpAgent, IncomingMessage, Server as HttpServer } from 'node:http';
import type { Agent as HttpsAgent, Server as HttpsServer } from 'node:https';
import type { WebSocketServer } from 'ws';

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
  | 'audience_not_accepted'; // redeemed, but not one of the `audience` option's
/** Why an upgrade closes with 4503; the same value as the reported error's `kind`. */
export type ErrorKind =
  | 'unreachable' // connection refused, reset, DNS failure, ...
  | 'timeout' // no complete answer within timeoutMs
  | 'unavailable' // wsticket answered 5xx (503 store_unavailable, ...)
  | 'misconfigured' // 401/403 about the redeem key, a 404 that is not ticket_invalid, a redirect, ...
  | 'bad_response'; // a 200 whose body is not a redeem answer
export type RefusalReason = UnauthorizedReason | ForbiddenReason | ErrorKind;

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
 * Reported through `onError` for every 4503. Its message holds no ticket,
 * no key and no URL.
 */
export declare class WsticketError extends Error {
  constructor(kind: ErrorKind, message: string, details?: { status?: number; problemCode?: string; requestId?: string; cause?: unknown });
  readonly kind: ErrorKind;
  /** The HTTP status wsticket answered, when it answered. */
  readonly status: number | undefined;
  /** The `code` of wsticket's problem answer, when there was one. */
  readonly problemCode: string | undefined;
  /** The X-Request-Id sent with the redeem. */
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

declare module 'ws' {
  interface WebSocket {
    /** The identity, set by `attach` before it emits 'connection'. */
    wsticket?: Identity;
  }
}
