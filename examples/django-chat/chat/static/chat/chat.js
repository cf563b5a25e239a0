// The chat page: one WsTicketSocket that mints a ticket through the Django
// view before every connect, and carries it in a subprotocol entry.
import { WsTicketSocket } from 'wsticket-client';

const { mintUrl, wsPath, protocol } = document.body.dataset;
const $ = (id) => document.getElementById(id);

/** Django's CSRF token, read at each mint: it changes when the user signs in again. */
function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : '';
}

const url = new URL(wsPath, location.href);
url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';

const socket = new WsTicketSocket(url, {
  // Our own view (wsticket_channels.views.mint_ticket): same origin, so the
  // session cookie goes along; it mints for the signed-in user and this
  // page's Origin.
  mintUrl,
  mintHeaders: () => ({ 'X-CSRFToken': csrfToken() }),
  // The app's protocol. The client offers ['chat.v1', 'wsticket.<ticket>']
  // (carrier: 'subprotocol' is the default), and the server selects chat.v1.
  protocols: [protocol],
});

// Everything the socket reports, for the page, for DevTools
// (`chat.events` in the console) and for the end-to-end test.
// None of it holds a ticket: wsticket-client never reports one.
const events = [];
const messages = [];
window.chat = { socket, events, messages };

function record(entry) {
  entry.at = Math.round(performance.now());
  events.push(entry);
  if (entry.kind === 'state' && entry.state === 'open') return; // the 'open' line says it
  const item = document.createElement('li');
  item.textContent = describe(entry);
  $('log').prepend(item);
}

function describe(e) {
  const seconds = (e.at / 1000).toFixed(1).padStart(6);
  switch (e.kind) {
    case 'open':
      return `${seconds}s  open, subprotocol ${e.protocol || '(none)'}`;
    case 'close':
      return `${seconds}s  closed by the server: ${e.code}${e.reason ? ` (${e.reason})` : ''}`;
    default: {
      const why = [
        e.code !== undefined && `close code ${e.code}`,
        e.status !== undefined && `mint answered ${e.status}`,
        e.problem && e.problem,
        e.delay !== undefined && `retry in ${(e.delay / 1000).toFixed(1)} s`,
        e.error && !e.status && e.error,
      ].filter(Boolean).join(', ');
      const what = e.state === 'connecting' ? 'connecting: minting a ticket' : e.state;
      return `${seconds}s  ${what}${why ? ` (${why})` : ''}`;
    }
  }
}

const explanations = {
  connecting: 'Minting a ticket, then connecting…',
  open: '',
  backoff: 'Not connected: retrying with a new ticket.',
  unauthenticated: 'Your session has ended: sign in again.',
  denied: 'This page may not open the chat: its origin (or audience) is not allowed.',
  closed: 'Closed.',
};

/** Buttons that only make sense in some states. */
function enableControls(state) {
  $('send').querySelector('button').disabled = state !== 'open';
  $('drop').disabled = state !== 'open';
  $('reconnect').disabled = !['backoff', 'unauthenticated', 'denied'].includes(state);
}
enableControls(socket.state);

socket.addEventListener('state', (event) => {
  enableControls(event.state);
  record({
    kind: 'state',
    state: event.state,
    previous: event.previous,
    code: event.code,
    status: event.status,
    problem: event.error?.code,
    delay: event.delay === undefined ? undefined : Math.round(event.delay),
    error: event.error ? String(event.error.message ?? event.error) : undefined,
  });
  $('state').textContent = event.state;
  $('state').dataset.state = event.state;
  $('protocol').textContent = socket.protocol || 'none';
  if (event.state !== 'open') $('connection').textContent = 'none';
  $('notice').textContent = explanations[event.state] ?? '';
  if (event.state === 'unauthenticated') {
    $('notice').innerHTML = 'Your session has ended: <a href="/login/?next=/">sign in again</a>.';
  }
});
socket.addEventListener('open', () => record({ kind: 'open', protocol: socket.protocol }));
socket.addEventListener('close', (event) => {
  record({ kind: 'close', code: event.code, reason: event.reason, wasClean: event.wasClean });
});
socket.addEventListener('message', (event) => {
  let message;
  try {
    message = JSON.parse(event.data);
  } catch {
    return;
  }
  messages.push(message);
  if (message.type === 'hello') {
    $('connection').textContent = message.connection;
    return;
  }
  show(message);
});

function show(message) {
  const item = document.createElement('li');
  if (message.type === 'message') {
    const who = document.createElement('strong');
    who.textContent = message.user;
    item.append(who, ': ', message.text);
  } else if (message.type === 'presence') {
    item.className = 'presence';
    item.textContent = `${message.user} ${message.event}`;
  } else if (message.type === 'error') {
    item.className = 'error';
    item.textContent = `server: ${message.detail}`;
  } else {
    return;
  }
  $('messages').append(item);
  item.scrollIntoView({ block: 'nearest' });
}

$('origin').textContent = location.origin;

$('send').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('text').value.trim();
  if (!text) return;
  // send() is false, and sends nothing, while not connected: nothing is queued.
  if (socket.send(JSON.stringify({ type: 'message', text }))) {
    $('text').value = '';
  } else {
    $('notice').textContent = 'Not connected: your message was not sent.';
  }
});
$('drop').addEventListener('click', () => socket.send(JSON.stringify({ type: 'drop' })));
$('reconnect').addEventListener('click', () => socket.reconnect());
