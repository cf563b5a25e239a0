// wsticket-node: authenticate `ws` upgrades with wsticket tickets.
//
// Nothing here logs or reports a ticket, an API key or a URL with its query
// string. The only output of the module is the `onError` callback (by
// default one line on console.error), whose messages are written here.

import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';

/** @typedef {import('./index.js').Identity} Identity */
/** @typedef {import('./index.js').AuthResult} AuthResult */
/** @typedef {import('./index.js').AuthFailure} AuthFailure */
/** @typedef {import('./index.js').ErrorKind} ErrorKind */
/** @typedef {import('./index.js').UnauthorizedReason} UnauthorizedReason */
/** @typedef {import('./index.js').ForbiddenReason} ForbiddenReason */
/** @typedef {import('./index.js').Authenticator} Authenticator */
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

export class WsticketError extends Error {
  /**
   * @param {ErrorKind} kind
   * @param {string} message
   * @param {{status?: number, problemCode?: string, requestId?: string, cause?: unknown}} [details]
   */
  constructor(kind, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'WsticketError';
    /** @type {ErrorKind} */
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
  return randomBytes(16).toString('hex');
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
 * @param {string | URL} url
 * @returns {URL}
 */
function redeemUrlOf(url) {
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
  return new URL(base.pathname.replace(/\/+$/, '') + '/v1/tickets/redeem', base);
}

/**
 * @typedef {{status: number, body: string} | {error: 'timeout' | 'unreachable' | 'too_large', cause?: unknown}} Answer
 */

/**
 * One POST, never retried. Resolves with the answer or with why there is none.
 * @param {URL} url
 * @param {import('node:http').Agent} agent
 * @param {Record<string, string>} headers
 * @param {string} body
 * @param {number} timeoutMs
 * @returns {Promise<Answer>}
 */
function post(url, agent, headers, body, timeoutMs) {
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

    const transport = url.protocol === 'https:' ? https : http;
    /** @type {import('node:http').ClientRequest} */
    let req;
    try {
      req = transport.request(url, { method: 'POST', agent, headers }, onResponse);
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
  const redeemUrl = redeemUrlOf(options.url);
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
  const expectedProtocol = redeemUrl.protocol;
  if (options.agent !== undefined && /** @type {{protocol?: unknown}} */ (options.agent).protocol !== expectedProtocol) {
    throw new TypeError(`wsticket-node: options.agent must be an ${expectedProtocol === 'https:' ? 'https' : 'http'}.Agent for this url`);
  }
  const ownAgent = options.agent === undefined;
  const transport = redeemUrl.protocol === 'https:' ? https : http;
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

    const body = JSON.stringify({ ticket, origin });
    const answer = await post(redeemUrl, agent, {
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
  const { filter, onRefused } = options;

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

    if (!result.ok) {
      const { code, reason, requestId } = result;
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
    const { identity } = result;
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.wsticket = identity;
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
