// wsticket-node: authenticate `ws` upgrades with wsticket tickets.
//
// Nothing here logs or reports a ticket, an API key or a URL with its query
// string. The only output of the module is the `onError` callback (by
// default one line on console.error) and a revocation listener's 'error'
// and 'gap' events (by default one line on console.error / console.warn),
// whose messages are written here.

import { randomFillSync } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import http from 'node:http';
import https from 'node:https';
import { urlToHttpOptions } from 'node:url';

/** @typedef {import('./index.js').Identity} Identity */
/** @typedef {import('./index.js').AuthResult} AuthResult */
/** @typedef {import('./index.js').AuthFailure} AuthFailure */
/** @typedef {import('./index.js').ErrorKind} ErrorKind */
/** @typedef {import('./index.js').UnauthorizedReason} UnauthorizedReason */
/** @typedef {import('./index.js').ForbiddenReason} ForbiddenReason */
/** @typedef {import('./index.js').Authenticator} Authenticator */
/** @typedef {import('./index.js').ListenerErrorKind} ListenerErrorKind */
/** @typedef {import('./index.js').RevocationListenerEvents} RevocationListenerEvents */
/** @typedef {import('./index.js').EventStreamEvent} EventStreamEvent */
/** @typedef {import('ws').WebSocket} WebSocket */
/** @typedef {import('node:http').IncomingMessage} IncomingMessage */

/** @type {typeof import('./index.js').CloseCode} */
export const CloseCode = Object.freeze({ UNAUTHORIZED: 4401, FORBIDDEN: 4403, UNAVAILABLE: 4503 });

/** @type {typeof import('./index.js').SUBPROTOCOL} */
export const SUBPROTOCOL = 'wsticket';
/** @type {typeof import('./index.js').SUBPROTOCOL_PREFIX} */
export const SUBPROTOCOL_PREFIX = 'wsticket.';

const DEFAULT_TIMEOUT_MS = 2000;
// Idle keep-alive sockets are dropped after this long: below the 5 s
// keep-alive of wsticket's HTTP server (actix-web's default), so a redeem
// is not written into a socket the server is closing.
const IDLE_SOCKET_MS = 4000;
// A redeem answer is at most a few KiB (claims are capped by
// tickets.max_claims_bytes, 4096 by default).
const MAX_ANSWER_BYTES = 1 << 20;
// The documented ticket form: wst_<kid>_<43 base64url characters>, kid
// being [a-z0-9]{1,16}. wsticket checks it strictly; this only keeps
// garbage (and oversized bodies) from being sent to it.
const TICKET_FORM = /^wst_[a-z0-9]{1,16}_[A-Za-z0-9_-]{43}$/;
// An Origin header longer than this cannot be a ticket's origin; sending it
// could exceed wsticket's 16 KiB body limit.
const MAX_ORIGIN_CHARS = 4096;
const API_KEY_FORM = /^wsk_[A-Za-z0-9_-]{1,256}$/;
const REQUEST_ID_FORM = /^[A-Za-z0-9._:-]{1,128}$/; // see requestIdOf
const USER_AGENT = 'wsticket-node/0.1.0';

const CLOSE_REASON = /** @type {const} */ ({ 4401: 'unauthorized', 4403: 'forbidden', 4503: 'unavailable' });

/** @template {string} [K=ErrorKind] */
export class WsticketError extends Error {
  /**
   * @param {K} kind
   * @param {string} message
   * @param {{status?: number, problemCode?: string, requestId?: string, cause?: unknown}} [details]
   */
  constructor(kind, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'WsticketError';
    /** @type {K} */
    this.kind = kind;
    /** @type {number | undefined} */
    this.status = details.status;
    /** @type {string | undefined} */
    this.problemCode = details.problemCode;
    /** @type {string | undefined} */
    this.requestId = details.requestId;
  }
}

// ---------------------------------------------------------------------------
// Where the ticket travels

/**
 * True for a Sec-WebSocket-Protocol entry that carries a ticket.
 * @param {string} protocol
 */
function isCarrierEntry(protocol) {
  return protocol.slice(0, SUBPROTOCOL_PREFIX.length).toLowerCase() === SUBPROTOCOL_PREFIX;
}

/**
 * True for an entry that must never be selected (echoed to the client):
 * a carrier entry, or a bare ticket offered as a protocol by mistake.
 * @param {string} protocol
 */
function isSecretEntry(protocol) {
  return isCarrierEntry(protocol) || protocol.slice(0, 4).toLowerCase() === 'wst_';
}

/**
 * Splits a (possibly comma-joined) Sec-WebSocket-Protocol value.
 * @param {string} value
 */
function splitProtocols(value) {
  return value.split(',').map((p) => p.trim()).filter((p) => p !== '');
}

/**
 * Takes the ticket out of the request: reads every `ticket` query parameter
 * and every `wsticket.<ticket>` Sec-WebSocket-Protocol entry, and removes
 * them from `req.url`, `req.headers` and `req.rawHeaders`, so that nothing
 * the application sees afterwards holds the ticket.
 * @param {IncomingMessage} req
 * @returns {string[]} the distinct, non-empty tickets found
 */
function takeTickets(req) {
  /** @type {Set<string>} */
  const found = new Set();

  const url = req.url ?? '';
  const q = url.indexOf('?');
  if (q !== -1) {
    const kept = [];
    for (const pair of url.slice(q + 1).split('&')) {
      // One pair at a time, with the WHATWG rules URLSearchParams uses.
      const entry = new URLSearchParams(pair).entries().next();
      if (!entry.done && entry.value[0] === 'ticket') {
        if (entry.value[1] !== '') found.add(entry.value[1]);
      } else {
        kept.push(pair);
      }
    }
    const query = kept.filter((p) => p !== '').join('&');
    req.url = url.slice(0, q) + (query === '' ? '' : '?' + query);
  }

  const header = req.headers['sec-websocket-protocol'];
  if (typeof header === 'string') {
    const all = splitProtocols(header);
    const kept = all.filter((p) => !isCarrierEntry(p));
    if (kept.length !== all.length) {
      for (const p of all) {
        if (isCarrierEntry(p) && p.length > SUBPROTOCOL_PREFIX.length) found.add(p.slice(SUBPROTOCOL_PREFIX.length));
      }
      scrubProtocolHeader(req, kept);
    }
  }
  return [...found];
}

/**
 * Rewrites the Sec-WebSocket-Protocol header without the carrier entries,
 * or removes it when nothing else was offered.
 * @param {IncomingMessage} req
 * @param {string[]} kept
 */
function scrubProtocolHeader(req, kept) {
  const value = kept.join(', ');
  if (value === '') delete req.headers['sec-websocket-protocol'];
  else req.headers['sec-websocket-protocol'] = value;

  const raw = req.rawHeaders;
  const rewritten = [];
  let first = true;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i].toLowerCase() !== 'sec-websocket-protocol') {
      rewritten.push(raw[i], raw[i + 1]);
    } else if (first) {
      first = false;
      if (value !== '') rewritten.push(raw[i], value);
    }
  }
  raw.splice(0, raw.length, ...rewritten);

  // headersDistinct is computed from rawHeaders on first use and cached.
  const distinct = req.headersDistinct;
  if (distinct && distinct['sec-websocket-protocol']) {
    if (value === '') delete distinct['sec-websocket-protocol'];
    else distinct['sec-websocket-protocol'] = [value];
  }
}

/**
 * Three dot-separated base64url segments, the first two non-empty.
 * @param {string} s
 */
function looksLikeJwt(s) {
  const parts = s.split('.');
  return parts.length === 3 && parts[0] !== '' && parts[1] !== '' && parts.every((p) => /^[A-Za-z0-9_-]*$/.test(p));
}

/**
 * The upgrade's X-Request-Id when wsticket would keep it as it is
 * (contract.md: 1-128 characters of A-Za-z0-9._:-, not starting with wst_
 * or wsk_, not shaped like a JWT), else a random 32-character hex id. It is
 * sent with the redeem and appears in results and error reports, so a
 * credential must never pass.
 * @param {IncomingMessage} req
 * @returns {string}
 */
function requestIdOf(req) {
  const id = req.headers['x-request-id'];
  if (typeof id === 'string' && REQUEST_ID_FORM.test(id) && !/^ws[tk]_/i.test(id) && !looksLikeJwt(id)) return id;
  return randomRequestId();
}

// Random request ids are cut from a pool filled 256 at a time rather than
// by a randomBytes(16) call per upgrade, which showed in CPU profiles of
// bench/handshake.js (see bench/README.md). The pool holds only ids yet to
// be used: request ids are correlation ids, not secrets.
const ID_BYTES = 16;
const idPool = Buffer.alloc(ID_BYTES * 256);
let idOffset = idPool.length;

/** A random 32-character hex id. */
function randomRequestId() {
  if (idOffset === idPool.length) {
    randomFillSync(idPool);
    idOffset = 0;
  }
  const id = idPool.toString('hex', idOffset, idOffset + ID_BYTES);
  idOffset += ID_BYTES;
  return id;
}

// ---------------------------------------------------------------------------
// Protocol selection

/** @type {typeof import('./index.js').createHandleProtocols} */
export const createHandleProtocols = (options = {}) => {
  const prefer = options.prefer === undefined ? undefined : [...options.prefer];
  if (prefer !== undefined) {
    for (const p of prefer) {
      if (typeof p !== 'string' || p === '' || isSecretEntry(p)) {
        throw new TypeError('createHandleProtocols: prefer must list application protocols, never a ticket entry');
      }
    }
  }
  return (protocols) => {
    const offered = [...protocols].filter((p) => !isSecretEntry(p));
    const app = prefer === undefined
      ? offered.find((p) => p !== SUBPROTOCOL)
      : prefer.find((p) => offered.includes(p));
    if (app !== undefined) return app;
    return offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : false;
  };
};

/** @type {typeof import('./index.js').handleProtocols} */
export const handleProtocols = createHandleProtocols();

// ---------------------------------------------------------------------------
// The redeem call

/**
 * The URL of one of wsticket's endpoints, from the base URL of the options.
 * @param {string | URL} url
 * @param {string} path e.g. '/v1/tickets/redeem'
 * @returns {URL}
 */
function endpointOf(url, path) {
  /** @type {URL} */
  let base;
  try {
    base = new URL(String(url));
  } catch {
    throw new TypeError('wsticket-node: options.url is not a valid URL');
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new TypeError('wsticket-node: options.url must be http:// or https://');
  }
  if (base.username !== '' || base.password !== '' || base.search !== '' || base.hash !== '') {
    throw new TypeError('wsticket-node: options.url must not hold credentials, a query or a fragment');
  }
  return new URL(base.pathname.replace(/\/+$/, '') + path, base);
}

/**
 * @typedef {{status: number, body: string} | {error: 'timeout' | 'unreachable' | 'too_large', cause?: unknown}} Answer
 */

/**
 * One POST, never retried. Resolves with the answer or with why there is none.
 * @param {typeof http | typeof https} transport
 * @param {import('node:http').RequestOptions} target where to, from urlToHttpOptions, made once
 * @param {import('node:http').Agent} agent
 * @param {Record<string, string>} headers
 * @param {string} body
 * @param {number} timeoutMs
 * @returns {Promise<Answer>}
 */
function post(transport, target, agent, headers, body, timeoutMs) {
  return new Promise((resolve) => {
    let timedOut = false;
    let settled = false;
    /** @type {NodeJS.Timeout | undefined} */
    let timer;
    /** @param {Answer} answer */
    const settle = (answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(answer);
    };
    /** @param {unknown} cause */
    const fail = (cause) => settle(timedOut ? { error: 'timeout' } : { error: 'unreachable', cause });

    /** @type {import('node:http').ClientRequest} */
    let req;
    try {
      req = transport.request({ ...target, method: 'POST', agent, headers }, onResponse);
    } catch (err) {
      settle({ error: 'unreachable', cause: err });
      return;
    }
    /** @param {import('node:http').IncomingMessage} res */
    function onResponse(res) {
      /** @type {Buffer[]} */
      const chunks = [];
      let size = 0;
      res.on('data', (/** @type {Buffer} */ chunk) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          settle({ error: 'too_large' });
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => settle({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', fail);
      res.on('close', () => { if (!res.complete) fail(new Error('answer cut short')); });
    }
    // One deadline for connect, answer and body. Destroying the request
    // closes its socket, which never goes back to the agent's pool.
    timer = setTimeout(() => {
      timedOut = true;
      req.destroy(new Error('timeout'));
    }, timeoutMs);
    req.on('error', fail);
    req.end(body);
  });
}

/**
 * @param {string} body
 * @returns {unknown}
 */
function parseJson(body) {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The identity in a 200 answer, or undefined when it is not a redeem answer.
 * @param {unknown} json
 * @returns {Identity | undefined}
 */
function identityOf(json) {
  if (!isObject(json)) return undefined;
  const { user_id: userId, claims, audience, origin, issued_at: issuedAt, expires_at: expiresAt } = json;
  if (typeof userId !== 'string' || userId === '') return undefined;
  if (typeof audience !== 'string' || audience === '') return undefined;
  if (!isObject(claims)) return undefined;
  if (origin !== null && typeof origin !== 'string') return undefined;
  if (typeof issuedAt !== 'string' || typeof expiresAt !== 'string') return undefined;
  return { userId, claims, audience, origin, issuedAt, expiresAt };
}

/**
 * Decides what a non-200 answer means. Only the documented (status, code)
 * pairs refuse the ticket; anything else is not an answer about the ticket
 * (another service at that URL, a proxy error page, ...) and fails as 4503.
 * @param {number} status
 * @param {string | undefined} code
 * @returns {{code: 4401, reason: UnauthorizedReason} | {code: 4403, reason: ForbiddenReason} | {code: 4503, kind: ErrorKind, message: string}}
 */
function classify(status, code) {
  if (status === 400 && code === 'invalid_request') return { code: 4401, reason: 'invalid_request' };
  if (status === 404 && code === 'ticket_invalid') return { code: 4401, reason: 'ticket_invalid' };
  if (status === 409 && code === 'ticket_reused') return { code: 4401, reason: 'ticket_reused' };
  if (status === 403 && code === 'origin_mismatch') return { code: 4403, reason: 'origin_mismatch' };
  if (status === 403 && code === 'audience_mismatch') return { code: 4403, reason: 'audience_mismatch' };
  if (status === 403 && code === 'ip_mismatch') return { code: 4403, reason: 'ip_mismatch' };
  const what = `wsticket answered ${status}${code === undefined ? '' : ' ' + code} to a redeem`;
  if (status === 401) {
    return { code: 4503, kind: 'misconfigured', message: `${what}: the redeem key is unknown to wsticket (check redeemKey)` };
  }
  if (status === 403) {
    return { code: 4503, kind: 'misconfigured', message: `${what}: the redeem key lacks the redeem permission (check the client's "can")` };
  }
  if (status >= 500) return { code: 4503, kind: 'unavailable', message: what };
  return { code: 4503, kind: 'misconfigured', message: `${what}: is options.url the base URL of wsticket?` };
}

/** @type {typeof import('./index.js').createAuthenticator} */
export const createAuthenticator = (options) => {
  if (!isObject(options)) throw new TypeError('wsticket-node: options are required');
  const redeemUrl = endpointOf(options.url, '/v1/tickets/redeem');
  const redeemKey = options.redeemKey;
  if (typeof redeemKey !== 'string' || !API_KEY_FORM.test(redeemKey)) {
    // Never repeat the value.
    throw new TypeError('wsticket-node: options.redeemKey must be a wsticket API key (wsk_...)');
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 600_000) {
    throw new TypeError('wsticket-node: options.timeoutMs must be an integer between 1 and 600000');
  }
  const audiences = options.audience === undefined
    ? undefined
    : typeof options.audience === 'string' ? [options.audience] : [...options.audience];
  const onError = options.onError ?? ((/** @type {WsticketError} */ err) => {
    console.error(`wsticket-node: ${err.kind}: ${err.message} (request id ${err.requestId})`);
  });
  if (options.clientIp !== undefined && typeof options.clientIp !== 'function') {
    throw new TypeError('wsticket-node: options.clientIp must be a function of the upgrade request');
  }
  /** @type {(req: import('node:http').IncomingMessage) => string | undefined} */
  const clientIpOf = options.clientIp ?? ((req) => req.socket.remoteAddress);
  const expectedProtocol = redeemUrl.protocol;
  if (options.agent !== undefined && /** @type {{protocol?: unknown}} */ (options.agent).protocol !== expectedProtocol) {
    throw new TypeError(`wsticket-node: options.agent must be an ${expectedProtocol === 'https:' ? 'https' : 'http'}.Agent for this url`);
  }
  const ownAgent = options.agent === undefined;
  const transport = redeemUrl.protocol === 'https:' ? https : http;
  // Parsed once rather than by http.request on every redeem.
  const target = urlToHttpOptions(redeemUrl);
  const agent = options.agent ?? new transport.Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS, scheduling: 'lifo' });
  const authorization = `Bearer ${redeemKey}`;

  /**
   * @param {ErrorKind} kind
   * @param {string} requestId
   * @param {WsticketError} error
   * @returns {AuthFailure}
   */
  const unavailable = (kind, requestId, error) => {
    try {
      onError(error);
    } catch {
      // An error callback that throws must not turn a 4503 into a crash.
    }
    return { ok: false, code: 4503, reason: kind, requestId };
  };

  /** @type {Authenticator['authenticate']} */
  const authenticate = async (req) => {
    const requestId = requestIdOf(req);
    const tickets = takeTickets(req);
    if (tickets.length === 0) return { ok: false, code: 4401, reason: 'missing_ticket', requestId };
    if (tickets.length > 1) return { ok: false, code: 4401, reason: 'ambiguous_ticket', requestId };
    const ticket = tickets[0];
    if (!TICKET_FORM.test(ticket)) return { ok: false, code: 4401, reason: 'malformed_ticket', requestId };

    const header = req.headers.origin;
    const origin = typeof header === 'string' && header !== '' ? header : null;
    if (origin !== null && origin.length > MAX_ORIGIN_CHARS) {
      return { ok: false, code: 4403, reason: 'origin_mismatch', requestId };
    }

    // For tickets bound to the client's address; unbound ones ignore it.
    let clientIp;
    try {
      clientIp = clientIpOf(req);
    } catch {
      clientIp = undefined;
    }
    // Only an address: wsticket refuses a malformed one (a 400 for every
    // ticket), so anything else (a Unix socket's nothing) is not sent.
    const body = JSON.stringify(typeof clientIp === 'string' && isIP(clientIp) !== 0
      ? { ticket, origin, client_ip: clientIp }
      : { ticket, origin });
    const answer = await post(transport, target, agent, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      accept: 'application/json, application/problem+json',
      authorization,
      'x-request-id': requestId,
      'user-agent': USER_AGENT,
    }, body, timeoutMs);

    if ('error' in answer) {
      if (answer.error === 'timeout') {
        return unavailable('timeout', requestId, new WsticketError('timeout', `no answer from wsticket within ${timeoutMs} ms`, { requestId }));
      }
      if (answer.error === 'too_large') {
        return unavailable('bad_response', requestId, new WsticketError('bad_response', 'the redeem answer is over 1 MiB', { requestId }));
      }
      const code = isObject(answer.cause) && typeof answer.cause.code === 'string' ? answer.cause.code : 'network error';
      return unavailable('unreachable', requestId, new WsticketError('unreachable', `cannot reach wsticket: ${code}`, { requestId, cause: answer.cause }));
    }

    const json = parseJson(answer.body);
    if (answer.status === 200) {
      const identity = identityOf(json);
      if (identity === undefined) {
        return unavailable('bad_response', requestId, new WsticketError('bad_response', 'wsticket answered 200 without a redeem answer', { status: 200, requestId }));
      }
      if (audiences !== undefined && !audiences.includes(identity.audience)) {
        return { ok: false, code: 4403, reason: 'audience_not_accepted', requestId };
      }
      return { ok: true, identity, requestId };
    }

    const problemCode = isObject(json) && typeof json.code === 'string' ? json.code : undefined;
    const outcome = classify(answer.status, problemCode);
    if (outcome.code === 4503) {
      return unavailable(outcome.kind, requestId, new WsticketError(outcome.kind, outcome.message, { status: answer.status, problemCode, requestId }));
    }
    return { ok: false, ...outcome, requestId };
  };

  return {
    authenticate,
    close() {
      if (ownAgent) agent.destroy();
    },
  };
};

// ---------------------------------------------------------------------------
// The high-level helper

/** @type {typeof import('./index.js').attach} */
export const attach = (server, wss, options) => {
  if (wss.options.noServer !== true) {
    // Otherwise ws answers upgrades itself, and they would never be authenticated.
    throw new TypeError('wsticket-node: attach() needs a WebSocketServer created with {noServer: true}');
  }
  const authenticator = 'authenticator' in options ? options.authenticator : createAuthenticator(options);
  const { filter, onRefused, revocations } = options;

  /**
   * @param {IncomingMessage} req
   * @param {import('node:stream').Duplex} socket
   * @param {Buffer} head
   */
  const onUpgrade = async (req, socket, head) => {
    if (filter !== undefined && !filter(req)) return;
    const onSocketError = () => socket.destroy();
    socket.on('error', onSocketError);

    // Requests ws refuses anyway (wrong path, method or Upgrade header) go
    // straight to it, so they answer an HTTP error without using the ticket.
    const upgrade = req.headers.upgrade;
    if (req.method !== 'GET' || typeof upgrade !== 'string' || upgrade.toLowerCase() !== 'websocket' || !wss.shouldHandle(req)) {
      takeTickets(req);
      socket.removeListener('error', onSocketError);
      wss.handleUpgrade(req, socket, head, (ws) => ws.terminate());
      return;
    }

    /** @type {AuthResult} */
    let result;
    try {
      result = await authenticator.authenticate(req);
    } catch {
      // authenticate() does not reject; this is a last resort.
      result = { ok: false, code: 4503, reason: 'bad_response', requestId: '' };
    }
    socket.removeListener('error', onSocketError);
    if (socket.destroyed) return; // the client went away during the redeem

    /** @type {{code: import('./index.js').CloseCodeValue, reason: import('./index.js').RefusalReason, requestId: string} | undefined} */
    let refusal;
    if (!result.ok) refusal = result;
    // A ticket redeemed just before its user was revoked, whose revocation
    // the listener saw while the redeem was still under way.
    else if (revocations !== undefined && revocations.isRevoked(result.identity)) {
      refusal = { code: 4401, reason: 'revoked', requestId: result.requestId };
    }
    if (refusal !== undefined) {
      const { code, reason, requestId } = refusal;
      if (onRefused !== undefined) {
        try {
          onRefused({ code, reason, requestId }, req);
        } catch {
          // ignored: the upgrade is closed either way
        }
      }
      wss.handleUpgrade(req, socket, head, (ws) => ws.close(code, CLOSE_REASON[code]));
      return;
    }
    const { identity } = /** @type {import('./index.js').AuthSuccess} */ (result);
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.wsticket = identity;
      // false: revoked in the meantime, and already closing with 4401.
      if (revocations !== undefined && !revocations.track(ws, identity)) return;
      wss.emit('connection', ws, req, identity);
    });
  };

  /** @param {IncomingMessage} req @param {import('node:stream').Duplex} socket @param {Buffer} head */
  const listener = (req, socket, head) => {
    onUpgrade(req, socket, head).catch((err) => {
      // An exception of the 'connection' handler, or of ws (handleUpgrade
      // called twice for one socket: another 'upgrade' listener handles the
      // same requests). Thrown again as it would be without attach().
      socket.destroy();
      process.nextTick(() => { throw err; });
    });
  };
  server.on('upgrade', listener);
  return () => {
    server.removeListener('upgrade', listener);
  };
};

// ---------------------------------------------------------------------------
// The event stream (GET /v1/events) and the revocation listener

// A line, or the data of one event, longer than this is not wsticket's: the
// connection is dropped (bad_response) and made again.
const MAX_EVENT_CHARS = 1 << 20;
// The body of a refusal (a problem answer) read for its `code`.
const MAX_PROBLEM_BYTES = 64 * 1024;
// Three heartbeats at wsticket's default events.heartbeat_secs (15).
const DEFAULT_HEARTBEAT_TIMEOUT_MS = 45_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
// The first reconnection delay until the server sends `retry:`.
const DEFAULT_RECONNECT_DELAY_MS = 1000;
const DEFAULT_MAX_RECONNECT_DELAY_MS = 5000;
// A `retry:` below this is raised to it: no reconnection loop without pause.
const MIN_SERVER_RETRY_MS = 100;
// How long a revocation is remembered, for connections whose redeem was
// under way when it arrived (their redeem answer comes later than the event).
const RECENT_REVOCATION_MS = 60_000;
// A revoked client that does not answer the close frame is cut off then.
const TERMINATE_AFTER_MS = 1000;
const REVOKED_REASON = 'revoked';
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)$/i;
// What Node accepts in a header value, minus the Latin-1 range: a Last-Event-ID
// of other characters is not sent back.
const HEADER_SAFE = /^[\t\x20-\x7e]{1,1024}$/;

/**
 * Milliseconds since the epoch of an RFC 3339 time, or NaN.
 * @param {unknown} value
 */
function timeOf(value) {
  return typeof value === 'string' && RFC3339.test(value) ? Date.parse(value) : NaN;
}

/**
 * A streaming parser of the text/event-stream format (the Server-Sent Events
 * "interpreting an event stream" rules): lines end with CRLF, LF or CR, in
 * any chunking; `data` lines are joined with "\n"; comments and unknown
 * fields are ignored; `id` persists from event to event; a block without
 * data is not an event.
 */
export class EventStreamParser {
  /**
   * @param {import('./index.js').EventStreamParserOptions} options
   */
  constructor(options) {
    this.onEvent = options.onEvent;
    this.onRetry = options.onRetry;
    this.onComment = options.onComment;
    /** The last event ID string: the latest `id` field seen before a blank line. */
    this.lastEventId = options.lastEventId ?? '';
    this.maxChars = options.maxChars ?? MAX_EVENT_CHARS;
    /** @private */ this.pending = '';
    /** @private */ this.started = false;
    /** @private */ this.skipLineFeed = false;
    /** @private */ this.idBuffer = this.lastEventId;
    /** @private */ this.type = '';
    /** @private */ this.data = '';
    /** @private */ this.hasData = false;
  }

  /**
   * Feeds decoded text. Throws a RangeError when a line, or the data of one
   * event, is over `maxChars`; the parser should then be dropped.
   * @param {string} chunk
   */
  push(chunk) {
    if (chunk === '') return;
    if (this.skipLineFeed) {
      // The previous chunk ended with CR: a LF here belongs to that line end.
      this.skipLineFeed = false;
      if (chunk[0] === '\n') chunk = chunk.slice(1);
    }
    if (!this.started && chunk !== '') {
      this.started = true;
      if (chunk[0] === '\uFEFF') chunk = chunk.slice(1);
    }
    const text = this.pending + chunk;
    const ends = /[\r\n]/g;
    let start = 0;
    /** @type {RegExpExecArray | null} */
    let m;
    while ((m = ends.exec(text)) !== null) {
      const end = m.index;
      if (text[end] === '\r') {
        if (end + 1 === text.length) this.skipLineFeed = true;
        else if (text[end + 1] === '\n') ends.lastIndex = end + 2;
      }
      const line = text.slice(start, end);
      start = ends.lastIndex;
      this.line(line);
    }
    this.pending = text.slice(start);
    if (this.pending.length > this.maxChars) {
      throw new RangeError(`an event stream line is over ${this.maxChars} characters`);
    }
  }

  /**
   * @private
   * @param {string} line
   */
  line(line) {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line[0] === ':') {
      this.onComment?.(line.slice(1).replace(/^ /, ''));
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    switch (field) {
      case 'event':
        this.type = value;
        break;
      case 'data':
        if (this.data.length + value.length > this.maxChars) {
          throw new RangeError(`the data of an event is over ${this.maxChars} characters`);
        }
        this.data = this.hasData ? `${this.data}\n${value}` : value;
        this.hasData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.idBuffer = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.onRetry?.(Number(value));
        break;
      default:
        // Unknown fields are ignored.
    }
  }

  /** @private */
  dispatch() {
    this.lastEventId = this.idBuffer;
    const { type, data, hasData } = this;
    this.type = '';
    this.data = '';
    this.hasData = false;
    if (!hasData) return;
    this.onEvent({ type: type === '' ? 'message' : type, data, lastEventId: this.lastEventId });
  }
}

/**
 * What a non-200 (or non-event-stream) answer to GET /v1/events means.
 * @param {number} status
 * @param {string | undefined} code
 * @param {string} contentType
 * @returns {[ListenerErrorKind, string]}
 */
function classifyEventsAnswer(status, code, contentType) {
  const what = `wsticket answered ${status}${code === undefined ? '' : ' ' + code} to GET /v1/events`;
  if (status === 200) {
    const type = contentType === '' ? 'no content type' : contentType.slice(0, 64);
    return ['misconfigured', `wsticket answered GET /v1/events with ${type}, not text/event-stream: is options.url the base URL of wsticket?`];
  }
  if (status === 401) return ['misconfigured', `${what}: the API key is unknown to wsticket (check apiKey)`];
  if (status === 403) {
    return ['misconfigured', `${what}: the API key lacks the redeem or revoke permission (check the client's "can")`];
  }
  if (status === 404) {
    return ['misconfigured', `${what}: is options.url the base URL of wsticket, and is that wsticket recent enough to serve /v1/events?`];
  }
  if (status >= 500) return ['unavailable', what];
  return ['misconfigured', `${what}: is options.url the base URL of wsticket?`];
}

/**
 * @param {unknown} value
 * @param {string} name
 * @param {number} fallback
 * @param {number} max
 */
function durationOption(value, name, fallback, max) {
  const ms = value ?? fallback;
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 1 || ms > max) {
    throw new TypeError(`wsticket-node: options.${name} must be an integer between 1 and ${max}`);
  }
  return ms;
}

/**
 * Closes one connection of a revoked user: 4401, then cut off if the client
 * does not answer the close frame.
 * @param {WebSocket} ws
 */
function closeRevoked(ws) {
  if (ws.readyState === ws.CLOSED) return;
  const timer = setTimeout(() => ws.terminate(), TERMINATE_AFTER_MS);
  timer.unref();
  ws.once('close', () => clearTimeout(timer));
  try {
    ws.close(4401, REVOKED_REASON);
  } catch {
    ws.terminate();
  }
}

/**
 * @typedef {{audience: string | null, beforeMs: number, seenAt: number}} Revocation
 */

/** @extends {EventEmitter<RevocationListenerEvents>} */
class RevocationListener extends EventEmitter {
  #url;
  #authorization;
  #transport;
  #agent;
  #ownAgent;
  #connectTimeoutMs;
  #heartbeatTimeoutMs;
  #delayMs;
  #maxDelayMs;
  #closeOnTicketReused;
  #lastEventId;
  #connected = false;
  #closed = false;
  #failures = 0;
  // Each connection attempt has its number; callbacks of an older one do nothing.
  #attempt = 0;
  /** @type {import('node:http').ClientRequest | undefined} */
  #request;
  /** @type {NodeJS.Timeout | undefined} connect deadline, then heartbeat silence */
  #deadline;
  /** @type {NodeJS.Immediate | undefined} the first attempt */
  #start;
  /** @type {NodeJS.Timeout | undefined} the next attempt */
  #reconnect;
  /** @type {Map<string, Map<WebSocket, Identity>>} */
  #sockets = new Map();
  /** @type {Map<string, Revocation[]>} */
  #recent = new Map();
  /** @type {Array<{userId: string, revocation: Revocation}>} oldest first */
  #recentOrder = [];

  /** @param {import('./index.js').RevocationListenerOptions} options */
  constructor(options) {
    super();
    if (!isObject(options)) throw new TypeError('wsticket-node: options are required');
    this.#url = endpointOf(options.url, '/v1/events');
    if (typeof options.apiKey !== 'string' || !API_KEY_FORM.test(options.apiKey)) {
      throw new TypeError('wsticket-node: options.apiKey must be a wsticket API key (wsk_...)');
    }
    this.#authorization = `Bearer ${options.apiKey}`;
    this.#connectTimeoutMs = durationOption(options.connectTimeoutMs, 'connectTimeoutMs', DEFAULT_CONNECT_TIMEOUT_MS, 600_000);
    this.#heartbeatTimeoutMs = durationOption(options.heartbeatTimeoutMs, 'heartbeatTimeoutMs', DEFAULT_HEARTBEAT_TIMEOUT_MS, 3_600_000);
    this.#delayMs = durationOption(options.reconnectDelayMs, 'reconnectDelayMs', DEFAULT_RECONNECT_DELAY_MS, 600_000);
    this.#maxDelayMs = durationOption(options.maxReconnectDelayMs, 'maxReconnectDelayMs', Math.max(DEFAULT_MAX_RECONNECT_DELAY_MS, this.#delayMs), 600_000);
    if (this.#maxDelayMs < this.#delayMs) {
      throw new TypeError('wsticket-node: options.maxReconnectDelayMs must not be below options.reconnectDelayMs');
    }
    const lastEventId = options.lastEventId ?? '';
    if (typeof lastEventId !== 'string' || (lastEventId !== '' && !HEADER_SAFE.test(lastEventId))) {
      throw new TypeError('wsticket-node: options.lastEventId must be an event id wsticket sent (printable ASCII)');
    }
    this.#lastEventId = lastEventId;
    this.#closeOnTicketReused = options.closeOnTicketReused ?? false;
    if (typeof this.#closeOnTicketReused !== 'boolean') {
      throw new TypeError('wsticket-node: options.closeOnTicketReused must be a boolean');
    }
    const expectedProtocol = this.#url.protocol;
    if (options.agent !== undefined && /** @type {{protocol?: unknown}} */ (options.agent).protocol !== expectedProtocol) {
      throw new TypeError(`wsticket-node: options.agent must be an ${expectedProtocol === 'https:' ? 'https' : 'http'}.Agent for this url`);
    }
    this.#transport = expectedProtocol === 'https:' ? https : http;
    this.#ownAgent = options.agent === undefined;
    this.#agent = options.agent ?? new this.#transport.Agent({ keepAlive: false });
    // After the caller's synchronous code, so that its listeners see the first events.
    this.#start = setImmediate(() => this.#connect());
  }

  get connected() {
    return this.#connected;
  }

  get lastEventId() {
    return this.#lastEventId;
  }

  get tracked() {
    let n = 0;
    for (const sockets of this.#sockets.values()) n += sockets.size;
    return n;
  }

  /**
   * @param {WebSocket} ws
   * @param {Identity} [identity]
   */
  track(ws, identity = ws.wsticket) {
    if (!isObject(identity) || typeof identity.userId !== 'string') {
      throw new TypeError('wsticket-node: track(ws, identity) needs the identity of the connection (or ws.wsticket)');
    }
    if (this.isRevoked(identity)) {
      closeRevoked(ws);
      return false;
    }
    if (this.#closed || ws.readyState !== ws.OPEN) return true;
    let sockets = this.#sockets.get(identity.userId);
    if (sockets === undefined) {
      sockets = new Map();
      this.#sockets.set(identity.userId, sockets);
    }
    if (!sockets.has(ws)) {
      ws.once('close', () => this.#untrack(ws, identity.userId));
    }
    sockets.set(ws, identity);
    return true;
  }

  /** @param {Identity} identity */
  isRevoked(identity) {
    this.#forgetOldRevocations(Date.now());
    const revocations = this.#recent.get(identity.userId);
    if (revocations === undefined) return false;
    const issuedMs = timeOf(identity.issuedAt);
    // An unreadable issuedAt counts as issued before (fail closed).
    return revocations.some((r) => (r.audience === null || r.audience === identity.audience) && !(issuedMs >= r.beforeMs));
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#attempt += 1;
    this.#connected = false;
    clearTimeout(this.#deadline);
    clearImmediate(this.#start);
    clearTimeout(this.#reconnect);
    this.#request?.destroy();
    this.#request = undefined;
    if (this.#ownAgent) this.#agent.destroy();
    this.#sockets.clear();
    this.#recent.clear();
    this.#recentOrder = [];
  }

  /**
   * @param {WebSocket} ws
   * @param {string} userId
   */
  #untrack(ws, userId) {
    const sockets = this.#sockets.get(userId);
    if (sockets === undefined) return;
    sockets.delete(ws);
    if (sockets.size === 0) this.#sockets.delete(userId);
  }

  #connect() {
    if (this.#closed) return;
    const attempt = ++this.#attempt;
    /** @type {Record<string, string>} */
    const headers = {
      accept: 'text/event-stream',
      'cache-control': 'no-store',
      authorization: this.#authorization,
      'user-agent': USER_AGENT,
    };
    if (HEADER_SAFE.test(this.#lastEventId)) headers['last-event-id'] = this.#lastEventId;
    /**
     * @param {ListenerErrorKind} kind
     * @param {string} message
     * @param {{status?: number, problemCode?: string, cause?: unknown}} [details]
     */
    const fail = (kind, message, details) => this.#fail(attempt, kind, message, details);

    /** @type {import('node:http').ClientRequest} */
    let req;
    try {
      req = this.#transport.request(this.#url, { method: 'GET', agent: this.#agent, headers });
    } catch (err) {
      fail('unreachable', 'cannot send GET /v1/events', { cause: err });
      return;
    }
    this.#request = req;
    this.#deadline = setTimeout(() => fail('timeout', `no answer to GET /v1/events within ${this.#connectTimeoutMs} ms`), this.#connectTimeoutMs);
    req.on('error', (err) => {
      const code = isObject(err) && typeof err.code === 'string' ? err.code : 'network error';
      fail('unreachable', `cannot reach wsticket for GET /v1/events: ${code}`, { cause: err });
    });
    req.on('response', (res) => {
      if (attempt !== this.#attempt) {
        res.destroy();
        return;
      }
      const status = res.statusCode ?? 0;
      const contentType = String(res.headers['content-type'] ?? '');
      if (status !== 200 || !/^text\/event-stream\s*(?:;|$)/i.test(contentType)) {
        // A refusal: read its problem `code`, within the connect deadline.
        /** @type {Buffer[]} */
        const chunks = [];
        let size = 0;
        const settle = () => {
          const json = parseJson(Buffer.concat(chunks).toString('utf8'));
          const problemCode = isObject(json) && typeof json.code === 'string' ? json.code.slice(0, 64) : undefined;
          const [kind, message] = classifyEventsAnswer(status, problemCode, contentType);
          fail(kind, message, { status, problemCode });
        };
        res.on('data', (/** @type {Buffer} */ chunk) => {
          size += chunk.length;
          if (size > MAX_PROBLEM_BYTES) settle();
          else chunks.push(chunk);
        });
        res.on('end', settle);
        res.on('error', settle);
        res.on('close', settle);
        return;
      }

      const parser = new EventStreamParser({
        lastEventId: this.#lastEventId,
        onEvent: (event) => {
          if (attempt !== this.#attempt) return;
          this.#lastEventId = event.lastEventId;
          this.#onEvent(event);
        },
        onRetry: (ms) => { this.#delayMs = Math.max(MIN_SERVER_RETRY_MS, ms); },
      });
      clearTimeout(this.#deadline);
      // Any byte (an event, a heartbeat comment) proves the stream alive.
      this.#deadline = setTimeout(
        () => fail('heartbeat_timeout', `nothing received on the event stream for ${this.#heartbeatTimeoutMs} ms`),
        this.#heartbeatTimeoutMs,
      );
      this.#connected = true;
      this.#failures = 0;
      res.setEncoding('utf8');
      res.on('data', (/** @type {string} */ chunk) => {
        if (attempt !== this.#attempt) return;
        this.#deadline?.refresh();
        try {
          parser.push(chunk);
        } catch (err) {
          fail('bad_response', err instanceof Error ? err.message : 'unreadable event stream');
          return;
        }
        // An `id` without data moves the position too.
        if (attempt === this.#attempt) this.#lastEventId = parser.lastEventId;
      });
      res.on('end', () => fail('stream_ended', 'wsticket ended the event stream'));
      res.on('error', (err) => fail('stream_ended', 'the event stream was cut', { cause: err }));
      res.on('close', () => fail('stream_ended', 'the event stream was cut'));
      this.#emitSafely('connect');
    });
    req.end();
  }

  /**
   * Ends the attempt `attempt` (if it is still the current one) and
   * schedules the next.
   * @param {number} attempt
   * @param {ListenerErrorKind} kind
   * @param {string} message
   * @param {{status?: number, problemCode?: string, cause?: unknown}} [details]
   */
  #fail(attempt, kind, message, details = {}) {
    if (attempt !== this.#attempt || this.#closed) return;
    this.#attempt += 1;
    clearTimeout(this.#deadline);
    this.#request?.destroy();
    this.#request = undefined;
    this.#connected = false;
    this.#failures += 1;
    const ceiling = Math.min(this.#maxDelayMs, this.#delayMs * 2 ** Math.min(this.#failures - 1, 30));
    // Between half and all of it, so that many listeners do not reconnect in step.
    const delay = Math.max(1, Math.round(ceiling * (0.5 + Math.random() / 2)));
    this.#reconnect = setTimeout(() => this.#connect(), delay);
    this.#report(new WsticketError(kind, `${message}; reconnecting in ${delay} ms`, details));
  }

  /** @param {WsticketError<ListenerErrorKind>} err */
  #report(err) {
    if (this.listenerCount('error') > 0) {
      this.#emitSafely('error', err);
    } else {
      console.error(`wsticket-node: revocation listener: ${err.kind}: ${err.message}`);
    }
  }

  /**
   * Emits, and throws a listener's exception again outside of the stream
   * handling, which goes on (as in Node, it is then an uncaught exception).
   * @param {keyof RevocationListenerEvents} name
   * @param {...unknown} args
   */
  #emitSafely(name, ...args) {
    try {
      /** @type {EventEmitter} */ (this).emit(name, ...args);
    } catch (err) {
      process.nextTick(() => { throw err; });
    }
  }

  /** @param {string} what */
  #badEvent(what) {
    this.#report(new WsticketError('bad_event', `wsticket sent ${what}; it is ignored`));
  }

  /** @param {EventStreamEvent} event */
  #onEvent(event) {
    const { type, lastEventId } = event;
    if (type !== 'user_revoked' && type !== 'ticket_reused' && type !== 'gap') return; // newer event types
    const json = parseJson(event.data);
    if (!isObject(json)) {
      this.#badEvent(`a ${type} event whose data is not a JSON object`);
      return;
    }
    if (type === 'gap') {
      const detail = typeof json.detail === 'string' ? json.detail : 'events may have been missed';
      if (this.listenerCount('gap') > 0) this.#emitSafely('gap', { detail, lastEventId });
      else console.warn(`wsticket-node: revocation listener: gap: ${detail}`);
      return;
    }
    const { user_id: userId, audience } = json;
    if (typeof userId !== 'string' || userId === '' || (audience !== null && typeof audience !== 'string')) {
      this.#badEvent(`a ${type} event without a user_id and audience`);
      return;
    }
    if (type === 'ticket_reused') {
      const closed = this.#closeOnTicketReused ? this.#closeMatching(userId, audience, Infinity) : 0;
      this.#emitSafely('ticket_reused', { userId, audience, lastEventId, closed });
      return;
    }
    const { before, reason } = json;
    const beforeMs = timeOf(before);
    if (Number.isNaN(beforeMs) || typeof before !== 'string' || typeof reason !== 'string') {
      this.#badEvent('a user_revoked event without an RFC 3339 `before` and a `reason`');
      return;
    }
    this.#remember(userId, { audience, beforeMs, seenAt: Date.now() });
    const closed = this.#closeMatching(userId, audience, beforeMs);
    this.#emitSafely('user_revoked', { userId, audience, before, reason, lastEventId, closed });
  }

  /**
   * Closes the tracked connections of `userId` in `audience` (null: all)
   * whose ticket was issued before `beforeMs`. Returns how many.
   * @param {string} userId
   * @param {string | null} audience
   * @param {number} beforeMs
   */
  #closeMatching(userId, audience, beforeMs) {
    const sockets = this.#sockets.get(userId);
    if (sockets === undefined) return 0;
    let closed = 0;
    for (const [ws, identity] of sockets) {
      if (audience !== null && identity.audience !== audience) continue;
      // A ticket minted after the revocation stays; an unreadable issuedAt does not.
      if (timeOf(identity.issuedAt) >= beforeMs) continue;
      sockets.delete(ws);
      closeRevoked(ws);
      closed += 1;
    }
    if (sockets.size === 0) this.#sockets.delete(userId);
    return closed;
  }

  /**
   * @param {string} userId
   * @param {Revocation} revocation
   */
  #remember(userId, revocation) {
    this.#forgetOldRevocations(revocation.seenAt);
    const list = this.#recent.get(userId);
    if (list === undefined) this.#recent.set(userId, [revocation]);
    else list.push(revocation);
    this.#recentOrder.push({ userId, revocation });
  }

  /** @param {number} now */
  #forgetOldRevocations(now) {
    let n = 0;
    while (n < this.#recentOrder.length && now - this.#recentOrder[n].revocation.seenAt > RECENT_REVOCATION_MS) {
      const { userId, revocation } = this.#recentOrder[n];
      const list = this.#recent.get(userId);
      if (list !== undefined) {
        const kept = list.filter((r) => r !== revocation);
        if (kept.length === 0) this.#recent.delete(userId);
        else this.#recent.set(userId, kept);
      }
      n += 1;
    }
    if (n > 0) this.#recentOrder.splice(0, n);
  }
}

/** @type {typeof import('./index.js').createRevocationListener} */
export const createRevocationListener = (options) => new RevocationListener(options);
