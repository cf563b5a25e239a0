// Fakes for driving WsTicketSocket deterministically: a manual clock, a
// WebSocket the test opens and closes by hand, a fetch that answers from a
// script, and a mint whose answers the test releases one by one.

import { WsTicketSocket } from '../index.js';

/** Lets every pending promise callback run (no real waiting). */
export async function flush() {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

/** setTimeout/clearTimeout on a clock that only moves when told to. */
export class FakeClock {
  now = 0;
  #nextId = 1;
  /** @type {Map<number, {at: number, ms: number, callback: () => void}>} */
  timers = new Map();

  setTimeout = (callback, ms) => {
    const id = this.#nextId++;
    this.timers.set(id, { at: this.now + ms, ms, callback });
    return id;
  };

  clearTimeout = (id) => {
    this.timers.delete(id);
  };

  /** The delays (as asked for) of the timers still pending, soonest first. */
  pending() {
    return [...this.timers.values()].sort((a, b) => a.at - b.at).map((t) => t.ms);
  }

  /** Moves the clock on by `ms`, firing due timers in order, flushing promises after each. */
  async tick(ms) {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.timers.entries()]
        .filter(([, t]) => t.at <= end)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      const [id, timer] = due;
      this.timers.delete(id);
      this.now = timer.at;
      timer.callback();
      await flush();
    }
    this.now = end;
    await flush();
  }
}

/** A WebSocket class whose instances the test drives from the server side. */
export function fakeWebSocketClass() {
  class FakeWebSocket extends EventTarget {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    /** @type {FakeWebSocket[]} */
    static instances = [];

    readyState = 0;
    protocol = '';
    binaryType = 'blob';
    /** @type {unknown[]} */
    sent = [];
    /** @type {Array<[number | undefined, string | undefined]>} */
    closeCalls = [];

    constructor(url, protocols) {
      super();
      this.url = url;
      this.protocols = protocols;
      FakeWebSocket.instances.push(this);
    }

    send(data) {
      if (this.readyState !== 1) throw new Error('fake: send while not open');
      this.sent.push(data);
    }

    close(code, reason) {
      this.closeCalls.push([code, reason]);
      if (this.readyState < 2) this.readyState = 2;
    }

    // -- the server's side --

    serverOpen(protocol = '') {
      this.readyState = 1;
      this.protocol = protocol;
      this.dispatchEvent(new Event('open'));
    }

    serverMessage(data) {
      const event = new Event('message');
      event.data = data;
      this.dispatchEvent(event);
    }

    serverClose(code, reason = '', wasClean = true) {
      this.readyState = 3;
      const event = new Event('close');
      Object.assign(event, { code, reason, wasClean });
      this.dispatchEvent(event);
    }

    /** A network failure: error, then close 1006. */
    fail() {
      this.dispatchEvent(new Event('error'));
      this.serverClose(1006, '', false);
    }
  }
  return FakeWebSocket;
}

/**
 * A mint whose calls stay pending until the test settles them. Records
 * how many were in flight at once.
 */
export function manualMint() {
  /** @type {Array<{resolve: (v: unknown) => void, reject: (e: unknown) => void, signal: AbortSignal}>} */
  const calls = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const mint = ({ signal }) => {
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    return new Promise((resolve, reject) => {
      calls.push({
        resolve: (v) => { inFlight -= 1; resolve(v); },
        reject: (e) => { inFlight -= 1; reject(e); },
        signal,
      });
    });
  };
  return {
    mint,
    calls,
    get inFlight() { return inFlight; },
    get maxInFlight() { return maxInFlight; },
    /** Settles the latest call with a ticket. */
    give(ticket) { calls.at(-1).resolve(ticket); },
    fail(error) { calls.at(-1).reject(error); },
  };
}

/** A mint that answers at once with wst_t_1, wst_t_2, … */
export function countingMint() {
  let n = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const issued = [];
  return {
    issued,
    get maxInFlight() { return maxInFlight; },
    mint: async () => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await null;
      n += 1;
      const ticket = `wst_t_${n}`;
      issued.push(ticket);
      inFlight -= 1;
      return { ticket };
    },
  };
}

/** The ticket a fake WebSocket was opened with, from either carrier. */
export function ticketOf(ws) {
  const fromQuery = new URL(ws.url).searchParams.get('ticket');
  if (fromQuery) return fromQuery;
  const entry = (ws.protocols ?? []).find((p) => p.startsWith('wsticket.'));
  return entry ? entry.slice('wsticket.'.length) : null;
}

/**
 * A socket wired to fakes. `random` defaults to 0.5, so back-off delays
 * are half their ceiling.
 */
export function setup(options = {}, url = 'wss://chat.example.com/ws') {
  const clock = new FakeClock();
  const WebSocket = fakeWebSocketClass();
  const globalTarget = new EventTarget();
  globalTarget.visibilityState = 'visible';
  const counting = options.mint || options.mintUrl ? null : countingMint();
  const socket = new WsTicketSocket(url, {
    WebSocket,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 0.5,
    globalTarget,
    ...(counting ? { mint: counting.mint } : {}),
    ...options,
  });
  /** @type {Array<Record<string, unknown>>} */
  const states = [];
  /** @type {string[]} */
  const log = [];
  socket.addEventListener('state', (e) => {
    states.push({ state: e.state, previous: e.previous, delay: e.delay, code: e.code, status: e.status, error: e.error });
    log.push(e.state);
  });
  socket.addEventListener('open', () => log.push('event:open'));
  socket.addEventListener('close', (e) => log.push(`event:close:${e.code}`));
  const sockets = WebSocket.instances;
  return {
    socket,
    clock,
    WebSocket,
    sockets,
    globalTarget,
    counting,
    states,
    log,
    /** The newest fake WebSocket. */
    get ws() { return sockets.at(-1); },
    lastState() { return states.at(-1); },
    wake(type) { globalTarget.dispatchEvent(new Event(type)); },
  };
}
