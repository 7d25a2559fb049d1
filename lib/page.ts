/**
 * The browser client page: one self-contained HTML document (inline CSS and JS, no build step, no CDN) that the
 * server answers on a plain GET of `/`, `/echo` or `/rooms/<name>`.
 *
 * It is a TS string rather than an `.html` file so a `deno compile`d binary carries it and nothing is read at run
 * time. `String.raw` keeps the backslashes of the inline JS intact; the JS therefore uses no backticks and no
 * dollar-brace sequences.
 *
 * Stable hooks for tests: `#url`, `#connect`, `#disconnect`, `#room`, `#join`, `#members`, `#clear`, `#log`,
 * `#message`, `#binary`, `#send`, `#status`, `#message-error`, `#room-error`; each log entry is an `li` with
 * `data-dir="out" | "in" | "event"` (events also carry `data-event`, and close events `data-code`). The page also
 * exposes its pure helpers on `globalThis.hubbub` for tests and the console.
 *
 * @module
 */

/** The client page served to browsers, as one HTML document. */
export const PAGE_HTML: string = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Hubbub</title>
<link rel="icon" href="data:,">
<style>
:root {
  color-scheme: light dark;
  --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --panel: #f6f8fa;
  --accent: #0969da; --accent-fg: #ffffff; --out: #0969da; --in: #1a7f37; --err: #cf222e; --focus: #0969da;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --line: #3d444d; --panel: #151b23;
    --accent: #4493f8; --accent-fg: #0d1117; --out: #58a6ff; --in: #3fb950; --err: #ff7b72; --focus: #79c0ff;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); height: 100vh; height: 100dvh; display: flex;
  flex-direction: column; }
header { display: flex; align-items: center; justify-content: space-between; gap: 1rem; padding: .5rem 1rem;
  border-bottom: 1px solid var(--line); background: var(--panel); }
h1 { font-size: 1.1rem; margin: 0; }
h2 { font-size: 1rem; margin: 0; }
main { flex: 1; min-height: 0; width: 100%; max-width: 72rem; margin: 0 auto; padding: .75rem 1rem;
  display: flex; flex-direction: column; gap: .75rem; }
form { margin: 0; }
.row { display: flex; flex-wrap: wrap; align-items: flex-end; gap: .5rem; }
.field { display: flex; flex-direction: column; gap: .2rem; flex: 1 1 18rem; min-width: 0; }
.field.small { flex: 0 1 14rem; }
label { font-weight: 600; font-size: .85rem; }
input[type=text], textarea { font: inherit; font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: .9rem; padding: .4rem .55rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg);
  color: var(--fg); width: 100%; min-width: 0; }
textarea { resize: vertical; min-height: 2.4rem; }
[aria-invalid=true] { border-color: var(--err); }
button { font: inherit; font-size: .9rem; padding: .4rem .9rem; border-radius: 6px; border: 1px solid var(--line);
  background: var(--panel); color: var(--fg); cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-fg); font-weight: 600; }
button:disabled { opacity: .45; cursor: not-allowed; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.check { display: flex; align-items: center; gap: .35rem; padding: .4rem 0; font-weight: 400; font-size: .9rem; }
.check input { width: 1.05rem; height: 1.05rem; margin: 0; accent-color: var(--accent); }
.hint { color: var(--muted); font-size: .8rem; margin: .2rem 0 0; }
.error { color: var(--err); font-size: .85rem; margin: .2rem 0 0; flex-basis: 100%; }
.error:empty { display: none; }
#status { margin: 0; font-size: .85rem; display: flex; align-items: center; gap: .4rem; }
#status::before { content: ""; width: .6rem; height: .6rem; border-radius: 50%; background: var(--muted); }
#status[data-state=open]::before { background: var(--in); }
#status[data-state=connecting]::before, #status[data-state=closing]::before { background: #d4a72c; }
.members { margin: 0; padding: .4rem 0; font-size: .9rem; white-space: nowrap; }
#members { font-weight: 700; font-variant-numeric: tabular-nums; }
.logbox { flex: 1; min-height: 14rem; display: flex; flex-direction: column; border: 1px solid var(--line);
  border-radius: 6px; overflow: hidden; }
.logbar { display: flex; align-items: center; justify-content: space-between; gap: .5rem;
  padding: .35rem .5rem .35rem .75rem; background: var(--panel); border-bottom: 1px solid var(--line); }
.logbar button { padding: .2rem .7rem; font-size: .85rem; }
#log { list-style: none; margin: 0; padding: 0; flex: 1 1 0; min-height: 0; overflow: auto;
  font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .85rem; }
#log:empty::after { content: "No messages yet. Connect, then type below."; display: block; padding: .75rem;
  color: var(--muted); font-family: system-ui, sans-serif; }
#log li { display: grid; grid-template-columns: 1.2rem 6.6rem 4.8rem 1fr; gap: .5rem; padding: .25rem .75rem;
  border-bottom: 1px solid var(--line); align-items: baseline; }
#log .dir { font: 700 1.05rem/1 system-ui, sans-serif; text-align: center; }
#log time, #log .size { color: var(--muted); font-variant-numeric: tabular-nums; white-space: nowrap; }
#log .size { text-align: right; }
#log .body { white-space: pre-wrap; overflow-wrap: anywhere; min-width: 0; }
#log [data-dir=out] .dir { color: var(--out); }
#log [data-dir=in] .dir { color: var(--in); }
#log [data-dir=event] { color: var(--muted); }
#log [data-dir=event] .body { font-family: system-ui, sans-serif; font-style: italic; }
#log [data-event=error] .body, #log [data-event=close][data-clean=false] .body { color: var(--err); }
#log [data-kind=binary] .body::before { content: "bin"; display: inline-block; font-size: .7rem;
  border: 1px solid var(--line); border-radius: 4px; padding: 0 .3rem; margin-right: .4rem; color: var(--muted); }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
@media (max-width: 36rem) {
  main { padding: .5rem; }
  header { padding: .5rem; }
  .field { flex-basis: 100%; }
  .field.small { flex: 1 1 8rem; }
  #send { margin-left: auto; }
  #log li { grid-template-columns: 1.2rem auto 1fr; padding: .3rem .5rem; }
  #log .body { grid-column: 1 / -1; }
}
</style>
</head>
<body>
<header>
  <h1>Hubbub</h1>
  <p id="status" role="status" data-state="closed">Disconnected</p>
</header>
<main>
  <form id="connection" class="row" novalidate>
    <div class="field">
      <label for="url">WebSocket URL</label>
      <input id="url" name="url" type="text" inputmode="url" autocomplete="off" spellcheck="false">
    </div>
    <button id="connect" type="submit" class="primary">Connect</button>
    <button id="disconnect" type="button" disabled>Disconnect</button>
  </form>
  <form id="rooms" class="row" novalidate>
    <div class="field small">
      <label for="room">Room</label>
      <input id="room" name="room" type="text" autocomplete="off" spellcheck="false" maxlength="64"
        aria-describedby="room-error">
    </div>
    <button id="join" type="submit">Join</button>
    <p class="members">Members: <output id="members">–</output></p>
    <p id="room-error" class="error" role="alert"></p>
  </form>
  <section class="logbox" aria-labelledby="log-title">
    <div class="logbar">
      <h2 id="log-title">Messages</h2>
      <button id="clear" type="button">Clear log</button>
    </div>
    <ol id="log" role="log" aria-live="polite" aria-relevant="additions" aria-labelledby="log-title" tabindex="0"></ol>
  </section>
  <form id="composer" novalidate>
    <div class="row">
      <div class="field">
        <label for="message">Message</label>
        <textarea id="message" name="message" rows="2" spellcheck="false"
          aria-describedby="message-hint message-error"></textarea>
      </div>
      <label class="check"><input id="binary" type="checkbox"> Binary (hex)</label>
      <button id="send" type="submit" class="primary" disabled>Send</button>
    </div>
    <p id="message-hint" class="hint">Enter sends, Shift+Enter adds a line. Binary takes hex bytes, e.g. de ad be ef.</p>
    <p id="message-error" class="error" role="alert"></p>
  </form>
</main>
<script type="module">
const ROOM_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_LOG_ENTRIES = 1000;
const MAX_SHOWN_BYTES = 4096;
const STATS_EVERY_MS = 3000;
const CLOSE_NAMES = {
  1000: "normal closure", 1001: "going away: server shutting down", 1002: "protocol error",
  1003: "unsupported data", 1005: "no status code", 1006: "abnormal closure: no close frame",
  1007: "invalid payload", 1008: "policy violation", 1009: "message too big", 1010: "extension required",
  1011: "internal error", 1012: "service restart", 1013: "try again later: slow consumer", 1015: "TLS failure",
};

/** The ws: or wss: URL of the endpoint a page at loc was served from, keeping only ?token= of its query. */
function socketUrlFor(loc) {
  const token = new URLSearchParams(loc.search).get("token");
  const query = token === null ? "" : "?" + new URLSearchParams({ token });
  return (loc.protocol === "https:" ? "wss:" : "ws:") + "//" + loc.host + loc.pathname + query;
}

/** Bytes from hex text (whitespace ignored); throws an Error that says what is wrong. */
function parseHex(text) {
  const digits = text.replace(/\s+/g, "");
  const bad = digits.search(/[^0-9a-fA-F]/);
  if (bad !== -1) throw new Error("Hex may only contain 0-9, a-f and spaces, found: " + digits[bad]);
  if (digits.length % 2 !== 0) throw new Error("Hex needs two digits per byte, digit count is odd: " + digits.length);
  const bytes = new Uint8Array(digits.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** Space-separated lowercase hex of the first MAX_SHOWN_BYTES bytes. */
function toHex(bytes) {
  const shown = Array.from(bytes.subarray(0, MAX_SHOWN_BYTES), (b) => b.toString(16).padStart(2, "0")).join(" ");
  return bytes.length > MAX_SHOWN_BYTES ? shown + " … (" + (bytes.length - MAX_SHOWN_BYTES) + " more bytes)" : shown;
}

/** Room name from a path like /rooms/lobby (percent-decoded), or null. */
function roomOf(pathname) {
  const m = /^\/rooms\/([^/]+)$/.exec(pathname);
  if (!m) return null;
  try {
    const name = decodeURIComponent(m[1]);
    return ROOM_NAME.test(name) ? name : null;
  } catch {
    return null;
  }
}

/** The /stats URL (with ?token= if any) for the room a socket URL points at; null for /echo and the like. */
function statsUrlFor(socketUrl) {
  const u = new URL(socketUrl);
  const query = new URLSearchParams();
  if (u.pathname !== "/") {
    const room = roomOf(u.pathname);
    if (room === null) return null;
    query.set("room", room);
  }
  const token = u.searchParams.get("token");
  if (token !== null) query.set("token", token);
  const search = query.size ? "?" + query : "";
  return (u.protocol === "wss:" ? "https:" : "http:") + "//" + u.host + "/stats" + search;
}

globalThis.hubbub = { socketUrlFor, parseHex, toHex, roomOf, statsUrlFor, ROOM_NAME };

const $ = (id) => document.getElementById(id);
const ui = {
  url: $("url"), connect: $("connect"), disconnect: $("disconnect"), room: $("room"), join: $("join"),
  members: $("members"), roomError: $("room-error"), log: $("log"), clear: $("clear"), message: $("message"),
  binary: $("binary"), send: $("send"), messageError: $("message-error"), status: $("status"),
};
const encoder = new TextEncoder();
let ws = null;
let statsTimer = 0;

ui.url.value = socketUrlFor(location);
ui.room.value = roomOf(location.pathname) ?? "";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function clock(date) {
  const p = (n, w) => String(n).padStart(w, "0");
  return p(date.getHours(), 2) + ":" + p(date.getMinutes(), 2) + ":" + p(date.getSeconds(), 2) + "." +
    p(date.getMilliseconds(), 3);
}

/** Appends one log entry; dir is "out", "in" or "event". Text goes in via textContent only. */
function log(dir, body, extra = {}) {
  const stick = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
  const now = new Date();
  const li = el("li");
  li.dataset.dir = dir;
  for (const [k, v] of Object.entries(extra.data ?? {})) li.dataset[k] = String(v);
  const arrow = el("span", "dir", dir === "out" ? "↑" : dir === "in" ? "↓" : "•");
  arrow.setAttribute("aria-hidden", "true");
  const said = dir === "out" ? "Sent" : dir === "in" ? "Received" : "Event";
  li.append(arrow, el("span", "sr", extra.data?.kind === "binary" ? said + " binary" : said));
  const time = el("time", "", clock(now));
  time.dateTime = now.toISOString();
  li.append(time, el("span", "size", extra.size === undefined ? "" : extra.size + " B"));
  li.append(el("span", "body", body));
  ui.log.append(li);
  while (ui.log.childElementCount > MAX_LOG_ENTRIES) ui.log.firstElementChild.remove();
  if (stick) ui.log.scrollTop = ui.log.scrollHeight;
}

function logMessage(dir, data) {
  if (typeof data === "string") {
    log(dir, data, { size: encoder.encode(data).length, data: { kind: "text" } });
  } else {
    const bytes = new Uint8Array(data);
    log(dir, toHex(bytes), { size: bytes.length, data: { kind: "binary" } });
  }
}

function setState(state) {
  const labels = { connecting: "Connecting…", open: "Connected", closing: "Closing…", closed: "Disconnected" };
  ui.status.dataset.state = state;
  ui.status.textContent = labels[state];
  ui.connect.disabled = state === "connecting" || state === "open";
  ui.disconnect.disabled = state !== "connecting" && state !== "open";
  ui.send.disabled = state !== "open";
  // A focused button that just got disabled would drop keyboard focus on <body>: move it where the user goes next.
  if (document.activeElement?.disabled) (ui.connect.disabled ? ui.message : ui.connect).focus();
}

function showMembers(text, title) {
  if (ui.members.textContent !== text) ui.members.textContent = text;
  ui.members.title = title;
}

/** Fetches the member count of the room the socket (or else the URL field) points at. */
async function refreshMembers() {
  let url = null;
  try {
    url = statsUrlFor(ws ? ws.url : ui.url.value.trim());
  } catch {
    url = null;
  }
  if (url === null) return showMembers("–", "No room at this endpoint");
  try {
    const res = await fetch(url, { cache: "no-store" });
    if (!res.ok) return showMembers("?", "Stats answered HTTP " + res.status);
    const body = await res.json();
    showMembers(String(body.members), "Members of room " + body.room);
  } catch (err) {
    showMembers("?", "Stats unavailable: " + err.message);
  }
}

function connect() {
  const target = ui.url.value.trim();
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "Reconnecting");
  let sock;
  try {
    sock = new WebSocket(target);
  } catch (err) {
    log("event", "Cannot connect to " + target + ": " + err.message, { data: { event: "error" } });
    return;
  }
  sock.binaryType = "arraybuffer";
  ws = sock;
  setState("connecting");
  log("event", "Connecting to " + target, { data: { event: "connecting" } });
  sock.addEventListener("open", () => {
    if (ws !== sock) return;
    setState("open");
    log("event", "Connected to " + sock.url, { data: { event: "open" } });
    refreshMembers();
    clearInterval(statsTimer);
    statsTimer = setInterval(refreshMembers, STATS_EVERY_MS);
  });
  sock.addEventListener("message", (ev) => logMessage("in", ev.data));
  sock.addEventListener("error", () => {
    log("event", "Error: the connection failed or broke (see the close code)", { data: { event: "error" } });
  });
  sock.addEventListener("close", (ev) => {
    const name = CLOSE_NAMES[ev.code] ?? "application code";
    const reason = ev.reason ? ", reason “" + ev.reason + "”" : ", no reason";
    log("event", "Closed: code " + ev.code + " (" + name + ")" + reason + (ev.wasClean ? "" : ", not clean"), {
      data: { event: "close", code: ev.code, clean: ev.wasClean },
    });
    if (ws !== sock) return;
    clearInterval(statsTimer);
    setState("closed");
    refreshMembers();
  });
}

function disconnect() {
  if (!ws || ws.readyState > WebSocket.OPEN) return;
  setState("closing");
  ws.close(1000, "Bye from the browser");
}

function joinRoom() {
  const name = ui.room.value.trim();
  if (!ROOM_NAME.test(name)) {
    ui.room.setAttribute("aria-invalid", "true");
    ui.roomError.textContent = "Room names are 1-64 of A-Z a-z 0-9 . _ -, got: " + (name || "(empty)");
    ui.room.focus();
    return;
  }
  ui.room.removeAttribute("aria-invalid");
  ui.roomError.textContent = "";
  let u;
  try {
    u = new URL(ui.url.value.trim());
  } catch {
    u = new URL(socketUrlFor(location));
  }
  u.pathname = "/rooms/" + name;
  ui.url.value = u.href;
  if (u.host === location.host) history.replaceState(null, "", "/rooms/" + name + location.search);
  connect();
}

function send() {
  const text = ui.message.value;
  let data;
  try {
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new Error("Not connected: press Connect first");
    data = ui.binary.checked ? parseHex(text).buffer : text;
  } catch (err) {
    ui.message.setAttribute("aria-invalid", "true");
    ui.messageError.textContent = err.message;
    return;
  }
  ui.message.removeAttribute("aria-invalid");
  ui.messageError.textContent = "";
  ws.send(data);
  logMessage("out", data);
  ui.message.value = "";
}

$("connection").addEventListener("submit", (ev) => {
  ev.preventDefault();
  connect();
});
ui.disconnect.addEventListener("click", disconnect);
$("rooms").addEventListener("submit", (ev) => {
  ev.preventDefault();
  joinRoom();
});
$("composer").addEventListener("submit", (ev) => {
  ev.preventDefault();
  send();
});
ui.message.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    send();
  }
});
ui.message.addEventListener("input", () => {
  ui.message.removeAttribute("aria-invalid");
  ui.messageError.textContent = "";
});
ui.room.addEventListener("input", () => {
  ui.room.removeAttribute("aria-invalid");
  ui.roomError.textContent = "";
});
ui.clear.addEventListener("click", () => ui.log.replaceChildren());
setState("closed");
refreshMembers();
</script>
</body>
</html>
`;
