/**
 * The browser client page: one self-contained HTML document (inline CSS and JS, no build step, no CDN) that the
 * server answers on a plain GET of `/`, `/echo` or `/rooms/<name>`.
 *
 * It is a TS string rather than an `.html` file so a `deno compile`d binary carries it and nothing is read at run
 * time. `String.raw` keeps the backslashes of the inline JS intact; the JS therefore uses no backticks and no
 * dollar-brace sequences, except the one substitution that tells the page the server's access rules.
 *
 * The server renders it once ({@linkcode renderPage}) with what a refused page needs to know: whether a token is
 * required and whether origins are restricted (browsers hide a refused handshake's HTTP status, so the page cannot
 * ask). Never the token itself, nor the allowed origins. It also says how many messages the server keeps per room
 * (`--history`), since asking a server without history for a replay is a refused handshake.
 *
 * History and recovery: in a room of the server that served it, the page offers the `hubbub.v1` envelope and, when
 * the server keeps history, joins with `?replay=` to show the room's recent messages. After an unexpected close
 * (1001, 1006, 1011–1014) it reconnects by itself, with a backoff from 250 ms doubling to 10 s with jitter, asking
 * for what it missed with `?since=&epoch=`, and logs "Recovered N missed messages" or "Some messages were lost". The
 * user's own Disconnect, and any other close, end it. The log shows messages unwrapped, as without the envelope.
 *
 * Stable hooks for tests: `#url`, `#connect`, `#disconnect`, `#room`, `#join`, `#members`, `#clear`, `#log`, `#jump`,
 * `#message`, `#message-hint`, `#binary`, `#send`, `#status`, `#message-error`, `#room-error`; each log entry is an
 * `li` with `data-dir="out" | "in" | "event"` (events also carry `data-event`, and close events `data-code`).
 * Received messages from the room's history carry `data-replayed="history"` (on joining) or `"recovered"` (on
 * reconnecting); the events `history`, `reconnecting`, `recovered` and `lost` mark where they start. A text
 * message over 4,096 UTF-8 bytes is cut: its entry has `data-cut`, the shown part in `.text`, and `.expand` and
 * `.copy` buttons. The page also exposes its pure helpers on `globalThis.hubbub` for tests and the console.
 *
 * @module
 */

/** What the serving server tells its page about who may connect; booleans only, never a secret. */
export interface PageOptions {
  /** The server requires a token (`--token`): a refused page says to add `?token=` to the URL. */
  tokenRequired: boolean;
  /** The server accepts only listed origins (`--allowed-origin` without `*`): a refused page says so. */
  originRestricted: boolean;
  /** Messages the server keeps per room (`--history`): the page then shows recent ones and recovers. @default {0} */
  historySize?: number;
}

/**
 * Renders the client page for a server with these access rules, as one HTML document. Render it once per server:
 * the result depends on nothing else.
 *
 * @example
 * ```ts
 * import { renderPage } from "./page.ts";
 * import assert from "node:assert/strict";
 * const page = renderPage({ tokenRequired: true, originRestricted: false, historySize: 100 });
 * assert.ok(page.includes('"tokenRequired":true,"originRestricted":false,"history":100'));
 * ```
 */
export function renderPage(options: PageOptions): string {
  // Booleans and a number only, so the JSON cannot close the script element or carry anything the server should keep.
  const history = Number(options.historySize ?? 0);
  const server = JSON.stringify({
    tokenRequired: options.tokenRequired === true,
    originRestricted: options.originRestricted === true,
    history: Number.isSafeInteger(history) && history > 0 ? history : 0,
  });
  return String.raw`<!doctype html>
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
  /* Disabled controls keep 4.5:1 text contrast (WCAG AA) rather than fading with opacity. */
  --disabled-bg: #eaeef2; --disabled-fg: #59636e;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --line: #3d444d; --panel: #151b23;
    --accent: #4493f8; --accent-fg: #0d1117; --out: #58a6ff; --in: #3fb950; --err: #ff7b72; --focus: #79c0ff;
    --disabled-bg: #212830; --disabled-fg: #9198a1;
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
button:disabled { background: var(--disabled-bg); border-color: var(--line); color: var(--disabled-fg);
  cursor: not-allowed; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.check { display: flex; align-items: center; gap: .35rem; padding: .4rem 0; font-weight: 400; font-size: .9rem; }
.check input { width: 1.05rem; height: 1.05rem; margin: 0; accent-color: var(--accent); }
.hint { color: var(--muted); font-size: .8rem; margin: .2rem 0 0; }
.error { color: var(--err); font-size: .85rem; margin: .2rem 0 0; flex-basis: 100%; }
.error:empty { display: none; }
#status { margin: 0; font-size: .85rem; display: flex; align-items: center; gap: .4rem; }
#status::before { content: ""; width: .6rem; height: .6rem; border-radius: 50%; background: var(--muted); }
#status[data-state=open]::before { background: var(--in); }
#status[data-state=connecting]::before, #status[data-state=closing]::before,
#status[data-state=reconnecting]::before { background: #d4a72c; }
.members { margin: 0; padding: .4rem 0; font-size: .9rem; white-space: nowrap; }
#members { font-weight: 700; font-variant-numeric: tabular-nums; }
.logbox { position: relative; flex: 1; min-height: 14rem; display: flex; flex-direction: column;
  border: 1px solid var(--line); border-radius: 6px; overflow: hidden; }
#jump { position: absolute; bottom: .75rem; left: 50%; transform: translateX(-50%); border-radius: 999px;
  padding: .3rem 1rem; box-shadow: 0 2px 8px rgb(0 0 0 / 25%); }
#jump[hidden] { display: none; }
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
#log [data-event=error] .body, #log [data-event=close][data-clean=false] .body, #log [data-event=lost] .body {
  color: var(--err); }
#log [data-event=recovered] .body { color: var(--in); }
#log [data-replayed] { background: var(--panel); }
#log [data-replayed] .dir { color: var(--muted); }
#log .more { display: block; margin-top: .2rem; color: var(--muted); font-family: system-ui, sans-serif;
  font-size: .8rem; }
#log .more button { padding: .05rem .55rem; margin-left: .4rem; font-size: .8rem; }
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
    <button id="jump" type="button" class="primary" hidden>New messages ↓</button>
  </section>
  <form id="composer" novalidate>
    <div class="row">
      <div class="field">
        <label for="message">Message</label>
        <textarea id="message" name="message" rows="2" spellcheck="false"
          aria-describedby="message-hint message-error"></textarea>
      </div>
      <label class="check"><input id="binary" type="checkbox"> Binary (hex)</label>
      <button id="send" type="submit" class="primary" disabled
        title="Send the message; with an empty box, sends an empty message">Send</button>
    </div>
    <p id="message-hint" class="hint">Enter sends, Shift+Enter adds a line; Enter on an empty box sends nothing, the
      Send button sends an empty message. Binary takes hex bytes, e.g. de ad be ef.</p>
    <p id="message-error" class="error" role="alert"></p>
  </form>
</main>
<script type="module">
const SERVER = ${server};
const ROOM_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_LOG_ENTRIES = 1000;
const MAX_SHOWN_BYTES = 4096;
/** Full texts of cut messages kept for Show all and Copy; past this the oldest are let go (the log holds 1000). */
const MAX_KEPT_BYTES = 32 * 1024 * 1024;
/** The log follows new messages while the reader is within this distance of its bottom. */
const FOLLOW_SLACK_PX = 40;
const STATS_EVERY_MS = 3000;
const CLOSE_NAMES = {
  1000: "normal closure", 1001: "going away: server shutting down", 1002: "protocol error",
  1003: "unsupported data", 1005: "no status code", 1006: "abnormal closure: no close frame",
  1007: "invalid payload", 1008: "policy violation", 1009: "message too big", 1010: "extension required",
  1011: "internal error", 1012: "service restart", 1013: "try again later: slow consumer", 1015: "TLS failure",
};
/** Hubbub's envelope: each message with its room offset and epoch, so a reconnect can ask for what it missed. */
const ENVELOPE = "hubbub.v1";
/** Recent messages shown on joining a room, at most: a screenful of context (the server may keep fewer). */
const REPLAY_ON_JOIN = 100;
/** The first reconnect waits about this long, doubling per failed attempt up to RECONNECT_MAX_MS. */
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 10000;
/** Closes after which reconnecting may help: going away, dropped, server error, restart, slow consumer, gateway. */
const RECONNECT_CODES = new Set([1001, 1006, 1011, 1012, 1013, 1014]);

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

/** UTF-8 bytes of one code point (a lone surrogate counts as U+FFFD, 3 bytes, as TextEncoder writes it). */
function utf8Length(char) {
  const code = char.codePointAt(0);
  return code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
}

/** The longest start of text that fits in MAX_SHOWN_BYTES of UTF-8 without splitting a character. */
function cutText(text) {
  // Every UTF-16 unit encodes to at most 3 bytes: short strings cannot be over.
  if (text.length * 3 <= MAX_SHOWN_BYTES) return text;
  let bytes = 0;
  let end = 0;
  for (const char of text) {
    bytes += utf8Length(char);
    if (bytes > MAX_SHOWN_BYTES) return text.slice(0, end);
    end += char.length;
  }
  return text;
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

/**
 * Why a handshake that never opened was probably refused: browsers report only code 1006 and hide the HTTP status.
 * What the server said about its own rules counts only when the socket URL points back at it.
 */
function refusalHint(socketUrl, server, pageHost) {
  let u;
  try {
    u = new URL(socketUrl);
  } catch {
    return "";
  }
  const ours = u.host === pageHost;
  const lines = [];
  if (ours && server.tokenRequired) {
    lines.push(u.searchParams.has("token")
      ? "This server requires a token: check the ?token= in the URL."
      : "This server requires a token: add ?token=<token> to the URL.");
  }
  if (ours && server.originRestricted) {
    lines.push("This server only accepts pages from the origins it allows (--allowed-origin); this page may not be one.");
  }
  lines.push((lines.length ? "Other likely causes" : "The connection was refused or failed; likely causes") +
    " (browsers hide the HTTP status):");
  lines.push("• a wrong path or room name: the server has /, /echo and /rooms/<name> (1-64 of A-Z a-z 0-9 . _ -)");
  if (!ours) {
    lines.push("• a token is required: add ?token=<token> to the URL");
    lines.push("• this page's origin is not allowed by the server");
  }
  lines.push("• the server is full (too many connections, in total or from your address), or not running");
  return lines.join("\n");
}

/** Whether a socket URL is a room (or /) of the server that served this page, which speaks the envelope. */
function isOwnRoom(socketUrl, pageHost) {
  let u;
  try {
    u = new URL(socketUrl);
  } catch {
    return false;
  }
  return u.host === pageHost && (u.pathname === "/" || roomOf(u.pathname) !== null);
}

/**
 * The URL to open for a join: with a position, asking for every message after it (?since=&epoch=); else, with
 * replay, asking for the room's recent messages; else the URL as it is.
 */
function joinUrl(socketUrl, position, replay) {
  const u = new URL(socketUrl);
  if (position) {
    for (const name of ["replay", "since", "epoch"]) u.searchParams.delete(name);
    u.searchParams.set("since", String(position.offset));
    u.searchParams.set("epoch", position.epoch);
  } else if (replay > 0 && !u.searchParams.has("replay") && !u.searchParams.has("since")) {
    u.searchParams.set("replay", String(replay));
  }
  return u.href;
}

/** Milliseconds before reconnect attempt n (0 first): a random point in the upper half of min × 2^n, capped. */
function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + random() * ceiling / 2;
}

/** A joined or message envelope in text, { type: "other" } for other frames, or null when text is none. */
function parseEnvelope(text) {
  if (!text.startsWith("{")) return null;
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof frame !== "object" || frame === null || typeof frame.type !== "string") return null;
  const positioned = Number.isSafeInteger(frame.offset) && typeof frame.epoch === "string";
  if (frame.type === "joined") return positioned && typeof frame.recovered === "boolean" ? frame : null;
  if (frame.type === "message") {
    return positioned && (typeof frame.data === "string" || typeof frame.binary === "string") ? frame : null;
  }
  return { type: "other" };
}

/** The bytes of base64 text, as an ArrayBuffer. */
function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

/**
 * What a reconnect's joined frame says about the messages sent meanwhile. With ?since= the server says; without
 * (no history), the same epoch and latest offset as before mean nothing was missed, anything else a loss.
 */
function readRecovery(joined, askedSince, before) {
  if (askedSince) return { recovered: joined.recovered, missed: joined.missed };
  if (!before || before.epoch !== joined.epoch) return { recovered: false, missed: 0 };
  const missed = joined.offset - before.offset;
  return { recovered: missed === 0, missed };
}

/** "Recovered N missed messages" or "Some messages were lost". */
function describeRecovery(recovery) {
  const { recovered, missed } = recovery;
  if (recovered) return "Recovered " + missed + " missed message" + (missed === 1 ? "" : "s");
  return "Some messages were lost" + (missed > 0 ? " (" + missed + " missed)" : "");
}

globalThis.hubbub = {
  socketUrlFor, parseHex, toHex, roomOf, statsUrlFor, cutText, refusalHint, isOwnRoom, joinUrl, backoffDelay,
  parseEnvelope, readRecovery, describeRecovery, ROOM_NAME,
};

const $ = (id) => document.getElementById(id);
const ui = {
  url: $("url"), connect: $("connect"), disconnect: $("disconnect"), room: $("room"), join: $("join"),
  members: $("members"), roomError: $("room-error"), log: $("log"), jump: $("jump"), clear: $("clear"),
  message: $("message"), binary: $("binary"), send: $("send"), messageError: $("message-error"), status: $("status"),
};
const encoder = new TextEncoder();
let ws = null;
/**
 * What the user connected to, kept across reconnects: the URL, whether it is a room of this server, where the room's
 * messages got to ({ offset, epoch } of the last one), the failed attempts so far and the pending attempt's timer.
 */
let session = null;
let statsTimer = 0;
/** Whether the log follows new entries: true until the reader scrolls up, true again back at the bottom. */
let following = true;
let lastScrollTop = 0;
/** Cut messages' full texts (li → { text, bytes }), oldest first. */
const kept = new Map();
let keptBytes = 0;
/** Sockets the page closed itself: a close before open is then no refusal. */
const closedByPage = new WeakSet();

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

function distanceFromBottom() {
  return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight;
}

function scrollToEnd() {
  ui.log.scrollTop = ui.log.scrollHeight;
  following = true;
  ui.jump.hidden = true;
}

/** Appends one log entry; dir is "out", "in" or "event"; body is text or a node. Text goes in via textContent only. */
function log(dir, body, extra = {}) {
  const now = new Date();
  const li = el("li");
  li.dataset.dir = dir;
  for (const [k, v] of Object.entries(extra.data ?? {})) if (v !== undefined) li.dataset[k] = String(v);
  const arrow = el("span", "dir", dir === "out" ? "↑" : dir === "in" ? "↓" : "•");
  arrow.setAttribute("aria-hidden", "true");
  const replayed = extra.data?.replayed;
  const said = dir === "out"
    ? "Sent"
    : dir === "event"
    ? "Event"
    : replayed === "history"
    ? "From the room's history"
    : replayed === "recovered"
    ? "Recovered"
    : "Received";
  li.append(arrow, el("span", "sr", extra.data?.kind === "binary" ? said + " binary" : said));
  const time = el("time", "", clock(now));
  time.dateTime = now.toISOString();
  li.append(time, el("span", "size", extra.size === undefined ? "" : extra.size + " B"));
  li.append(typeof body === "string" ? el("span", "body", body) : body);
  ui.log.append(li);
  while (ui.log.childElementCount > MAX_LOG_ENTRIES) {
    forget(ui.log.firstElementChild);
    ui.log.firstElementChild.remove();
  }
  if (following) scrollToEnd();
  else ui.jump.hidden = false;
  return li;
}

/** Lets go of a cut message's full text; its Show all and Copy go with it. */
function forget(li, note) {
  const entry = kept.get(li);
  if (!entry) return;
  kept.delete(li);
  keptBytes -= entry.bytes;
  if (note) {
    li.querySelector(".text").textContent = cutText(entry.text);
    li.querySelector(".more").textContent = note;
  }
}

/** Logs a text over MAX_SHOWN_BYTES cut, with its size and buttons to show all of it or copy it. */
function logLongText(dir, text, bytes, replayed) {
  const shown = cutText(text);
  const body = el("span", "body");
  const part = el("span", "text", shown);
  const more = el("span", "more",
    "Showing the first " + encoder.encode(shown).length.toLocaleString("en") + " of " + bytes.toLocaleString("en") +
      " bytes.");
  const expand = el("button", "expand", "Show all");
  expand.type = "button";
  expand.setAttribute("aria-expanded", "false");
  const copy = el("button", "copy", "Copy");
  copy.type = "button";
  more.append(expand, copy);
  const ellipsis = el("span", "", "…");
  ellipsis.setAttribute("aria-hidden", "true");
  body.append(part, ellipsis, more);
  const li = log(dir, body, { size: bytes, data: { kind: "text", cut: "true", replayed } });
  kept.set(li, { text, bytes });
  keptBytes += bytes;
  for (const old of kept.keys()) {
    if (keptBytes <= MAX_KEPT_BYTES || old === li) break;
    forget(old, "Cut at " + MAX_SHOWN_BYTES.toLocaleString("en") + " bytes; the rest was let go to save memory.");
  }
  expand.addEventListener("click", () => {
    const open = expand.getAttribute("aria-expanded") !== "true";
    part.textContent = open ? kept.get(li)?.text ?? shown : shown;
    expand.setAttribute("aria-expanded", String(open));
    expand.textContent = open ? "Show less" : "Show all";
    ellipsis.hidden = open;
    // Reading a long message: new ones must not scroll it away.
    if (open && distanceFromBottom() >= FOLLOW_SLACK_PX) following = false;
  });
  copy.addEventListener("click", async () => {
    const entry = kept.get(li);
    if (!entry) return;
    copy.textContent = (await copyText(entry.text)) ? "Copied" : "Copy failed";
    setTimeout(() => copy.textContent = "Copy", 2000);
  });
}

/** Copies text to the clipboard: the async API where the page may use it (https, localhost), else execCommand. */
async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = el("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    const focused = document.activeElement;
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
    focused?.focus();
    return ok;
  }
}

/** Logs a message; replayed is "history" or "recovered" for one from the room's history. */
function logMessage(dir, data, replayed) {
  if (typeof data === "string") {
    const bytes = encoder.encode(data).length;
    if (bytes > MAX_SHOWN_BYTES) logLongText(dir, data, bytes, replayed);
    else log(dir, data, { size: bytes, data: { kind: "text", replayed } });
  } else {
    const bytes = new Uint8Array(data);
    log(dir, toHex(bytes), { size: bytes.length, data: { kind: "binary", replayed } });
  }
}

function setState(state) {
  const labels = {
    connecting: "Connecting…", open: "Connected", closing: "Closing…", closed: "Disconnected",
    reconnecting: "Reconnecting…",
  };
  ui.status.dataset.state = state;
  ui.status.textContent = labels[state];
  const active = state === "connecting" || state === "open" || state === "reconnecting";
  ui.connect.disabled = active;
  ui.disconnect.disabled = !active;
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

/** Connects to the URL field's endpoint, as a new session: a room of this server shows its recent history. */
function connect() {
  const target = ui.url.value.trim();
  if (session) clearTimeout(session.timer);
  if (ws && ws.readyState <= WebSocket.OPEN) {
    closedByPage.add(ws);
    ws.close(1000, "Reconnecting");
  }
  session = { target, own: isOwnRoom(target, location.host), position: null, attempt: 0, timer: 0 };
  openSocket(session, false);
}

/** Opens one connection of a session; again is true for a reconnect, which asks for what was missed. */
function openSocket(s, again) {
  const history = s.own && SERVER.history > 0;
  const replay = again ? 0 : Math.min(SERVER.history, REPLAY_ON_JOIN);
  const target = history ? joinUrl(s.target, again ? s.position : null, replay) : s.target;
  let sock;
  try {
    // Only this server's rooms are known to speak the envelope; another server may pick any offer and mean another.
    sock = s.own ? new WebSocket(target, [ENVELOPE]) : new WebSocket(target);
  } catch (err) {
    log("event", "Cannot connect to " + target + ": " + err.message, { data: { event: "error" } });
    session = null;
    setState("closed");
    return;
  }
  sock.binaryType = "arraybuffer";
  ws = sock;
  // envelope: unknown until the first frame says "joined"; latest: the room's offset then (older ones are replays).
  const conn = { sock, again, askedSince: history && again && s.position !== null, opened: false };
  setState("connecting");
  log("event", (again ? "Reconnecting to " : "Connecting to ") + target, { data: { event: "connecting" } });
  sock.addEventListener("open", () => {
    conn.opened = true;
    if (ws !== sock) return;
    s.attempt = 0;
    setState("open");
    log("event", "Connected to " + sock.url, { data: { event: "open" } });
    if (again && sock.protocol !== ENVELOPE) {
      log("event", "Some messages may be missing: this server cannot say what was sent while disconnected", {
        data: { event: "lost" },
      });
    }
    refreshMembers();
    clearInterval(statsTimer);
    statsTimer = setInterval(refreshMembers, STATS_EVERY_MS);
  });
  sock.addEventListener("message", (ev) => receive(s, conn, ev.data));
  sock.addEventListener("error", () => {
    log("event", "Error: the connection failed or broke (see the close code)", { data: { event: "error" } });
  });
  sock.addEventListener("close", (ev) => {
    const name = CLOSE_NAMES[ev.code] ?? "application code";
    const reason = ev.reason ? ", reason “" + ev.reason + "”" : ", no reason";
    log("event", "Closed: code " + ev.code + " (" + name + ")" + reason + (ev.wasClean ? "" : ", not clean"), {
      data: { event: "close", code: ev.code, clean: ev.wasClean },
    });
    const byPage = closedByPage.has(sock);
    if (!conn.opened && !byPage && !again) {
      log("event", refusalHint(sock.url, SERVER, location.host), { data: { event: "refused" } });
    }
    if (ws !== sock) return;
    clearInterval(statsTimer);
    // A refused first handshake is no blip; a reconnect that fails is (the server may still be starting).
    if (!byPage && s === session && (conn.opened || again) && RECONNECT_CODES.has(ev.code)) {
      reconnectLater(s);
      return;
    }
    if (s === session) session = null;
    setState("closed");
    refreshMembers();
  });
}

/** Handles one received frame: unwraps the envelope (noting the room position), or logs the message as it is. */
function receive(s, conn, data) {
  if (conn.envelope === false || typeof data !== "string" || conn.sock.protocol !== ENVELOPE) {
    conn.envelope = false;
    return logMessage("in", data);
  }
  const frame = parseEnvelope(data);
  if (conn.envelope === undefined) {
    // A room says "joined" first; anything else (the echo endpoint at / with --mode echo) is not an envelope.
    conn.envelope = frame?.type === "joined";
    if (!conn.envelope) return logMessage("in", data);
  }
  if (frame === null) return logMessage("in", data);
  if (frame.type === "joined") {
    conn.latest = frame.offset;
    if (conn.again) {
      const recovery = readRecovery(frame, conn.askedSince, s.position);
      log("event", describeRecovery(recovery), {
        data: { event: recovery.recovered ? "recovered" : "lost", missed: recovery.missed },
      });
    }
    // A recovery's messages follow and move the position on; else live messages start after the room's latest.
    if (!(conn.askedSince && frame.recovered)) s.position = { offset: frame.offset, epoch: frame.epoch };
    return;
  }
  if (frame.type !== "message") return;
  s.position = { offset: frame.offset, epoch: frame.epoch };
  let replayed;
  if (frame.offset <= conn.latest) {
    replayed = conn.again ? "recovered" : "history";
    if (!conn.again && !conn.historyShown) {
      conn.historyShown = true;
      log("event", "Recent messages from the room's history:", { data: { event: "history" } });
    }
  }
  logMessage("in", frame.data ?? fromBase64(frame.binary), replayed);
}

/** Waits out the backoff, then reconnects (unless the user disconnected or connected elsewhere meanwhile). */
function reconnectLater(s) {
  const delay = backoffDelay(s.attempt++);
  const seconds = (delay / 1000).toFixed(1) + " s";
  setState("reconnecting");
  ui.status.textContent = "Reconnecting in " + seconds + "…";
  log("event", "Reconnecting in " + seconds + " (attempt " + s.attempt + ")", { data: { event: "reconnecting" } });
  refreshMembers();
  s.timer = setTimeout(() => {
    if (session === s) openSocket(s, true);
  }, delay);
}

/** The user's Disconnect: closes the connection, or stops reconnecting; either way no reconnect follows. */
function disconnect() {
  const waiting = session !== null && ui.status.dataset.state === "reconnecting";
  if (session) clearTimeout(session.timer);
  session = null;
  if (waiting) {
    log("event", "Stopped reconnecting", { data: { event: "stopped" } });
    setState("closed");
    return;
  }
  if (!ws || ws.readyState > WebSocket.OPEN) return;
  setState("closing");
  closedByPage.add(ws);
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
    // An empty box is an Enter too many, not a message; the Send button sends an empty one on purpose.
    if (ui.message.value !== "") send();
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
ui.clear.addEventListener("click", () => {
  ui.log.replaceChildren();
  kept.clear();
  keptBytes = 0;
  scrollToEnd();
});
ui.log.addEventListener("scroll", () => {
  // Only a move up is the reader leaving the bottom: a resize or the browser's scroll anchoring may move it down.
  const up = ui.log.scrollTop < lastScrollTop - 1;
  lastScrollTop = ui.log.scrollTop;
  if (distanceFromBottom() < FOLLOW_SLACK_PX) {
    following = true;
    ui.jump.hidden = true;
  } else if (up) {
    following = false;
  }
});
// A narrower or shorter log (a rotated phone, a resized window) wraps lines anew: stay at the bottom if following.
new ResizeObserver(() => {
  if (following) ui.log.scrollTop = ui.log.scrollHeight;
}).observe(ui.log);
ui.jump.addEventListener("click", () => {
  scrollToEnd();
  ui.log.focus();
});
setState("closed");
refreshMembers();
</script>
</body>
</html>
`;
}
