/**
 * wsticket-client: a reconnecting WebSocket that opens every connection with
 * a fresh wsticket ticket.
 *
 * Before each connect and each reconnect it mints one ticket (with the app's
 * `mint` function, or by POSTing to `mintUrl`), hands it to the WebSocket
 * server in a subprotocol (default) or in the query string, and never uses
 * it again. It reacts to the close codes of docs/integrating.md (4401: mint
 * again; 4403: stop) and backs off with full jitter otherwise.
 *
 * A plain ES module without imports: a browser loads it as it is. It never
 * logs anything, and no error it reports contains a ticket.
 *
 * @module wsticket-client
 */

/** The subprotocol offered when the page has none of its own. */
const PROTOCOL = 'wsticket';
/** The subprotocol entry that carries the ticket: `wsticket.<ticket>`. */
const TICKET_PROTOCOL_PREFIX = 'wsticket.';
/** What a ticket may look like (wsticket's are `wst_<kid>_<base64url>`). */
const TICKET_SHAPE = /^[A-Za-z0-9_-]{1,512}$/;
/** An RFC 7230 token, which a subprotocol must be. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Browsers fire longer timeouts at once; clamp to this. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** A 429 makes the client wait at least this long. */
const MIN_RETRY_AFTER_MS = 1000;

const DEFAULTS = Object.freeze({
  baseDelayMs: 1000,
  maxDelayMs: 30000,
  stableAfterMs: 5000,
  timeoutMs: 10000,
});

/**
 * @typedef {'connecting' | 'open' | 'backoff' | 'unauthenticated' | 'denied' | 'closed'} WsTicketState
 * @typedef {string | { ticket: string }} MintResult
 * @typedef {{ signal: AbortSignal }} MintContext
 * @typedef {(context: MintContext) => MintResult | PromiseLike<MintResult>} MintFunction
 * @typedef {Record<string, string>} HeaderMap
 *
 * @typedef {EventTarget & {
 *   readonly readyState: number,
 *   readonly protocol: string,
 *   binaryType: string,
 *   send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void,
 *   close(code?: number, reason?: string): void,
 * }} WebSocketLike
 * @typedef {new (url: string, protocols?: string | string[]) => WebSocketLike} WebSocketConstructor
 *
 * @typedef {{
 *   readonly ok: boolean,
 *   readonly status: number,
 *   readonly headers: { get(name: string): string | null },
 *   json(): Promise<unknown>,
 * }} ResponseLike
 * @typedef {{
 *   method: string,
 *   credentials: 'include',
 *   headers: HeaderMap,
 *   body: string,
 *   signal: AbortSignal,
 * }} MintRequestInit
 * @typedef {(url: string, init: MintRequestInit) => Promise<ResponseLike>} FetchFunction
 *
 * @typedef {object} WsTicketSocketOptions
 * @property {MintFunction} [mint] Returns a fresh ticket. Give this or `mintUrl`.
 * @property {string | URL} [mintUrl] wsticket's `POST /v1/tickets`. Give this or `mint`.
 * @property {Record<string, unknown>} [mintBody] JSON body for `mintUrl` (default `{}`), e.g. `{audience: 'chat'}`.
 * @property {HeaderMap | (() => HeaderMap | PromiseLike<HeaderMap>)} [mintHeaders] Extra headers for `mintUrl`, e.g. `Authorization`.
 * @property {string | string[]} [protocols] The page's own subprotocols.
 * @property {'subprotocol' | 'query'} [carrier] How the ticket travels (default `'subprotocol'`).
 * @property {'blob' | 'arraybuffer'} [binaryType] Set on every WebSocket.
 * @property {number} [baseDelayMs] First back-off ceiling (default 1000).
 * @property {number} [maxDelayMs] Largest back-off ceiling (default 30000).
 * @property {number} [stableAfterMs] Open this long and the back-off starts over (default 5000).
 * @property {number} [timeoutMs] Limit for a mint, and for a handshake (default 10000).
 * @property {WebSocketConstructor} [WebSocket] Default: `globalThis.WebSocket`.
 * @property {FetchFunction} [fetch] Default: `globalThis.fetch`.
 * @property {(callback: () => void, ms: number) => unknown} [setTimeout] Default: `globalThis.setTimeout`.
 * @property {(id: any) => void} [clearTimeout] Default: `globalThis.clearTimeout`.
 * @property {() => number} [random] Default: `Math.random`.
 * @property {EventTarget | null} [globalTarget] Hears `online` and (via its `document`, if any) `visibilitychange`. Default: `globalThis` in a browser; `null` listens to nothing.
 */

/**
 * Thrown by a mint to say how it failed. The built-in `mintUrl` minter
 * throws one for every non-2xx answer; an app's own `mint` function may
 * throw one too: `status` 401 stops the socket as "unauthenticated", 403 as
 * "denied", 429 waits `retryAfter` seconds (at least 1); anything else, or
 * any other error, backs off.
 */
export class MintError extends Error {
  /**
   * @param {string} message For people; never put a ticket in it.
   * @param {{ status: number, retryAfter?: number, code?: string, cause?: unknown }} options
   */
  constructor(message, options) {
    const { status, retryAfter, code, cause } = options ?? {};
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'MintError';
    /** The HTTP status (or the one the app's mint function stands for). @type {number} */
    this.status = status;
    /** Seconds to wait, from `Retry-After`. @type {number | undefined} */
    this.retryAfter = retryAfter;
    /** wsticket's problem code, e.g. `"origin_not_allowed"`. @type {string | undefined} */
    this.code = code;
  }
}

/**
 * A reconnecting WebSocket authenticated by wsticket tickets.
 *
 * Events: `open`, `message` (`event.data`), `close` (`code`, `reason`,
 * `wasClean`; one for every `open`), and `state` (`state`, `previous`,
 * `delay`, `code`, `status`, `error`).
 */
export class WsTicketSocket extends EventTarget {
  /** @readonly */ static CONNECTING = /** @type {const} */ (0);
  /** @readonly */ static OPEN = /** @type {const} */ (1);
  /** @readonly */ static CLOSING = /** @type {const} */ (2);
  /** @readonly */ static CLOSED = /** @type {const} */ (3);

  /** @type {string} */ #url;
  /** @type {string[]} */ #protocols;
  /** @type {'subprotocol' | 'query'} */ #carrier;
  /** @type {string | undefined} */ #binaryType;
  /** @type {MintFunction} */ #mint;
  /** @type {WebSocketConstructor} */ #WebSocket;
  /** @type {(callback: () => void, ms: number) => unknown} */ #setTimeout;
  /** @type {(id: any) => void} */ #clearTimeout;
  /** @type {() => number} */ #random;
  /** @type {{ baseDelayMs: number, maxDelayMs: number, stableAfterMs: number, timeoutMs: number }} */ #limits;
  /** @type {EventTarget | null} */ #globalTarget;
  /** @type {EventTarget | null} */ #documentTarget;

  /** @type {WsTicketState} */ #state = 'connecting';
  /** The current WebSocket, or null. @type {WebSocketLike | null} */ #ws = null;
  /** Whether `open` was dispatched for `#ws` (so `close` will be). */ #opened = false;
  /** Failed attempts in a row: the back-off exponent. */ #failures = 0;
  /** The last connection closed 4401 and was retried at once. */ #retried4401 = false;
  /** A mint is in flight (at most one ever is). */ #minting = false;
  /** @type {AbortController | null} */ #abort = null;
  /** The back-off or Retry-After timer. @type {unknown} */ #waitTimer = null;
  /** Whether online/visibility may cut the wait short. */ #wakeable = false;
  /** The mint/handshake timeout, or the "stayed open" timer. @type {unknown} */ #guardTimer = null;

  /**
   * Starts connecting right away. The first mint runs in a microtask, so a
   * socket closed in the same task (as React's StrictMode does) never mints.
   *
   * @param {string | URL} url The WebSocket URL (`wss://…`), without a ticket.
   * @param {WsTicketSocketOptions} options
   */
  constructor(url, options) {
    super();
    const o = options ?? /** @type {WsTicketSocketOptions} */ ({});
    this.#carrier = o.carrier ?? 'subprotocol';
    if (this.#carrier !== 'subprotocol' && this.#carrier !== 'query') {
      throw new TypeError("wsticket-client: carrier must be 'subprotocol' or 'query'");
    }
    this.#url = checkUrl(url, this.#carrier);
    this.#protocols = checkProtocols(o.protocols);
    this.#binaryType = o.binaryType;
    this.#limits = {
      baseDelayMs: checkMs(o.baseDelayMs, DEFAULTS.baseDelayMs, 'baseDelayMs'),
      maxDelayMs: checkMs(o.maxDelayMs, DEFAULTS.maxDelayMs, 'maxDelayMs'),
      stableAfterMs: checkMs(o.stableAfterMs, DEFAULTS.stableAfterMs, 'stableAfterMs'),
      timeoutMs: checkMs(o.timeoutMs, DEFAULTS.timeoutMs, 'timeoutMs'),
    };

    const WebSocketImpl = o.WebSocket ?? /** @type {any} */ (globalThis).WebSocket;
    if (typeof WebSocketImpl !== 'function') throw new TypeError('wsticket-client: no WebSocket available');
    this.#WebSocket = WebSocketImpl;
    this.#setTimeout = o.setTimeout ?? ((callback, ms) => globalThis.setTimeout(callback, ms));
    this.#clearTimeout = o.clearTimeout ?? ((id) => globalThis.clearTimeout(id));
    this.#random = o.random ?? Math.random;

    if (o.mint !== undefined && o.mintUrl !== undefined) {
      throw new TypeError('wsticket-client: give mint or mintUrl, not both');
    }
    if (typeof o.mint === 'function') {
      this.#mint = o.mint;
    } else if (o.mintUrl !== undefined) {
      const fetchImpl = o.fetch ?? /** @type {FetchFunction} */ ((u, init) => globalThis.fetch(u, init));
      this.#mint = urlMinter(fetchImpl, String(o.mintUrl), o.mintBody, o.mintHeaders);
    } else {
      throw new TypeError('wsticket-client: a mint function or a mintUrl is required');
    }

    const defaultTarget = typeof (/** @type {any} */ (globalThis).addEventListener) === 'function'
      ? /** @type {EventTarget} */ (/** @type {unknown} */ (globalThis))
      : null;
    this.#globalTarget = o.globalTarget === undefined ? defaultTarget : o.globalTarget;
    this.#documentTarget = this.#globalTarget
      ? /** @type {any} */ (this.#globalTarget).document ?? this.#globalTarget
      : null;
    this.#globalTarget?.addEventListener('online', this.#onWake);
    this.#documentTarget?.addEventListener('visibilitychange', this.#onWake);

    queueMicrotask(() => {
      if (this.#state === 'connecting' && !this.#minting && !this.#ws) this.#connect();
    });
  }

  /** @returns {WsTicketState} */
  get state() {
    return this.#state;
  }

  /**
   * Like `WebSocket.readyState`: CONNECTING (0) while minting, handshaking
   * or backing off; OPEN (1); CLOSING (2) after `close()` until the socket
   * has closed; CLOSED (3) when closed, "unauthenticated" or "denied".
   * @returns {number}
   */
  get readyState() {
    switch (this.#state) {
      case 'open':
        return WsTicketSocket.OPEN;
      case 'connecting':
      case 'backoff':
        return WsTicketSocket.CONNECTING;
      case 'closed':
        return this.#ws ? WsTicketSocket.CLOSING : WsTicketSocket.CLOSED;
      default:
        return WsTicketSocket.CLOSED;
    }
  }

  /**
   * The subprotocol the server selected ("" when none, or when not open).
   * Never the ticket entry.
   * @returns {string}
   */
  get protocol() {
    const selected = this.#opened && this.#ws ? this.#ws.protocol : '';
    return selected.startsWith(TICKET_PROTOCOL_PREFIX) ? '' : selected;
  }

  /**
   * Sends on the open connection. Returns `false`, and neither sends nor
   * queues anything, when the socket is not open. Never throws for that.
   * @param {string | ArrayBufferLike | Blob | ArrayBufferView} data
   * @returns {boolean}
   */
  send(data) {
    if (this.#state !== 'open' || !this.#ws || !this.#opened || this.#ws.readyState !== 1) return false;
    this.#ws.send(data);
    return true;
  }

  /**
   * Closes for good: cancels any wait, aborts a mint in flight, stops
   * listening for online/visibility, and closes the connection with `code`
   * (1000 or 3000–4999) and `reason` (at most 123 bytes). Calling it again
   * does nothing.
   * @param {number} [code]
   * @param {string} [reason]
   */
  close(code = 1000, reason = '') {
    if (this.#state === 'closed') return;
    if (code !== 1000 && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
      throw new RangeError('wsticket-client: close code must be 1000 or 3000-4999');
    }
    if (new TextEncoder().encode(reason).length > 123) {
      throw new RangeError('wsticket-client: close reason must be at most 123 bytes');
    }
    this.#clearWait();
    this.#clearGuard();
    this.#abort?.abort();
    this.#globalTarget?.removeEventListener('online', this.#onWake);
    this.#documentTarget?.removeEventListener('visibilitychange', this.#onWake);
    const ws = this.#ws;
    if (ws && this.#opened) {
      ws.close(code, reason); // keep #ws: its close event becomes ours
    } else if (ws) {
      this.#ws = null;
      ws.close();
    }
    this.#setState('closed');
  }

  /**
   * Connects now: skips a back-off or Retry-After wait, or starts over from
   * "unauthenticated" or "denied" (say, after the user signed in again).
   * Does nothing while connecting, open or closed.
   */
  reconnect() {
    const state = this.#state;
    if (state !== 'backoff' && state !== 'unauthenticated' && state !== 'denied') return;
    if (state !== 'backoff') {
      this.#failures = 0;
      this.#retried4401 = false;
    }
    this.#connect();
  }

  // ---- one attempt: mint, then open ----

  /** Mints a ticket, then opens a WebSocket with it. */
  #connect() {
    this.#clearWait();
    this.#setState('connecting');
    if (this.#state !== 'connecting' || this.#minting) return; // a listener intervened
    this.#minting = true;
    const abort = new AbortController();
    this.#abort = abort;
    this.#guardTimer = this.#timer(
      () => abort.abort(new DOMException('The ticket request timed out', 'TimeoutError')),
      this.#limits.timeoutMs,
    );
    const mint = this.#mint;
    const settled = () => {
      this.#minting = false;
      this.#abort = null;
      this.#clearGuard();
      return this.#state === 'connecting'; // false after close()
    };
    new Promise((resolve) => resolve(mint({ signal: abort.signal })))
      .then(ticketOf)
      .then(
        (ticket) => settled() && this.#open(ticket),
        (error) => settled() && this.#mintFailed(error),
      );
  }

  /** @param {string} ticket Used for this one WebSocket, then forgotten. */
  #open(ticket) {
    let url = this.#url;
    let protocols = this.#protocols;
    if (this.#carrier === 'query') {
      url = withQueryTicket(url, ticket);
    } else {
      protocols = [...(protocols.length ? protocols : [PROTOCOL]), TICKET_PROTOCOL_PREFIX + ticket];
    }
    /** @type {WebSocketLike} */
    let ws;
    try {
      ws = new this.#WebSocket(url, protocols);
    } catch {
      // The browser's message would quote the URL or the protocols, ticket included.
      return this.#backoff({ error: new Error('wsticket-client: the WebSocket could not be created') });
    }
    if (this.#binaryType) ws.binaryType = this.#binaryType;
    this.#ws = ws;
    this.#opened = false;
    ws.addEventListener('open', () => this.#onOpen(ws));
    ws.addEventListener('message', (event) => this.#onMessage(ws, /** @type {MessageEvent} */ (event)));
    ws.addEventListener('close', (event) => this.#onClose(ws, /** @type {CloseEvent} */ (event)));
    this.#guardTimer = this.#timer(() => this.#onHandshakeTimeout(ws), this.#limits.timeoutMs);
  }

  /** @param {unknown} error */
  #mintFailed(error) {
    const status = error instanceof MintError || isNamed(error, 'MintError')
      ? /** @type {MintError} */ (error).status
      : undefined;
    if (status === 401) return this.#stop('unauthenticated', { status, error });
    if (status === 403) return this.#stop('denied', { status, error });
    if (status === 429) {
      const seconds = /** @type {MintError} */ (error).retryAfter;
      const retryAfterMs = typeof seconds === 'number' && seconds >= 0 ? seconds * 1000 : undefined;
      return this.#backoff({ status, error, rateLimited: true, retryAfterMs });
    }
    this.#backoff({ status, error });
  }

  // ---- the WebSocket's events ----

  /** @param {WebSocketLike} ws */
  #onOpen(ws) {
    if (ws !== this.#ws || this.#state !== 'connecting') return;
    this.#clearGuard();
    this.#guardTimer = this.#timer(() => {
      this.#guardTimer = null;
      this.#failures = 0;
      this.#retried4401 = false;
    }, this.#limits.stableAfterMs);
    // `open` first, then `state`: send() works in both, and a listener that
    // closes the socket in either still gets the one `close` for this `open`.
    const previous = this.#state;
    this.#state = 'open';
    this.#opened = true;
    this.dispatchEvent(makeEvent('open', {}));
    if (ws === this.#ws && this.state === 'open') this.#dispatchState('open', previous, {});
  }

  /**
   * @param {WebSocketLike} ws
   * @param {MessageEvent} event
   */
  #onMessage(ws, event) {
    if (ws !== this.#ws || !this.#opened) return;
    this.dispatchEvent(makeEvent('message', { data: event.data }));
  }

  /**
   * @param {WebSocketLike} ws
   * @param {CloseEvent} event
   */
  #onClose(ws, event) {
    if (ws !== this.#ws) return;
    this.#ws = null;
    this.#clearGuard();
    const code = typeof event.code === 'number' ? event.code : 1006;
    if (this.#opened) {
      this.#opened = false;
      this.dispatchEvent(makeEvent('close', {
        code,
        reason: typeof event.reason === 'string' ? event.reason : '',
        wasClean: event.wasClean === true,
      }));
    }
    if (this.#state !== 'open' && this.#state !== 'connecting') return; // closed, or a listener acted
    if (code === 4403) return this.#stop('denied', { code });
    if (code === 4401 && !this.#retried4401) {
      this.#retried4401 = true; // once at once; the next 4401 backs off
      return this.#connect();
    }
    if (code !== 4401) this.#retried4401 = false;
    this.#backoff({ code });
  }

  /** @param {WebSocketLike} ws */
  #onHandshakeTimeout(ws) {
    this.#guardTimer = null;
    if (ws !== this.#ws || this.#state !== 'connecting') return;
    this.#ws = null;
    ws.close();
    this.#backoff({ error: new DOMException('The WebSocket handshake timed out', 'TimeoutError') });
  }

  /** `online`, or `visibilitychange` to visible: end a back-off now. */
  #onWake = (/** @type {Event} */ event) => {
    if (event.type === 'visibilitychange'
      && /** @type {any} */ (this.#documentTarget)?.visibilityState === 'hidden') return;
    if (this.#state === 'backoff' && this.#wakeable) this.#connect();
  };

  // ---- waiting and stopping ----

  /**
   * Waits, then tries again. The delay is full jitter,
   * `random() · min(maxDelayMs, baseDelayMs · 2^failures)`, or for a 429 the
   * server's Retry-After (at least 1 s; the jittered delay when it sent
   * none). Online/visibility may end a back-off early, never a Retry-After.
   * @param {{ code?: number, status?: number, error?: unknown, rateLimited?: boolean, retryAfterMs?: number }} cause
   */
  #backoff({ code, status, error, rateLimited = false, retryAfterMs }) {
    const { baseDelayMs, maxDelayMs } = this.#limits;
    const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(this.#failures, 52));
    let delay = Math.min(Math.max(this.#random(), 0), 1) * ceiling;
    this.#failures += 1;
    this.#wakeable = !rateLimited;
    if (rateLimited) delay = Math.min(Math.max(retryAfterMs ?? delay, MIN_RETRY_AFTER_MS), MAX_TIMER_MS);
    this.#waitTimer = this.#timer(() => {
      this.#waitTimer = null;
      this.#connect();
    }, delay);
    this.#setState('backoff', { delay, code, status, error });
  }

  /**
   * @param {'unauthenticated' | 'denied'} state
   * @param {{ code?: number, status?: number, error?: unknown }} cause
   */
  #stop(state, cause) {
    this.#clearWait();
    this.#setState(state, cause);
  }

  /**
   * @param {WsTicketState} state
   * @param {{ delay?: number, code?: number, status?: number, error?: unknown }} [cause]
   */
  #setState(state, cause = {}) {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    this.#dispatchState(state, previous, cause);
  }

  /**
   * @param {WsTicketState} state
   * @param {WsTicketState} previous
   * @param {{ delay?: number, code?: number, status?: number, error?: unknown }} cause
   */
  #dispatchState(state, previous, cause) {
    this.dispatchEvent(makeEvent('state', {
      state,
      previous,
      delay: cause.delay,
      code: cause.code,
      status: cause.status,
      error: cause.error,
    }));
  }

  /**
   * @param {() => void} callback
   * @param {number} ms
   * @returns {unknown} A timer id, or null for an infinite `ms`.
   */
  #timer(callback, ms) {
    if (!Number.isFinite(ms)) return null;
    const setTimer = this.#setTimeout;
    return setTimer(callback, Math.min(ms, MAX_TIMER_MS));
  }

  #clearWait() {
    if (this.#waitTimer !== null) this.#clearTimeout.call(undefined, this.#waitTimer);
    this.#waitTimer = null;
  }

  #clearGuard() {
    if (this.#guardTimer !== null) this.#clearTimeout.call(undefined, this.#guardTimer);
    this.#guardTimer = null;
  }
}

// ---- helpers ----

/**
 * The minter behind `mintUrl`: one POST, JSON in and out.
 * @param {FetchFunction} fetchImpl
 * @param {string} url
 * @param {Record<string, unknown> | undefined} body
 * @param {WsTicketSocketOptions['mintHeaders']} headers
 * @returns {MintFunction}
 */
function urlMinter(fetchImpl, url, body, headers) {
  const payload = JSON.stringify(body ?? {});
  return async ({ signal }) => {
    const extra = typeof headers === 'function' ? await headers() : headers ?? {};
    /** @type {HeaderMap} */
    const all = {};
    for (const [name, value] of Object.entries(extra)) {
      if (name.toLowerCase() !== 'content-type') all[name] = value;
    }
    all['content-type'] = 'application/json';
    const response = await fetchImpl(url, {
      method: 'POST',
      credentials: 'include',
      headers: all,
      body: payload,
      signal,
    });
    if (!response.ok) {
      /** @type {string | undefined} */
      let code;
      try {
        const problem = /** @type {any} */ (await response.json());
        if (typeof problem?.code === 'string') code = problem.code;
      } catch {
        // not a problem+json body: the status says enough
      }
      throw new MintError(`wsticket-client: the ticket request failed with HTTP ${response.status}`, {
        status: response.status,
        retryAfter: parseRetryAfter(response.headers.get('retry-after')),
        code,
      });
    }
    return /** @type {MintResult} */ (await response.json());
  };
}

/**
 * @param {unknown} value What a mint returned.
 * @returns {string}
 */
function ticketOf(value) {
  const ticket = typeof value === 'string' ? value : /** @type {any} */ (value)?.ticket;
  if (typeof ticket !== 'string' || !TICKET_SHAPE.test(ticket)) {
    throw new TypeError('wsticket-client: the mint gave no usable ticket');
  }
  return ticket;
}

/**
 * `Retry-After` in seconds: delta-seconds or an HTTP date.
 * @param {string | null} value
 * @returns {number | undefined}
 */
function parseRetryAfter(value) {
  if (value == null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

/**
 * Appends `ticket=…` to a URL that has no fragment (checked in the constructor).
 * @param {string} url
 * @param {string} ticket
 */
function withQueryTicket(url, ticket) {
  const separator = !url.includes('?') ? '?' : /[?&]$/.test(url) ? '' : '&';
  return `${url}${separator}ticket=${encodeURIComponent(ticket)}`;
}

/**
 * @param {string | URL} url
 * @param {'subprotocol' | 'query'} carrier
 * @returns {string}
 */
function checkUrl(url, carrier) {
  const text = String(url);
  /** @type {URL} */
  let parsed;
  try {
    parsed = new URL(text, /** @type {any} */ (globalThis).location?.href);
  } catch {
    throw new SyntaxError('wsticket-client: the WebSocket URL is not a valid URL');
  }
  if (!/^(wss?|https?):$/.test(parsed.protocol)) {
    throw new SyntaxError('wsticket-client: the WebSocket URL must be ws:, wss:, http: or https:');
  }
  if (text.includes('#')) throw new SyntaxError('wsticket-client: the WebSocket URL must not have a fragment');
  if (carrier === 'query' && parsed.searchParams.has('ticket')) {
    throw new SyntaxError('wsticket-client: the WebSocket URL already has a ticket parameter');
  }
  return text;
}

/**
 * @param {string | string[] | undefined} protocols
 * @returns {string[]}
 */
function checkProtocols(protocols) {
  const list = protocols === undefined ? [] : typeof protocols === 'string' ? [protocols] : [...protocols];
  for (const protocol of list) {
    if (typeof protocol !== 'string' || !TOKEN.test(protocol)) {
      throw new SyntaxError('wsticket-client: a subprotocol must be a non-empty token');
    }
    if (protocol.startsWith(TICKET_PROTOCOL_PREFIX)) {
      throw new SyntaxError(`wsticket-client: subprotocols starting with "${TICKET_PROTOCOL_PREFIX}" are reserved`);
    }
  }
  if (new Set(list).size !== list.length) throw new SyntaxError('wsticket-client: duplicate subprotocol');
  return list;
}

/**
 * @param {number | undefined} value
 * @param {number} fallback
 * @param {string} name
 */
function checkMs(value, fallback, name) {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new RangeError(`wsticket-client: ${name} must be a number of milliseconds, 0 or more`);
  }
  return value;
}

/**
 * @param {unknown} error
 * @param {string} name
 */
function isNamed(error, name) {
  return typeof error === 'object' && error !== null && /** @type {any} */ (error).name === name;
}

/**
 * An `Event` with read-only extra properties.
 * @param {string} type
 * @param {Record<string, unknown>} props
 * @returns {Event}
 */
function makeEvent(type, props) {
  const event = new Event(type);
  for (const [key, value] of Object.entries(props)) {
    Object.defineProperty(event, key, { value, enumerable: true });
  }
  return event;
}
