/**
 * wsticket-client: a reconnecting WebSocket that opens every connection with
 * a fresh wsticket ticket. See README.md.
 */

/** Where the socket is. "unauthenticated", "denied" and "closed" are stops. */
export type WsTicketState = 'connecting' | 'open' | 'backoff' | 'unauthenticated' | 'denied' | 'closed';

/** What a mint gives: the ticket, or wsticket's mint answer. */
export type MintResult = string | { ticket: string };

/** Passed to the app's mint function. */
export interface MintContext {
  /** Aborted on `timeoutMs` and on `close()`. */
  signal: AbortSignal;
}

/** The app's mint function: called once per connection attempt, never twice at once. */
export type MintFunction = (context: MintContext) => MintResult | PromiseLike<MintResult>;

/** The part of a WebSocket the client uses (the browser's `WebSocket` fits). */
export interface WebSocketLike extends EventTarget {
  readonly readyState: number;
  readonly protocol: string;
  binaryType: string;
  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** The part of a fetch `Response` the client uses. */
export interface ResponseLike {
  readonly ok: boolean;
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  json(): Promise<unknown>;
}

/** The request the `mintUrl` minter makes. */
export interface MintRequestInit {
  method: string;
  credentials: 'include';
  headers: Record<string, string>;
  body: string;
  signal: AbortSignal;
}

export type FetchFunction = (url: string, init: MintRequestInit) => Promise<ResponseLike>;

interface CommonOptions {
  /** The page's own subprotocols. With none, `"wsticket"` is offered. */
  protocols?: string | string[];
  /** How the ticket travels: `Sec-WebSocket-Protocol` (default) or `?ticket=`. */
  carrier?: 'subprotocol' | 'query';
  /** Set on every WebSocket. */
  binaryType?: 'blob' | 'arraybuffer';
  /** Ceiling of the first back-off, in ms (default 1000). */
  baseDelayMs?: number;
  /** Largest back-off ceiling, in ms (default 30000). */
  maxDelayMs?: number;
  /** A connection open this long resets the back-off, in ms (default 5000). */
  stableAfterMs?: number;
  /** Limit for a mint, and for a handshake, in ms (default 10000). */
  timeoutMs?: number;
  /** Default: `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** Default: `globalThis.setTimeout`. */
  setTimeout?: (callback: () => void, ms: number) => unknown;
  /** Default: `globalThis.clearTimeout`. */
  clearTimeout?: (id: any) => void;
  /** Default: `Math.random`. */
  random?: () => number;
  /**
   * Hears `online`, and through its `document` (or itself, when it has
   * none) `visibilitychange`. Default: `globalThis` in a browser. `null`:
   * listen to nothing.
   */
  globalTarget?: EventTarget | null;
}

/** Mint with the app's own function. */
export interface MintFunctionOptions extends CommonOptions {
  mint: MintFunction;
  mintUrl?: undefined;
  mintBody?: undefined;
  mintHeaders?: undefined;
  fetch?: undefined;
}

/** Mint by POSTing to wsticket. */
export interface MintUrlOptions extends CommonOptions {
  mint?: undefined;
  /** wsticket's `POST /v1/tickets`, e.g. `"/v1/tickets"`. */
  mintUrl: string | URL;
  /** JSON body (default `{}`), e.g. `{audience: "chat"}`. */
  mintBody?: Record<string, unknown>;
  /** Extra headers, e.g. `{Authorization: "Bearer " + idToken}`; a function is called per mint. */
  mintHeaders?: Record<string, string> | (() => Record<string, string> | PromiseLike<Record<string, string>>);
  /** Default: `globalThis.fetch`. */
  fetch?: FetchFunction;
}

export type WsTicketSocketOptions = MintFunctionOptions | MintUrlOptions;

/** `message`: what the server sent. */
export interface WsTicketMessageEvent extends Event {
  readonly data: any;
}

/** `close`: the connection that had fired `open` has closed. */
export interface WsTicketCloseEvent extends Event {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
}

/** `state`: the state changed, and why. */
export interface WsTicketStateEvent extends Event {
  readonly state: WsTicketState;
  readonly previous: WsTicketState;
  /** "backoff": ms until the next attempt. */
  readonly delay: number | undefined;
  /** The close code that caused it (4401, 4403, 1006, …). */
  readonly code: number | undefined;
  /** The mint's HTTP status (or the status of a `MintError`) that caused it. */
  readonly status: number | undefined;
  /** The error that caused it: a `MintError`, a network or timeout error, … Never holds a ticket. */
  readonly error: unknown;
}

export interface WsTicketSocketEventMap {
  open: Event;
  message: WsTicketMessageEvent;
  close: WsTicketCloseEvent;
  state: WsTicketStateEvent;
}

/**
 * Thrown by a mint to say how it failed: `status` 401 stops as
 * "unauthenticated", 403 as "denied", 429 waits `retryAfter` seconds (at
 * least 1); anything else backs off.
 */
export class MintError extends Error {
  constructor(message: string, options: { status: number; retryAfter?: number; code?: string; cause?: unknown });
  /** The HTTP status, or the one the app's mint function stands for. */
  status: number;
  /** Seconds to wait, from `Retry-After`. */
  retryAfter: number | undefined;
  /** wsticket's problem code, e.g. `"origin_not_allowed"`. */
  code: string | undefined;
}

/** A reconnecting WebSocket authenticated by wsticket tickets. */
export class WsTicketSocket extends EventTarget {
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSING: 2;
  static readonly CLOSED: 3;

  /** Starts connecting at once (the first mint runs in a microtask). */
  constructor(url: string | URL, options: WsTicketSocketOptions);

  /** The current state; starts as "connecting". */
  readonly state: WsTicketState;
  /** 0 connecting or backing off, 1 open, 2 closing after `close()`, 3 closed or stopped. */
  readonly readyState: number;
  /** The subprotocol the server selected, "" when none or not open. Never the ticket. */
  readonly protocol: string;

  /** Sends on the open connection; `false` (nothing sent, nothing queued) when not open. */
  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): boolean;
  /** Closes for good. `code` 1000 or 3000–4999, `reason` at most 123 bytes. */
  close(code?: number, reason?: string): void;
  /** Connects now from "backoff", "unauthenticated" or "denied"; otherwise does nothing. */
  reconnect(): void;

  addEventListener<K extends keyof WsTicketSocketEventMap>(
    type: K,
    listener: (this: WsTicketSocket, event: WsTicketSocketEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof WsTicketSocketEventMap>(
    type: K,
    listener: (this: WsTicketSocket, event: WsTicketSocketEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}
