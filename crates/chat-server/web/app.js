// The chat's web page. It speaks the server's native line protocol (docs/protocol.md)
// over one WebSocket at /ws: each WebSocket text message is one protocol line without
// its newline, in both directions.
//
// Reading order:
//   1. constants, DOM handles, small helpers
//   2. views: one per room or private conversation, each with its own message log
//   3. the message log: elements ordered by event id, pinned to the bottom, unread marker
//   4. the connection: handshake, keepalive, reconnection with backoff and jitter
//   5. frames from the server: one handler per verb
//   6. lines from the user: /commands as in the terminal client
//   7. wiring of forms, buttons and scrolling
//
// Text from the server (messages, reasons, errors) is only ever put in the page with
// textContent, never as HTML.
'use strict';

// ---- 1. Constants, DOM handles, helpers -------------------------------------------

const MAX_LINE = 4096;          // bytes in a client line (the server's --max-line default)
const PAGE = 50;                // messages per /history page when scrolling up
const GAP_PAGE = 500;           // messages per /history page when filling a gap
const KEEPALIVE_MS = 30000;     // send /ping after this long without sending anything
const DEAD_MS = 30000;          // ...and give up on the socket after this long unanswered
const BACKOFF_FIRST_MS = 500;   // first wait before reconnecting, doubling...
const BACKOFF_MAX_MS = 30000;   // ...up to this
const STABLE_MS = 30000;        // a connection that lasted this long resets the backoff

const $ = (id) => document.getElementById(id);
const ui = {
  login: $('login'), nickForm: $('nick-form'), nickInput: $('nick-input'),
  passwordInput: $('password-input'), loginError: $('login-error'),
  chat: $('chat'), title: $('room-title'), topic: $('room-topic'), status: $('status'), retry: $('retry'),
  part: $('part-button'), rooms: $('rooms'), joinForm: $('join-form'),
  joinInput: $('join-input'), messages: $('messages'), inputForm: $('input-form'),
  input: $('input'), members: $('members'), memberCount: $('member-count'),
};

// A new element with classes and, optionally, text (always as text, never as HTML).
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Names compare case-insensitively with ASCII folding, as on the server.
const fold = (name) => name.replace(/[A-Z]/g, (c) => c.toLowerCase());

// The nickname colours of the terminal client (crates/chat-client/src/render.rs): FNV-1a
// of the folded nickname picks one of twelve ANSI colours; style.css maps each SGR code
// (class nc-31 ... nc-96) to a colour readable on the page's background.
const NICK_COLORS = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];
function nickClass(nick) {
  let hash = 0x811c9dc5;
  for (const c of fold(nick)) hash = Math.imul(hash ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return 'nc-' + NICK_COLORS[hash % NICK_COLORS.length];
}

// The first character the server refuses in text (chat_proto::text::first_forbidden):
// C0 controls but tab, DEL, C1 controls, bidirectional embeddings/overrides and isolates.
const FORBIDDEN = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

const byteLength = (text) => new TextEncoder().encode(text).length;
const pad = (n) => String(n).padStart(2, '0');
const isLoopback = ['localhost', '127.0.0.1', '[::1]'].includes(location.hostname);
// Passwords only cross HTTPS or loopback, as the terminal client's /register rule.
const secure = location.protocol === 'https:' || isLoopback;

// "HH:MM" in local time, with the date when it is not today.
function shortTime(date) {
  const hm = pad(date.getHours()) + ':' + pad(date.getMinutes());
  if (date.toDateString() === new Date().toDateString()) return hm;
  return date.getFullYear() + '-' + pad(date.getMonth() + 1) + '-' + pad(date.getDate()) + ' ' + hm;
}

// ---- 2. Views ----------------------------------------------------------------------

// One view per room we are in and per private conversation, keyed by folded name.
const views = new Map();
let active = null;              // the view on screen

const state = {
  ws: null,                     // the WebSocket, while one is open or opening
  phase: 'out',                 // 'out' | 'handshake' | 'chat'
  nick: '',                     // the nickname we ask for (and reconnect with)
  password: '',                 // its password, kept in memory for reconnecting
  pendingPassword: null,        // the password of a /register or /password in flight
  waitingFor: null,             // 'nick' | 'pass': a prompt the user has to answer
  me: '',                       // our nickname as the server spells it
  current: null,                // the room bare lines go to, as the server says
  quitting: false,              // the user typed /quit: do not reconnect
  reconnecting: false,          // this connection replaces one that dropped
  retry: 0, retryTimer: null,   // reconnection attempts in a row, and the next one
  connectedAt: 0, lastSent: 0, lastReceived: 0, pingSent: 0,
  nickSubmitted: false,         // the sign-in form was sent: answer the next NICK
  bye: null,                    // the reason of the server's BYE, before the close
  rejoin: [],                   // rooms (names) to join again after reconnecting
  rejoinCurrent: null,
  batch: null,                  // HISTORY frames of the batch being received
  previous: null,               // the frame before this one (to group MEMBERS frames)
  membersSilent: false,         // the MEMBERS frames being received are not shown
  silentWho: new Set(),         // rooms whose /who reply the page asked for itself
  history: [], historyAt: 0,    // lines typed, for the up and down arrows
  early: [],                    // notices from before the first room (ACCOUNT)
};

function view(name, kind) {
  const key = fold(name);
  let v = views.get(key);
  if (!v) {
    v = {
      key, name, kind,           // kind: 'room' or 'query' (a private conversation)
      joined: false,
      members: new Map(),        // folded nick -> { nick, op, voice } (see member())
      membersBefore: new Map(),  // the list a MEMBERS reply is replacing
      topic: '',                 // the room's topic (TOPIC, TOPICIS), shown in the header
      log: el('div', 'log hidden'),
      item: el('li', 'room ' + kind),
      ids: new Set(), oldest: 0n, newest: 0n, lastKey: 0n,
      pinned: true, scrollTop: 0,
      unread: 0, marker: null,
      loading: false, complete: false,   // paging back through history...
      loadingFrom: 0n, olderAdded: 0,    // ...from this id; what the page brought;
      loadFailed: false,                 // whether it was refused
      gapFrom: 0n, gapLow: 0n,           // filling the gap after reconnecting: ids
      gapCount: 0, gapFull: false,       // between these, how many, more to ask
    };
    v.log.dataset.view = name;
    const label = el('span', 'room-name', kind === 'query' ? '@' + name : name);
    v.item.append(label, el('span', 'unread-count'));
    v.item.dataset.name = name;
    v.item.tabIndex = 0;
    v.item.addEventListener('click', () => show(v, true));
    v.item.addEventListener('keydown', (e) => { if (e.key === 'Enter') show(v, true); });
    views.set(key, v);
    ui.messages.append(v.log);
    ui.rooms.append(v.item);
  }
  v.name = name;
  v.item.firstChild.textContent = kind === 'query' ? '@' + name : name;
  return v;
}

// Removes `v`; if it was on screen, shows `next`, else the current room, else any.
function dropView(v, next) {
  views.delete(v.key);
  v.log.remove();
  v.item.remove();
  if (active === v) {
    active = null;
    next = next || (state.current && views.get(fold(state.current))) || views.values().next().value;
    if (next) show(next, false);
    else renderHeader();
  }
}

// Puts `v` on screen. `tellServer`: also make it the server's current room, so that
// bare lines typed now go there (the server reads our lines in order).
function show(v, tellServer) {
  if (active && active !== v) {
    active.scrollTop = ui.messages.scrollTop;
    active.log.classList.add('hidden');
    active.item.classList.remove('active');
  }
  active = v;
  v.log.classList.remove('hidden');
  v.item.classList.add('active');
  ui.messages.scrollTop = v.pinned ? ui.messages.scrollHeight : v.scrollTop;
  if (v.marker && v.unread > 0) v.marker.scrollIntoView({ block: 'center' });
  markRead(v);
  renderHeader();
  renderMembers();
  document.body.classList.remove('rooms-open', 'members-open');
  if (tellServer && v.kind === 'room' && v.joined && fold(state.current || '') !== v.key) {
    send('/join ' + v.name);
  }
  if (tellServer) fillScreen();
}

function renderHeader() {
  ui.title.textContent = active ? (active.kind === 'query' ? '@' + active.name : active.name) : '';
  ui.topic.textContent = active ? active.topic : '';
  ui.topic.title = ui.topic.textContent;
  ui.part.textContent = active && active.kind === 'query' ? 'Close' : 'Leave';
  ui.part.disabled = !active;
}

// Operators first, then voiced members, then the others; by name within each.
function renderMembers() {
  ui.members.replaceChildren();
  const v = active;
  if (!v || v.kind !== 'room') { ui.memberCount.textContent = ''; return; }
  const rank = (m) => (m.op ? 0 : m.voice ? 1 : 2);
  const members = [...v.members.values()]
    .sort((a, b) => rank(a) - rank(b) || (fold(a.nick) < fold(b.nick) ? -1 : 1));
  for (const { nick, op, voice } of members) {
    // The @ or + is drawn by style.css from the class: the text stays the nickname.
    const li = el('li', 'member nick ' + nickClass(nick), nick);
    if (op) li.classList.add('op');
    else if (voice) li.classList.add('voice');
    li.dataset.status = op ? '@' : voice ? '+' : '';
    if (fold(nick) === fold(state.me)) li.classList.add('me');
    li.title = (op ? 'Room operator. ' : voice ? 'Voiced. ' : '') + 'Send ' + nick + ' a private message';
    li.addEventListener('click', () => { ui.input.value = '/msg ' + nick + ' '; ui.input.focus(); });
    ui.members.append(li);
  }
  ui.memberCount.textContent = members.length ? '(' + members.length + ')' : '';
}

function renderUnread(v) {
  v.item.lastChild.textContent = v.unread ? String(v.unread) : '';
  v.item.classList.toggle('has-unread', v.unread > 0);
  let total = 0;
  for (const each of views.values()) total += each.unread;
  document.title = (total ? '(' + total + ') ' : '') + 'chat';
  $('rooms-toggle').textContent = total ? 'Rooms (' + total + ')' : 'Rooms';
}

function markRead(v) {
  if (v.unread === 0) return;
  v.unread = 0;
  renderUnread(v);
}

// ---- 3. The message log ------------------------------------------------------------
//
// Every element of a log has a sort key: an event's id times two; a local notice and
// the unread marker get odd keys, so they sit between events. Inserting by key puts
// history above, live events below and a refilled gap in the middle, all from the
// same code.

// Inserts `node` with `key` into `v`'s log (after anything with the same key).
function place(v, node, key) {
  node.sortKey = key;
  let after = v.log.lastChild;
  while (after && after.sortKey > key) after = after.previousSibling;
  if (after) after.after(node); else v.log.prepend(node);
  if (key > v.lastKey) v.lastKey = key;
}

// Runs `change` on `v`'s log, keeping what the user looks at in place: at the bottom
// when the view is pinned there, else on the same first visible line.
// Inside a change (a batch of history), the lines it adds are not measured one by one.
function keepScroll(v, change) {
  if (v !== active || keepScroll.busy) return change();
  const box = ui.messages;
  v.pinned = isPinned();
  let anchor = null;
  let anchorTop = 0;
  if (!v.pinned) {
    for (const child of v.log.children) {
      if (child.offsetTop + child.offsetHeight > box.scrollTop) { anchor = child; break; }
    }
    if (anchor) anchorTop = anchor.offsetTop;
  }
  keepScroll.busy = true;
  try { change(); } finally { keepScroll.busy = false; }
  if (v.pinned) box.scrollTop = box.scrollHeight;
  else if (anchor) box.scrollTop += anchor.offsetTop - anchorTop;
}

// Whether the log on screen is scrolled to its bottom (or does not fill the screen).
function isPinned() {
  const box = ui.messages;
  return box.scrollHeight - box.scrollTop - box.clientHeight < 30;
}

function timeElement(iso) {
  const date = new Date(iso);
  const time = el('time', 'time', shortTime(date));
  time.dateTime = iso;
  time.title = date.toLocaleString();
  return time;
}

function nickElement(nick) {
  const span = el('span', 'nick ' + nickClass(nick), nick);
  if (fold(nick) === fold(state.me)) span.classList.add('me');
  return span;
}

// An event with an id: a message, an action, or a join/part/quit/rename line.
// Returns whether it was new (not already shown).
function addEvent(v, { id, time, kind, nick, text, history }) {
  const num = BigInt(id);
  if (v.ids.has(id)) return false;
  v.ids.add(id);
  if (v.oldest === 0n || num < v.oldest) v.oldest = num;
  if (num > v.newest) v.newest = num;

  const line = el('div', kind === 'message' || kind === 'action' ? 'message' : 'event ' + kind);
  line.dataset.id = id;
  line.append(timeElement(time), ' ');
  if (kind === 'message') {
    line.append(nickElement(nick), ' ', el('span', 'text', text));
  } else if (kind === 'action') {
    line.classList.add('action');
    line.append('* ', nickElement(nick), ' ', el('span', 'text', text));
  } else {
    line.append(el('span', 'text', text));
  }
  if (history) line.classList.add('history');
  const mine = nick && fold(nick) === fold(state.me);
  if (mine && (kind === 'message' || kind === 'action')) line.classList.add('mine');
  if (!mine && text && (kind === 'message' || kind === 'action') && mentions(text, state.me)) {
    line.classList.add('mention');
  }
  keepScroll(v, () => {
    place(v, line, num * 2n);
    // A message from someone else that the user has not seen: count it, and mark
    // where the unread messages start.
    const unseen = v !== active || document.hidden || !v.pinned;
    if (!history && !mine && (kind === 'message' || kind === 'action') && unseen) {
      if (v.unread === 0) {
        if (v.marker) v.marker.remove();
        v.marker = el('div', 'unread-marker');
        v.marker.append(el('span', '', 'new messages'));
        place(v, v.marker, num * 2n - 1n);
      }
      v.unread += 1;
      renderUnread(v);
    }
  });
  return true;
}

// A line of the page's own (a notice, an error, a command's reply), with no id.
// `key` places it; by default after everything shown so far. `extra`: an element put
// after the text (a button).
function notice(v, className, text, key, extra) {
  v = v || active;
  if (!v && state.phase === 'chat') {
    // In no room (yet): shown in the header, and in the first room joined.
    state.early.push([className, text]);
    setStatus(text, className === 'error' ? 'offline' : '');
    return;
  }
  if (!v) { ui.loginError.textContent = text; return; }
  const line = el('div', className, text);
  if (extra) line.append(extra);
  keepScroll(v, () => place(v, line, key === undefined ? v.lastKey | 1n : key));
}

// Whether `text` names `nick` as a word of its own (render.rs's `mentions`).
function mentions(text, nick) {
  if (!nick) return false;
  const word = /[A-Za-z0-9\-[\]\\`_^{|}]/;
  const lower = fold(text);
  const want = fold(nick);
  for (let at = lower.indexOf(want); at >= 0; at = lower.indexOf(want, at + 1)) {
    const before = lower[at - 1];
    const after = lower[at + want.length];
    if (!(before && word.test(before)) && !(after && word.test(after))) return true;
  }
  return false;
}

// Asks for the page of history before the oldest event shown, when the user has
// scrolled to the top (or the log does not fill the screen yet), then for a marker
// PONG that comes after the page.
function loadOlder(v) {
  if (!v || v.kind !== 'room' || !v.joined || v.loading || v.complete || state.phase !== 'chat') return;
  v.loading = true;
  v.loadingFrom = v.oldest;
  v.olderAdded = 0;
  notice(v, 'event loading', 'Loading older messages…', v.oldest * 2n - 1n);
  send('/history ' + v.name + ' ' + PAGE + ' ' + v.oldest);
  send('/ping page older ' + v.name);
}

function fillScreen() {
  const box = ui.messages;
  if (active && box.scrollHeight <= box.clientHeight + 1) loadOlder(active);
}

// ---- 4. The connection -------------------------------------------------------------

function wsUrl() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}

function connect() {
  clearTimeout(state.retryTimer);
  state.retryTimer = null;
  ui.retry.classList.add('hidden');
  const ws = new WebSocket(wsUrl());
  state.ws = ws;
  state.phase = 'handshake';
  state.waitingFor = null;
  state.batch = null;
  state.previous = null;
  setStatus(state.reconnecting ? 'Reconnecting…' : 'Connecting…');
  ws.addEventListener('message', (e) => {
    if (ws !== state.ws) return;
    state.lastReceived = Date.now();
    if (typeof e.data === 'string') handleFrame(e.data);
  });
  ws.addEventListener('close', () => { if (ws === state.ws) closed(); });
}

// Sends one protocol line. Never a line with a newline inside: the server would close
// the socket (the callers split or refuse such input).
function send(line) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
  if (/[\r\n]/.test(line)) throw new Error('a protocol line cannot hold a newline');
  state.ws.send(line);
  state.lastSent = Date.now();
  return true;
}

function setStatus(text, className) {
  ui.status.textContent = text;
  ui.status.className = className || '';
}

// Gives up on the socket at once (a dead peer may take long to confirm a close).
function abandon() {
  if (!state.ws) return;
  state.ws.close();
  closed();
}

function closed() {
  const wasChat = state.phase === 'chat';
  const bye = state.bye;
  state.ws = null;
  state.bye = null;
  state.phase = 'out';
  state.waitingFor = null;
  if (state.quitting) {
    state.quitting = false;
    showLogin('You left the chat' + (bye ? ': ' + bye : '.'));
  } else if (wasChat || state.reconnecting) {
    // A session dropped: remember where we were, then try again.
    if (wasChat) {
      state.reconnecting = true;
      if (Date.now() - state.connectedAt > STABLE_MS) state.retry = 0;
      const rooms = [...views.values()].filter((v) => v.kind === 'room');
      state.rejoin = rooms.map((v) => v.name);
      state.rejoinCurrent = state.current;
      for (const v of rooms) {
        v.joined = false;
        v.loading = false;
        if (v.gapFrom === 0n) v.gapFrom = v.newest;
        notice(v, 'event disconnected', 'Connection lost' + (bye ? ' (' + bye + ')' : '') + '.');
      }
    }
    scheduleReconnect(bye);
  } else {
    // The first connection failed, or ended during sign-in.
    showLogin(bye ? 'The server closed the connection: ' + bye : 'Could not reach the server. Try again.');
  }
}

// Waits with exponential backoff and jitter (a random 50–100 % of the step), so that
// the pages of a restarted server do not all come back at the same instant.
function scheduleReconnect(reason) {
  const step = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.retry);
  const delay = Math.round(step * (0.5 + Math.random() / 2));
  state.retry += 1;
  state.retryTimer = setTimeout(connect, delay);
  ui.retry.classList.remove('hidden');
  const why = reason ? 'Disconnected (' + reason + '). ' : 'Disconnected. ';
  setStatus(why + 'Reconnecting in ' + Math.ceil(delay / 1000) + ' s…', 'offline');
}

function reconnectNow() {
  if (state.retryTimer) connect();
}

// Keepalive: a native /ping when we have sent nothing for a while, so that proxies and
// an idle timeout do not end the connection; a socket silent for too long after that
// is taken as dead (closed), which starts a reconnection.
setInterval(() => {
  if (state.phase !== 'chat') return;
  const now = Date.now();
  if (state.pingSent && state.lastReceived < state.pingSent && now - state.pingSent > DEAD_MS) {
    state.pingSent = 0;
    abandon();
    return;
  }
  if (now - state.lastSent > KEEPALIVE_MS) {
    state.pingSent = now;
    send('/ping keepalive');
  }
}, 5000);

window.addEventListener('online', reconnectNow);

// Shows the sign-in form, with why.
function showLogin(message) {
  setStatus('');
  ui.retry.classList.add('hidden');
  ui.chat.classList.add('hidden');
  ui.login.classList.remove('hidden');
  ui.loginError.textContent = message || '';
  enableLogin();
  ui.nickInput.focus();
}

function enableLogin() {
  ui.nickForm.querySelector('button').disabled = false;
}

// ---- 5. Frames from the server -----------------------------------------------------
//
// A frame is `VERB params... [:trailing]`: the trailing text starts after the first
// " :" (docs/protocol.md, §5). HISTORY is followed by a whole event frame; a batch of
// them ends with HISTORYEND.

function parse(line) {
  const cut = line.indexOf(' :');
  const head = cut >= 0 ? line.slice(0, cut) : line;
  const trailing = cut >= 0 ? line.slice(cut + 2) : null;
  const [verb, ...params] = head.split(' ');
  return { verb, params, trailing };
}

function handleFrame(line) {
  if (line.startsWith('HISTORY ')) {
    (state.batch = state.batch || []).push(parse(line.slice('HISTORY '.length)));
    return;
  }
  const frame = parse(line);
  const previous = state.previous;
  state.previous = frame;
  const handler = handlers[frame.verb];
  if (handler) handler(frame.params, frame.trailing, previous);
  else notice(null, 'event unknown', '?? ' + line);
}

const isMe = (nick) => fold(nick) === fold(state.me);

// A member of a room: its nickname, and operator status and voice as two flags, as IRC
// and the server keep them (taking @ from a voiced operator leaves it voiced).
// `word` is as MEMBERS writes it: `@alice`, `+bob` or `carol`.
function member(word) {
  const op = word.startsWith('@');
  const voice = word.startsWith('+');
  return { nick: op || voice ? word.slice(1) : word, op, voice };
}

// The changes of a MODE event, IRC style: flags, then their arguments in order
// (`+ov-b alice bob mask`). o, v and b take an argument either way, k and l only when
// set; the others none (the terminal client's state.rs, mode_changes).
function modeChanges(changes) {
  const [flags = '', ...args] = changes.split(' ').filter((w) => w !== '');
  const out = [];
  let give = true;
  for (const flag of flags) {
    if (flag === '+' || flag === '-') give = flag === '+';
    else if ('ovb'.includes(flag) || (give && 'kl'.includes(flag))) out.push([give, flag, args.shift()]);
    else out.push([give, flag, undefined]);
  }
  return out;
}

// A message or action of a room, live or from history.
function roomMessage(verb, [room, nick, time, id], text, history) {
  const v = views.get(fold(room));
  const kind = verb === 'ACTION' ? 'action' : 'message';
  if (v) return addEvent(v, { id, time, kind, nick, text, history });
  // History of a room we are not in (the user typed /history #room): shown as notices.
  notice(null, 'event history', room + ' ' + shortTime(new Date(time)) + (kind === 'action' ? ' * ' : ' <') + nick + (kind === 'action' ? ' ' : '> ') + text);
  return false;
}

// A private message: shown in the conversation with the other party.
function privateMessage([from, to, time, id], text, history) {
  const v = view(isMe(from) ? to : from, 'query');
  return addEvent(v, { id, time, kind: 'message', nick: from, text, history });
}

// A join, part, quit or rename of someone else: in the room's log and member list.
function presence(room, id, time, kind, text, change) {
  const v = views.get(fold(room));
  if (!v) return;
  change(v.members);
  if (v === active) renderMembers();
  addEvent(v, { id, time, kind, text });
}

const handlers = {
  NICK() {
    if (state.reconnecting) send(state.nick);
    else if (state.nickSubmitted) { state.nickSubmitted = false; send(state.nick); }
    else { state.waitingFor = 'nick'; enableLogin(); }
  },
  PASS() {
    if (state.password) { send(state.password); return; }
    state.reconnecting = false;
    state.waitingFor = 'pass';
    showLogin(state.nick + ' is registered: give its password.');
    ui.passwordInput.focus();
  },
  WELCOME([nick]) {
    if (!state.reconnecting) {
      // A new sign-in: forget the rooms of any earlier session.
      for (const v of [...views.values()]) dropView(v);
    }
    state.phase = 'chat';
    state.me = nick;
    state.connectedAt = state.lastReceived = Date.now();
    state.pingSent = 0;
    ui.login.classList.add('hidden');
    ui.chat.classList.remove('hidden');
    try { localStorage.setItem('chat.nick', nick); } catch (e) { /* storage off */ }
    if (state.reconnecting) {
      rejoin();
    } else {
      setStatus('Connected as ' + nick, 'online');
      ui.input.focus();
    }
  },
  ACCOUNT([nick, status]) {
    if ((status === 'registered' || status === 'password-changed') && state.pendingPassword !== null) {
      state.password = state.pendingPassword;
    }
    state.pendingPassword = null;
    const what = { registered: 'is now registered to you', 'password-changed': 'has a new password',
      identified: 'is yours: password accepted' }[status] || status;
    notice(null, 'event account', nick + ' ' + what);
  },
  JOIN([room, nick, time, id]) {
    if (!isMe(nick)) {
      presence(room, id, time, 'join', nick + ' joined', (m) => m.set(fold(nick), member(nick)));
      return;
    }
    const v = view(room, 'room');
    v.joined = true;
    v.complete = false;
    v.members.clear();
    if (v.gapFrom > 0n) {
      // Back after a drop: say so, and ask for what was said in between.
      notice(v, 'event reconnected', 'Reconnected: back in ' + room + '.', BigInt(id) * 2n - 1n);
      v.gapLow = BigInt(id);
      v.gapFull = false;
      askGap(v);
    }
    addEvent(v, { id, time, kind: 'join', text: 'you joined ' + room });
    if (!active) show(v, false);
    for (const [className, text] of state.early.splice(0)) notice(v, className, text);
  },
  PART([room, nick, time, id], reason) {
    if (!isMe(nick)) {
      const why = reason ? ' (' + reason + ')' : '';
      presence(room, id, time, 'part', nick + ' left' + why, (m) => m.delete(fold(nick)));
      return;
    }
    const v = views.get(fold(room));
    if (v) dropView(v);
  },
  QUIT([room, nick, time, id], reason) {
    presence(room, id, time, 'quit', nick + ' quit (' + reason + ')', (m) => m.delete(fold(nick)));
  },
  RENAME([room, old, now, time, id]) {
    if (isMe(old)) {
      state.me = now;
      setStatus('Connected as ' + now, 'online');
    }
    if (fold(old) === fold(state.nick)) state.nick = now;
    if (room === '*') notice(null, 'event rename', old + ' is now known as ' + now);
    else presence(room, id, time, 'rename', old + ' is now known as ' + now, (m) => {
      // A new name, the same standing.
      const was = m.get(fold(old)) || member(now);
      m.delete(fold(old));
      m.set(fold(now), { ...was, nick: now });
    });
  },
  MSG(p, text) { roomMessage('MSG', p, text, false); },
  ACTION(p, text) { roomMessage('ACTION', p, text, false); },
  PRIVMSG(p, text) { privateMessage(p, text, false); },
  // The end of a batch of HISTORY frames (after a join, or for a /history).
  HISTORYEND([target]) {
    const batch = state.batch || [];
    state.batch = null;
    const v = views.get(fold(target)) || (target.startsWith('#') ? null : view(target, 'query'));
    const insert = () => {
      for (const e of batch) {
        const added = e.verb === 'PRIVMSG' ? privateMessage(e.params, e.trailing, true)
          : roomMessage(e.verb, e.params, e.trailing, true);
        const id = BigInt(e.params[3]);
        if (!v || !added) continue;
        if (v.loading && id < v.loadingFrom) v.olderAdded += 1;
        if (v.gapFrom > 0n && id > v.gapFrom) v.gapCount += 1;
      }
      if (v && v.gapFrom > 0n) {
        const ids = batch.map((e) => BigInt(e.params[3])).filter((id) => id > v.gapFrom);
        for (const id of ids) if (id < v.gapLow) v.gapLow = id;
        if (batch.length >= GAP_PAGE) v.gapFull = true;
      }
    };
    if (v) keepScroll(v, insert); else insert();
    if (v && v === active) fillScreen();
  },
  MEMBERS([room, ...words], _, previous) {
    const key = fold(room);
    const v = views.get(key);
    // A long list comes in several frames in a row: the first one starts it afresh.
    const continued = previous && previous.verb === 'MEMBERS' && fold(previous.params[0]) === key;
    if (!continued) {
      const afterJoin = previous && previous.verb === 'JOIN' && fold(previous.params[0]) === key && isMe(previous.params[1]);
      state.membersSilent = afterJoin || state.silentWho.delete(key);
      if (v) {
        v.membersBefore = v.members;
        v.members = new Map();
      }
    }
    if (v && v.kind === 'room') {
      for (const word of words) {
        const m = member(word);
        // `@` does not say whether an operator is voiced too: keep what we knew.
        const was = v.membersBefore.get(fold(m.nick));
        if (m.op && was) m.voice = was.voice;
        v.members.set(fold(m.nick), m);
      }
      if (v === active) renderMembers();
    }
    // Operators first, then voiced members, as in the member list.
    const rank = (w) => (w.startsWith('@') ? 0 : w.startsWith('+') ? 1 : 2);
    const shown = [...words].sort((a, b) => rank(a) - rank(b));
    if (!state.membersSilent) notice(null, 'event members', 'In ' + room + ': ' + shown.join(' '));
  },
  CURRENT([room]) {
    state.current = room === '*' ? null : room;
    const v = state.current && views.get(fold(room));
    if (v && v !== active) show(v, false);
  },
  LAGGED([room, missed]) {
    notice(views.get(fold(room)), 'event lagged', 'LAGGED: you fell behind in ' + room + ' and ' + missed + ' of its events are missing here.');
    state.silentWho.add(fold(room));
    send('/who ' + room);
  },
  ROOMS(p) {
    notice(null, 'event rooms', p.length ? 'Rooms: ' + p.join(' ') : 'No rooms exist.');
  },
  PONG(_, token) {
    state.pingSent = 0;
    if (token === null || !token.startsWith('page ')) {
      notice(null, 'event pong', 'PONG' + (token !== null ? ' ' + token : ''));
      return;
    }
    // The page's own markers: everything a /history sent before them caused is here.
    const [, what, room] = token.split(' ');
    const v = room && views.get(fold(room));
    if (!v) return;
    if (what === 'older') {
      v.loading = false;
      for (const loading of v.log.querySelectorAll('.loading')) loading.remove();
      if (v.olderAdded === 0 && !v.loadFailed) v.complete = true;
      v.loadFailed = false;
      if (v === active) fillScreen();
    } else if (what === 'gap') {
      if (v.gapFull) { v.gapFull = false; askGap(v); return; }
      const n = v.gapCount;
      notice(v, 'event reconnected', n === 0 ? 'Nothing was said here while you were away.'
        : n + (n === 1 ? ' message' : ' messages') + ' from while you were away, filled in from history.');
      v.gapFrom = 0n;
      v.gapCount = 0;
    }
  },
  HELP(_, text) { notice(null, 'event help', text); },
  ERR([code], text) {
    state.pendingPassword = null;
    if (state.phase !== 'handshake') {
      // A page of history refused (SERVER_BUSY): not the end of the history.
      for (const v of views.values()) if (v.loading) v.loadFailed = true;
      notice(null, 'error', code + ': ' + text);
      return;
    }
    // Refused during sign-in. Reconnecting, a nickname still taken is most likely our
    // old session not yet gone: try again later. Anything else needs the user.
    if (state.reconnecting && code === 'NICK_TAKEN') { abandon(); return; }
    if (code === 'PASSWORD_WRONG') state.password = '';
    state.reconnecting = false;
    showLogin(text);
  },
  BYE(_, reason) { state.bye = reason; },
  AWAY(_, text) {
    notice(null, 'event away', text !== null ? 'You are away: ' + text + ' (/away to come back)' : 'You are back.');
  },
  ISAWAY([nick], text) { notice(view(nick, 'query'), 'event away', nick + ' is away: ' + text); },
  // Its rooms come with the person's standing in each: @#rust, +#web.
  WHOIS([nick, since, idle, tls, account, oper, ...rooms], away) {
    let line = nick + ' connected ' + new Date(since).toLocaleString() + ' over ' +
      (tls === 'tls' ? 'TLS' : 'plain TCP') + ', idle ' + idle + 's, ' +
      (account === '*' ? 'no account' : 'account ' + account) + ', ' +
      (oper === 'oper' ? 'server operator, ' : '') +
      (rooms.length ? 'in ' + rooms.join(' ') : 'in no room');
    if (away !== null) line += ', away: ' + away;
    notice(null, 'event whois', line);
  },
  WHOWAS([nick, left, account]) {
    notice(null, 'event whois', nick + ' left ' + new Date(left).toLocaleString() +
      (account === '*' ? '' : ' (account ' + account + ')'));
  },
  // A topic change: a line in the room's log, and the header.
  TOPIC([room, nick, time, id], text) {
    const v = views.get(fold(room));
    if (!v) return;
    v.topic = text || '';
    if (v === active) renderHeader();
    addEvent(v, { id, time, kind: 'topic',
      text: text !== null ? nick + ' set the topic: ' + text : nick + ' cleared the topic' });
  },
  // A room's topic: after our join (then only in the header), or for /topic.
  TOPICIS([room, nick, time], text, previous) {
    const v = views.get(fold(room));
    if (v) {
      v.topic = text || '';
      if (v === active) renderHeader();
    }
    const afterJoin = previous && (previous.verb === 'MEMBERS' || previous.verb === 'JOIN') &&
      fold(previous.params[0]) === fold(room);
    if (afterJoin) return;
    notice(v, 'event topic', text !== null
      ? 'Topic of ' + room + ': ' + text + ' (set by ' + nick + ' at ' + new Date(time).toLocaleString() + ')'
      : room + ' has no topic.');
  },
  WHOWASEND([nick, count]) {
    notice(null, 'event whois', 'End of whowas ' + nick + ' (' + count + (count === '1' ? ' departure)' : ' departures)'));
  },
  // Server operators and the message of the day: system lines.
  MOTD(_, text) { notice(null, 'event motd', text || ' '); },
  OPER(_, name) { notice(null, 'event oper', 'You are now the server operator ' + name + '.'); },
  WALLOPS([from, time], text) {
    notice(null, 'event wallops', 'Wallops from ' + from + ' at ' + new Date(time).toLocaleTimeString() + ': ' + text);
  },
  SBAN([target, until, by], reason) {
    notice(null, 'event oper', 'Server ban on ' + target +
      (until === '*' ? ', permanent' : ' until ' + new Date(until).toLocaleString()) +
      ', set by ' + by + (reason !== null ? ': ' + reason : '') + '.');
  },
  SBANEND([count]) { notice(null, 'event oper', 'End of server bans (' + count + (count === '1' ? ' ban).' : ' bans).')); },
  UNSBAN([target]) { notice(null, 'event oper', 'Server ban on ' + target + ' lifted.'); },
  KILLED([nick], reason) { notice(null, 'event oper', nick + ' disconnected (' + reason + ').'); },
  WALLOPSMODE([mode]) {
    notice(null, 'event oper', mode === 'on' ? 'You now receive operators\' notices (wallops).' : 'You no longer receive operators\' notices (wallops).');
  },
  // Room governance. A change of modes: a line in the room's log; +o/-o/+v/-v change
  // the member list (the only way standing changes after MEMBERS).
  MODE([room, nick, time, id], changes) {
    presence(room, id, time, 'mode', nick + ' sets mode ' + changes, (m) => {
      for (const [give, flag, arg] of modeChanges(changes || '')) {
        const who = arg && m.get(fold(arg));
        if (who && flag === 'o') who.op = give;
        if (who && flag === 'v') who.voice = give;
      }
    });
  },
  // Someone removed from a room. When it is us, the room goes as after our own part;
  // if it was the current room, the page shows the room the server picks after a part
  // (the first of the rooms left, by folded name). The current room is unknown until
  // a CURRENT says it: the next line typed first makes the room on screen current.
  KICK([room, nick, target, time, id], reason) {
    // Without a reason the server gives the kicker's name: not worth repeating.
    const why = reason && reason !== nick ? ' (' + reason + ')' : '';
    if (!isMe(target)) {
      presence(room, id, time, 'kick', target + ' was kicked by ' + nick + why, (m) => m.delete(fold(target)));
      return;
    }
    const v = views.get(fold(room));
    if (!v || v.kind !== 'room') return;
    let next = null;
    if (fold(state.current || '') === v.key) {
      const left = [...views.values()].filter((w) => w.kind === 'room' && w.joined && w !== v);
      left.sort((a, b) => (a.key < b.key ? -1 : 1));
      next = left[0] || null;
      state.current = null;
    }
    dropView(v, next);
    notice(null, 'event kicked', 'You were kicked from ' + room + ' by ' + nick + why + '.');
  },
  // An invitation: to us (usually to a room we are not in), with a button that joins
  // it; or to someone else, in the log of the room.
  INVITE([room, nick, target, time, id]) {
    if (!isMe(target)) {
      const v = views.get(fold(room));
      if (v) addEvent(v, { id, time, kind: 'invite', text: nick + ' invited ' + target + ' to ' + room });
      return;
    }
    const text = nick + ' invites you to ' + room + '. ';
    if (!active) {
      // In no room: the notice goes to the header, where nothing can be clicked.
      notice(null, 'event invite', text + 'Type /join ' + room + ' to accept.');
      return;
    }
    const join = el('button', 'join-invite', '/join ' + room);
    join.type = 'button';
    join.title = 'Join ' + room;
    join.addEventListener('click', () => { if (state.phase === 'chat') send('/join ' + room); });
    notice(null, 'event invite', text, undefined, join);
  },
  // A room's modes, in answer to /mode #room: `+` alone is none.
  MODES([room], modes) {
    notice(views.get(fold(room)), 'event mode', modes === '+' ? room + ' has no modes.' : room + ' modes: ' + modes);
  },
  BAN([room, mask, by, time]) {
    notice(views.get(fold(room)), 'event ban', 'Ban in ' + room + ' on ' + mask + ', set by ' + by +
      ' at ' + new Date(time).toLocaleString() + '.');
  },
  BANEND([room, count]) {
    notice(views.get(fold(room)), 'event ban', 'End of bans in ' + room + ' (' + count + (count === '1' ? ' ban).' : ' bans).'));
  },
};

// Asks for the page of history before the oldest message of the gap seen so far, then
// a marker PONG that says the page has arrived (the reply to a /join may come later
// than a /history sent after it; a PONG comes after both).
function askGap(v) {
  send('/history ' + v.name + ' ' + GAP_PAGE + ' ' + v.gapLow);
  send('/ping page gap ' + v.name);
}

// After reconnecting: the lines that bring the new session (which starts in #general)
// back to our rooms, with the same current room (as the terminal client's rejoin).
function rejoin() {
  const rooms = state.rejoin;
  for (const room of rooms) if (fold(room) !== '#general') send('/join ' + room);
  if (!rooms.some((room) => fold(room) === '#general')) send('/part #general');
  if (state.rejoinCurrent) send('/join ' + state.rejoinCurrent);
  state.reconnecting = false;
  const n = rooms.length;
  setStatus('Reconnected as ' + state.me + '; rejoined ' + n + (n === 1 ? ' room.' : ' rooms.'), 'online');
}

// ---- 6. Lines from the user --------------------------------------------------------

// Sends what the user typed; returns whether the input may be cleared. Several lines
// (a paste) are sent one by one: a WebSocket message never holds a newline.
function submit(text) {
  const lines = text.split(/\r\n|\r|\n/).filter((line) => line.trim() !== '');
  for (const line of lines) if (!check(line)) return false;
  for (const line of lines) if (!typed(line)) return false;
  return true;
}

// Refuses, with a reason, what the server would refuse or close the socket for.
function check(line) {
  const bad = line.match(FORBIDDEN);
  if (bad) {
    const code = bad[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    notice(null, 'error', 'Not sent: the text holds the control character U+' + code + ', which is not allowed.');
    return false;
  }
  if (byteLength(line) > MAX_LINE) {
    notice(null, 'error', 'Not sent: a line holds at most ' + MAX_LINE + ' bytes.');
    return false;
  }
  return true;
}

function carriesPassword(line) {
  return /^\/(register|password)(\s|$)/i.test(line);
}

function typed(line) {
  if (state.phase !== 'chat') {
    notice(null, 'error', 'Not connected: not sent. The page is reconnecting.');
    return false;
  }
  if (!carriesPassword(line)) {
    state.history.push(line);
    if (state.history.length > 100) state.history.shift();
  }
  state.historyAt = state.history.length;
  const command = line.startsWith('/') && !line.startsWith('//') ? fold(line.split(/\s/)[0]) : null;
  const rest = command ? line.slice(command.length).replace(/^\s+/, '') : '';
  switch (command) {
    case null:
      // A message: to the room on screen, or as /msg in a private conversation.
      if (active && active.kind === 'query') {
        return send('/msg ' + active.name + ' ' + (line.startsWith('//') ? line.slice(1) : line));
      }
      if (active && active.kind === 'room' && fold(state.current || '') !== active.key) send('/join ' + active.name);
      return send(line);
    case '/clear':
      // Empties the log on screen; scrolling up brings the messages back.
      if (active) {
        active.log.replaceChildren();
        active.ids.clear();
        active.marker = null;
        active.oldest = active.newest + 1n;
        active.complete = false;
      }
      return true;
    case '/register':
    case '/password':
      if (!secure) {
        notice(null, 'error', 'Not sent: ' + command + ' would send your password unencrypted; open this page over HTTPS.');
        return false;
      }
      state.pendingPassword = rest;
      return send(line);
    case '/quit':
      state.quitting = true;
      return send(line);
    case '/me':
      if (active && active.kind === 'query') {
        notice(null, 'error', 'Not sent: /me is for rooms; a private message is /msg nick text.');
        return false;
      }
      // falls through
    case '/part':
    case '/who':
    case '/history':
    case '/topic':
    case '/mode':
    case '/op':
    case '/deop':
    case '/voice':
    case '/devoice':
    case '/kick':
    case '/ban':
    case '/unban':
    case '/invite':
      // Commands about "the current room" mean the room on screen.
      if (active && active.kind === 'room' && fold(state.current || '') !== active.key) send('/join ' + active.name);
      return send(line);
    default:
      return send(line);
  }
}

// ---- 7. Wiring ---------------------------------------------------------------------

// Sign in: connect and answer NICK, or answer the prompt the server is waiting on.
ui.nickForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const nick = ui.nickInput.value.trim();
  const password = ui.passwordInput.value;
  ui.loginError.textContent = '';
  ui.nickForm.querySelector('button').disabled = true;
  const open = state.ws && state.ws.readyState === WebSocket.OPEN;
  if (open && state.waitingFor === 'pass' && fold(nick) === fold(state.nick) && password) {
    state.waitingFor = null;
    state.password = password;
    send(password);
    return;
  }
  state.nick = nick;
  state.password = password;
  state.quitting = false;
  state.reconnecting = false;
  if (open && state.waitingFor === 'nick') {
    state.waitingFor = null;
    send(nick);
    return;
  }
  // No connection yet, or one waiting for a password we do not give: start afresh
  // (an empty answer to PASS would count as a wrong password).
  if (state.ws) {
    const old = state.ws;
    state.ws = null;
    old.close();
  }
  state.nickSubmitted = true;
  connect();
});

ui.inputForm.addEventListener('submit', (e) => {
  e.preventDefault();
  if (submit(ui.input.value)) {
    ui.input.value = '';
    ui.input.type = 'text';
  }
});

// A line that carries a password is masked while typed; up and down recall lines.
ui.input.addEventListener('input', () => {
  ui.input.type = carriesPassword(ui.input.value) ? 'password' : 'text';
});
ui.input.addEventListener('keydown', (e) => {
  if (e.key !== 'ArrowUp' && e.key !== 'ArrowDown') return;
  const at = state.historyAt + (e.key === 'ArrowUp' ? -1 : 1);
  if (at < 0 || at > state.history.length) return;
  e.preventDefault();
  state.historyAt = at;
  ui.input.value = state.history[at] || '';
});

ui.joinForm.addEventListener('submit', (e) => {
  e.preventDefault();
  let room = ui.joinInput.value.trim();
  if (!room) return;
  if (!room.startsWith('#')) room = '#' + room;
  if (state.phase === 'chat' && send('/join ' + room)) ui.joinInput.value = '';
});

ui.part.addEventListener('click', () => {
  if (!active) return;
  if (active.kind === 'query') dropView(active);
  else send('/part ' + active.name);
});

ui.retry.addEventListener('click', reconnectNow);

// Scrolling: remember whether the view is pinned to the bottom; near the top, page back.
ui.messages.addEventListener('scroll', () => {
  if (!active) return;
  const box = ui.messages;
  active.pinned = isPinned();
  active.scrollTop = box.scrollTop;
  if (active.pinned && !document.hidden) markRead(active);
  if (box.scrollTop < 60) loadOlder(active);
});

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && active && active.pinned) markRead(active);
});

// Drawers on a narrow screen: the room list and the member list slide in.
$('rooms-toggle').addEventListener('click', () => document.body.classList.toggle('rooms-open'));
$('members-toggle').addEventListener('click', () => document.body.classList.toggle('members-open'));
$('scrim').addEventListener('click', () => document.body.classList.remove('rooms-open', 'members-open'));

try { ui.nickInput.value = localStorage.getItem('chat.nick') || ''; } catch (e) { /* private mode */ }
