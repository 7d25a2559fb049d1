/**
 * The dashboard page: one self-contained HTML document (inline CSS and JS, no build step, no CDN, no chart library)
 * that polls `dashboard.json` once a second and draws what it says. A TS string, like the client page, so a
 * `deno compile`d binary carries it; `String.raw` keeps the inline JS's backslashes, so the JS uses no backticks and
 * no dollar-brace sequences.
 *
 * It holds no data and no secret: the admin token, when the server asks for one, is typed into the page, kept in
 * `sessionStorage` (this tab only) and sent as `Authorization: Bearer` with every request, never in a URL. Rates are
 * differences of two snapshots over the difference of their `uptimeMs`; the charts keep the last 5 minutes of those
 * since the page opened. URLs are relative (`dashboard.json`, `rooms/<name>`), so the page works where an app mounts
 * Hubbub under its own prefix.
 *
 * Stable hooks for tests: `#status` (`data-state` = `loading | live | locked | error`), `#login`, `#admin-token`,
 * `#login-error`, `#forget`, `#board`, `#notice`, `#problem`; totals `#t-<name>` (connections, rooms, in, out,
 * bytes-in, bytes-out, drops, refusals, uptime, engine, memory); charts `#chart-connections svg` and
 * `#chart-messages svg` with `data-points`; `#filter`, `#rooms-count`, `#rooms tbody tr[data-room]` (cells `.members`,
 * `.rate`, `.messages`, `.history`); `#nodes` (hidden without a broker) with `tr[data-node]`; `#publish`, `#pub-room`,
 * `#pub-text`, `#pub-send`, `#pub-result` (`data-state` = `ok | error | busy`). Pure helpers are on
 * `globalThis.hubbubDashboard`.
 *
 * @module
 */

/** The dashboard as one HTML document; the server sends it as it is (it depends on nothing). */
export const DASHBOARD_PAGE: string = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Hubbub dashboard</title>
<link rel="icon" href="data:,">
<style>
:root {
  color-scheme: light dark;
  --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --panel: #f6f8fa; --grid: #d8dee4;
  --accent: #0969da; --accent-fg: #ffffff; --s1: #0969da; --s2: #1a7f37; --ok: #1a7f37; --err: #cf222e;
  --warn-bg: #fff8c5; --warn-line: #d4a72c; --focus: #0969da;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --line: #3d444d; --panel: #151b23; --grid: #2a313c;
    --accent: #4493f8; --accent-fg: #0d1117; --s1: #58a6ff; --s2: #3fb950; --ok: #3fb950; --err: #ff7b72;
    --warn-bg: #2e2a1a; --warn-line: #9e7a1f; --focus: #79c0ff;
  }
}
* { box-sizing: border-box; }
/* A scrollbar that comes with more rows must not narrow everything. */
html { scrollbar-gutter: stable; }
body { margin: 0; background: var(--bg); color: var(--fg); }
header { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: .25rem 1rem;
  padding: .5rem 1rem; border-bottom: 1px solid var(--line); background: var(--panel); }
h1 { font-size: 1.1rem; margin: 0; }
h1 span { font-weight: 400; color: var(--muted); }
h2 { font-size: 1rem; margin: 0; }
h3 { font-size: .85rem; margin: 0 0 .25rem; color: var(--muted); font-weight: 600; }
.headbar { display: flex; align-items: center; gap: .75rem; }
#status { margin: 0; font-size: .85rem; display: flex; align-items: center; gap: .4rem; white-space: nowrap;
  font-variant-numeric: tabular-nums; }
#status::before { content: ""; width: .6rem; height: .6rem; border-radius: 50%; background: var(--muted); }
#status[data-state=live]::before { background: var(--ok); }
#status[data-state=error]::before, #status[data-state=locked]::before { background: var(--err); }
#updated { color: var(--muted); }
main { max-width: 80rem; margin: 0 auto; padding: .75rem 1rem 2rem; display: flex; flex-direction: column; gap: 1rem; }
section, form { margin: 0; }
.panel { border: 1px solid var(--line); border-radius: 8px; padding: .75rem; min-width: 0; }
.bar { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1rem; margin-bottom: .5rem; }
.muted, .hint { color: var(--muted); font-size: .85rem; margin: 0; }
.notice { margin: 0; padding: .5rem .75rem; border: 1px solid var(--warn-line); background: var(--warn-bg);
  border-radius: 6px; font-size: .9rem; }
.notice:empty, .error:empty { display: none; }
.error { color: var(--err); font-size: .85rem; margin: .25rem 0 0; }
#problem { margin: 0; }
[hidden] { display: none !important; }
/* The board's sections are main's own flex items, with its gap. */
#board { display: contents; }
.num, td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(10.5rem, 1fr)); gap: .5rem; margin: 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: .45rem .7rem; background: var(--panel);
  min-width: 0; }
.card dt { font-size: .8rem; color: var(--muted); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.card dd { margin: 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
  font-variant-numeric: tabular-nums; }
.card .value { font-size: 1.35rem; font-weight: 650; line-height: 1.3; }
.card .sub { font-size: .75rem; color: var(--muted); min-height: 1.1em; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 24rem), 1fr)); gap: .75rem; }
figure { margin: 0; }
figcaption { display: flex; flex-wrap: wrap; align-items: baseline; justify-content: space-between; gap: .25rem .75rem;
  margin-bottom: .35rem; }
figcaption .title { font-weight: 600; }
.legend { display: flex; gap: .75rem; font-size: .8rem; color: var(--muted); font-variant-numeric: tabular-nums; }
.legend span::before { content: ""; display: inline-block; width: .8rem; height: .2rem; margin-right: .3rem;
  vertical-align: middle; border-radius: 2px; background: var(--s1); }
.legend .s2::before { background: var(--s2); }
.plot { display: grid; grid-template-columns: 3.5rem 1fr; height: 9rem; }
.yaxis { display: flex; flex-direction: column; justify-content: space-between; padding-right: .4rem;
  font-size: .75rem; color: var(--muted); text-align: right; font-variant-numeric: tabular-nums; line-height: 1; }
.plot svg { width: 100%; height: 100%; display: block; overflow: visible; }
.plot .grid line { stroke: var(--grid); stroke-width: 1; vector-effect: non-scaling-stroke; }
.plot .line { fill: none; stroke-width: 2; stroke-linejoin: round; vector-effect: non-scaling-stroke; }
.plot .s1 { stroke: var(--s1); }
.plot .s2 { stroke: var(--s2); }
.plot .area { fill: var(--s1); opacity: .14; stroke: none; }
.xaxis { display: flex; justify-content: space-between; margin-left: 3.5rem; font-size: .75rem; color: var(--muted);
  font-variant-numeric: tabular-nums; }
.reasons { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 14rem), 1fr)); gap: .75rem; }
.pairs { margin: 0; display: grid; grid-template-columns: 1fr auto; gap: .1rem .75rem; font-size: .85rem; }
.pairs dt { overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .8rem; }
.pairs dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
.pairs[data-empty]::before { content: attr(data-empty); color: var(--muted); grid-column: 1 / -1; }
input[type=text], input[type=search], input[type=password], textarea { font: inherit; font-size: .9rem;
  padding: .35rem .55rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg);
  width: 100%; min-width: 0; }
textarea { resize: vertical; min-height: 2.2rem; font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
[aria-invalid=true] { border-color: var(--err); }
button { font: inherit; font-size: .9rem; padding: .35rem .9rem; border-radius: 6px; border: 1px solid var(--line);
  background: var(--panel); color: var(--fg); cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-fg); font-weight: 600; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
label { font-weight: 600; font-size: .85rem; }
.row { display: flex; flex-wrap: wrap; align-items: flex-end; gap: .5rem; }
.field { display: flex; flex-direction: column; gap: .2rem; flex: 1 1 18rem; min-width: 0; }
.field.small { flex: 0 1 13rem; }
#filter { width: 14rem; max-width: 100%; }
.filter { margin-left: auto; }
.scroll { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; table-layout: fixed; font-size: .9rem; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid var(--line); text-align: left; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; }
th { font-size: .8rem; color: var(--muted); font-weight: 600; }
#rooms th.num { width: 6.5rem; }
#nodes table { min-width: 40rem; }
#nodes th.id { width: 10.5rem; }
#nodes th.num { width: 7.5rem; }
#nodes th.state { width: 5rem; }
td code { font-size: .8rem; }
a { color: var(--accent); }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .8rem; font-weight: 600;
  border: 1px solid currentColor; }
.badge[data-state=ok] { color: var(--ok); }
.badge[data-state=down] { color: var(--err); }
#pub-result { margin: .35rem 0 0; font-size: .85rem; min-height: 1.3em; }
#pub-result[data-state=ok] { color: var(--ok); }
#pub-result[data-state=error] { color: var(--err); }
.login { max-width: 32rem; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
@media (max-width: 36rem) {
  main { padding: .5rem; }
  header { padding: .5rem; }
  .plot { grid-template-columns: 2.8rem 1fr; }
  .xaxis { margin-left: 2.8rem; }
  #rooms th.num { width: 5rem; }
  th, td { padding: .3rem; }
  #rooms .total { display: none; }
  .filter, #filter { width: 100%; margin-left: 0; }
}
</style>
</head>
<body>
<header>
  <h1>Hubbub <span>dashboard</span></h1>
  <div class="headbar">
    <p id="status" data-state="loading"><span id="state" role="status">Loading…</span> <span id="updated"></span></p>
    <button id="forget" type="button" hidden title="Forget the admin token in this tab">Forget token</button>
  </div>
</header>
<main>
  <p id="problem" class="notice" role="alert"></p>
  <form id="login" class="panel login" novalidate hidden>
    <h2>Admin token</h2>
    <p class="hint">This server guards its dashboard with an admin token (<code>--admin-token</code>). It is kept in
      this tab only and sent as a header, never in a URL.</p>
    <div class="row">
      <div class="field">
        <label for="admin-token">Admin token</label>
        <input id="admin-token" type="password" autocomplete="off" spellcheck="false" aria-describedby="login-error">
      </div>
      <button id="unlock" type="submit" class="primary">Unlock</button>
    </div>
    <p id="login-error" class="error" role="alert"></p>
  </form>
  <div id="board">
    <p id="notice" class="notice"></p>
    <section aria-labelledby="totals-title">
      <h2 id="totals-title" class="sr">This node</h2>
      <dl class="cards">
        <div class="card"><dt>Connections</dt><dd class="value" id="t-connections">–</dd>
          <dd class="sub" id="t-connections-sub"></dd></div>
        <div class="card"><dt>Rooms</dt><dd class="value" id="t-rooms">–</dd><dd class="sub" id="t-rooms-sub"></dd></div>
        <div class="card"><dt>Messages in/s</dt><dd class="value" id="t-in">–</dd><dd class="sub" id="t-in-sub"></dd></div>
        <div class="card"><dt>Delivered/s</dt><dd class="value" id="t-out">–</dd><dd class="sub" id="t-out-sub"></dd></div>
        <div class="card"><dt>Bytes in/s</dt><dd class="value" id="t-bytes-in">–</dd>
          <dd class="sub" id="t-bytes-in-sub"></dd></div>
        <div class="card"><dt>Bytes out/s</dt><dd class="value" id="t-bytes-out">–</dd>
          <dd class="sub" id="t-bytes-out-sub"></dd></div>
        <div class="card"><dt>Drops</dt><dd class="value" id="t-drops">–</dd><dd class="sub" id="t-drops-sub"></dd></div>
        <div class="card"><dt>Refusals</dt><dd class="value" id="t-refusals">–</dd>
          <dd class="sub" id="t-refusals-sub"></dd></div>
        <div class="card"><dt>Uptime</dt><dd class="value" id="t-uptime">–</dd><dd class="sub" id="t-uptime-sub"></dd></div>
        <div class="card"><dt>Engine</dt><dd class="value" id="t-engine">–</dd><dd class="sub" id="t-engine-sub"></dd></div>
        <div class="card"><dt>Memory (RSS)</dt><dd class="value" id="t-memory">–</dd>
          <dd class="sub" id="t-memory-sub"></dd></div>
      </dl>
    </section>
    <section class="charts" aria-label="Charts of the last 5 minutes">
      <figure id="chart-connections" class="panel">
        <figcaption><span class="title">Connections</span>
          <span class="legend"><span class="s1" data-now>–</span></span></figcaption>
        <div class="plot">
          <div class="yaxis" aria-hidden="true"><span data-y="top">1</span><span data-y="mid">0.5</span><span>0</span></div>
          <svg viewBox="0 0 600 150" preserveAspectRatio="none" role="img" aria-label="Connections: no data yet"
            data-points="0">
            <g class="grid"><line x1="0" x2="600" y1="0" y2="0"/><line x1="0" x2="600" y1="75" y2="75"/>
              <line x1="0" x2="600" y1="150" y2="150"/></g>
            <path class="area" d=""/><path class="line s1" d=""/>
          </svg>
        </div>
        <div class="xaxis" aria-hidden="true"><span data-x="start">−1m 00s</span><span>now</span></div>
      </figure>
      <figure id="chart-messages" class="panel">
        <figcaption><span class="title">Messages/s</span>
          <span class="legend"><span class="s1" data-now>in –</span><span class="s2" data-now2>delivered –</span></span>
        </figcaption>
        <div class="plot">
          <div class="yaxis" aria-hidden="true"><span data-y="top">1</span><span data-y="mid">0.5</span><span>0</span></div>
          <svg viewBox="0 0 600 150" preserveAspectRatio="none" role="img" aria-label="Messages per second: no data yet"
            data-points="0">
            <g class="grid"><line x1="0" x2="600" y1="0" y2="0"/><line x1="0" x2="600" y1="75" y2="75"/>
              <line x1="0" x2="600" y1="150" y2="150"/></g>
            <path class="line s2" d=""/><path class="line s1" d=""/>
          </svg>
        </div>
        <div class="xaxis" aria-hidden="true"><span data-x="start">−1m 00s</span><span>now</span></div>
      </figure>
    </section>
    <section class="panel" aria-labelledby="rooms-title">
      <div class="bar">
        <h2 id="rooms-title">Rooms</h2>
        <p id="rooms-count" class="muted">–</p>
        <div class="filter">
          <label for="filter" class="sr">Filter rooms by name</label>
          <input id="filter" type="search" placeholder="Filter rooms" autocomplete="off" spellcheck="false"
            maxlength="64">
        </div>
      </div>
      <div class="scroll">
        <table id="rooms">
          <thead><tr><th scope="col">Room</th><th scope="col" class="num">Members</th>
            <th scope="col" class="num">Msg/s</th><th scope="col" class="num total">Messages</th>
            <th scope="col" class="num" title="Messages kept for late joiners; — while history is off">History</th>
          </tr></thead>
          <tbody></tbody>
        </table>
      </div>
      <p id="rooms-empty" class="muted" hidden></p>
    </section>
    <section id="nodes" class="panel" aria-labelledby="nodes-title" hidden>
      <div class="bar"><h2 id="nodes-title">Nodes</h2><p id="nodes-summary" class="muted">–</p></div>
      <div class="scroll" role="region" aria-labelledby="nodes-title" tabindex="0">
        <table>
          <thead><tr><th scope="col" class="id">ID</th><th scope="col">Address</th>
            <th scope="col" class="num">Connections</th><th scope="col" class="num">Up</th>
            <th scope="col" class="num">Heartbeat</th><th scope="col" class="state">Broker</th></tr></thead>
          <tbody></tbody>
        </table>
      </div>
    </section>
    <section class="panel reasons" aria-label="Drops, refusals and closes by reason">
      <div><h3>Drops by reason</h3><dl id="drops" class="pairs"></dl></div>
      <div><h3>Refusals by reason</h3><dl id="refusals" class="pairs"></dl></div>
      <div><h3>Closes by code</h3><dl id="closes" class="pairs"></dl></div>
    </section>
    <section class="panel" aria-labelledby="publish-title">
      <h2 id="publish-title">Publish to a room</h2>
      <form id="publish" novalidate>
        <div class="row">
          <div class="field small">
            <label for="pub-room">Room</label>
            <input id="pub-room" type="text" list="room-names" autocomplete="off" spellcheck="false" maxlength="64"
              placeholder="lobby" aria-describedby="pub-hint">
          </div>
          <div class="field">
            <label for="pub-text">Message</label>
            <textarea id="pub-text" rows="1" spellcheck="false" aria-describedby="pub-hint"></textarea>
          </div>
          <button id="pub-send" type="submit" class="primary">Publish</button>
        </div>
        <p id="pub-hint" class="hint">Sent as one text message through <code>POST /rooms/&lt;name&gt;</code> to every
          member (<code>/</code> is the main room). Enter publishes, Shift+Enter adds a line.</p>
        <p id="pub-result" role="status"></p>
      </form>
      <datalist id="room-names"></datalist>
    </section>
  </div>
</main>
<script type="module">
const POLL_MS = 1000;
const RETRY_MS = 3000;
const WINDOW_MS = 5 * 60 * 1000;
/** The charts span at least a minute, so the first points do not fill the width. */
const MIN_WINDOW_MS = 60 * 1000;
const TOKEN_KEY = "hubbub.adminToken";
const ROOM_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const W = 600;
const H = 150;

const $ = (id) => document.getElementById(id);
const numbers = new Intl.NumberFormat("en");

/** 1, 2 or 5 times a power of ten, at least n; 1 for anything up to 1. */
function niceCeil(n) {
  if (!(n > 1)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(n)));
  for (const m of [1, 2, 5, 10]) if (m * power >= n) return m * power;
  return 10 * power;
}

function formatCount(n) {
  return n === null || n === undefined ? "—" : numbers.format(n);
}

function formatRate(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  return n >= 100 ? numbers.format(Math.round(n)) : n.toFixed(1);
}

function formatBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return (unit === 0 ? String(Math.round(value)) : value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)) + " " +
    units[unit];
}

function formatDuration(ms) {
  const pad = (n) => String(n).padStart(2, "0");
  const total = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(total / 86400);
  const h = Math.floor(total / 3600) % 24;
  const m = Math.floor(total / 60) % 60;
  const s = total % 60;
  if (d > 0) return d + "d " + pad(h) + "h";
  if (h > 0) return h + "h " + pad(m) + "m";
  if (m > 0) return m + "m " + pad(s) + "s";
  return s + "s";
}

function formatAgo(ms) {
  return ms < 10000 ? (Math.max(0, ms) / 1000).toFixed(1) + " s ago" : formatDuration(ms) + " ago";
}

function plural(n, noun) {
  return formatCount(n) + " " + noun + (n === 1 ? "" : "s");
}

function formatAxis(n) {
  return n < 10 && n % 1 !== 0 ? n.toFixed(1) : numbers.format(n);
}

function clock(date) {
  const p = (n) => String(n).padStart(2, "0");
  return p(date.getHours()) + ":" + p(date.getMinutes()) + ":" + p(date.getSeconds());
}

/** Per second: (now - before) over seconds; null without a before. */
function perSecond(now, before, seconds) {
  return before === null || before === undefined || !(seconds > 0) ? null : Math.max(0, now - before) / seconds;
}

/** The page's URL for a room: the client page for "/" is the page root. */
function roomHref(name) {
  return name === "/" ? "./" : "rooms/" + encodeURIComponent(name);
}

const ui = {
  status: $("status"), state: $("state"), updated: $("updated"), forget: $("forget"), problem: $("problem"),
  login: $("login"), adminToken: $("admin-token"), loginError: $("login-error"), board: $("board"),
  notice: $("notice"), filter: $("filter"), roomsCount: $("rooms-count"), roomsBody: $("rooms").tBodies[0],
  roomsEmpty: $("rooms-empty"), roomNames: $("room-names"), nodes: $("nodes"), nodesSummary: $("nodes-summary"),
  nodesBody: $("nodes").querySelector("tbody"), drops: $("drops"), refusals: $("refusals"), closes: $("closes"),
  publish: $("publish"), pubRoom: $("pub-room"), pubText: $("pub-text"), pubSend: $("pub-send"),
  pubResult: $("pub-result"),
};
const totals = {};
for (const id of ["connections", "rooms", "in", "out", "bytes-in", "bytes-out", "drops", "refusals", "uptime",
  "engine", "memory"]) totals[id] = { value: $("t-" + id), sub: $("t-" + id + "-sub") };

function chartOf(id, title, keys) {
  const figure = $(id);
  return {
    title, keys, svg: figure.querySelector("svg"), lines: [...figure.querySelectorAll("path.line")].reverse(),
    area: figure.querySelector("path.area"), top: figure.querySelector('[data-y="top"]'),
    mid: figure.querySelector('[data-y="mid"]'), start: figure.querySelector('[data-x="start"]'),
    now: [figure.querySelector("[data-now]"), figure.querySelector("[data-now2]")],
  };
}
const charts = [
  chartOf("chart-connections", "Connections", ["connections"]),
  chartOf("chart-messages", "Messages per second", ["in", "out"]),
];

let token = sessionStorage.getItem(TOKEN_KEY) ?? "";
/** The last snapshot shown, for rates. */
let previous = null;
/** Chart points { t, connections, in, out }, t in the server's uptime milliseconds, oldest first. */
const series = [];
const roomRows = new Map();
const nodeRows = new Map();
let timer = 0;
let generation = 0;
let publishing = false;

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function authHeaders() {
  return token === "" ? {} : { authorization: "Bearer " + token };
}

function setStatus(state, label) {
  ui.status.dataset.state = state;
  setText(ui.state, label);
  if (state !== "live") setText(ui.updated, "");
  ui.forget.hidden = token === "";
}

/** Fetches one snapshot and shows it; schedules the next unless the page must first be given the admin token. */
async function poll() {
  clearTimeout(timer);
  const mine = ++generation;
  let next = POLL_MS;
  try {
    const filter = ui.filter.value.trim();
    const url = "dashboard.json" + (filter === "" ? "" : "?" + new URLSearchParams({ filter }));
    const response = await fetch(url, { headers: authHeaders(), cache: "no-store", signal: AbortSignal.timeout(5000) });
    const body = await response.text();
    if (mine !== generation) return;
    if (response.status === 401) {
      next = 0;
      locked();
    } else if (!response.ok) {
      next = RETRY_MS;
      failed("The server refused the dashboard (HTTP " + response.status + "): " + body.trim());
    } else {
      render(JSON.parse(body));
    }
  } catch (error) {
    if (mine !== generation) return;
    next = RETRY_MS;
    failed("Cannot reach the server, retrying: " + error.message);
  } finally {
    if (mine === generation && next > 0) timer = setTimeout(poll, next);
  }
}

function locked() {
  const refused = token !== "";
  token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  ui.login.hidden = false;
  ui.board.hidden = true;
  setText(ui.problem, "");
  setText(ui.loginError, refused ? "The server refused that admin token: check it and try again." : "");
  if (refused) ui.adminToken.setAttribute("aria-invalid", "true");
  setStatus("locked", "Needs the admin token");
  if (!ui.login.contains(document.activeElement)) ui.adminToken.focus();
}

function failed(message) {
  setText(ui.problem, message);
  setStatus("error", "Not updating");
}

function render(snapshot) {
  const { server } = snapshot;
  if (previous !== null && previous.server.startedAt !== server.startedAt) {
    // The server restarted: its counters began again, and so do the rates and charts.
    previous = null;
    series.length = 0;
  }
  ui.login.hidden = true;
  ui.board.hidden = false;
  ui.adminToken.removeAttribute("aria-invalid");
  setText(ui.loginError, "");
  setText(ui.problem, "");
  const seconds = previous === null ? 0 : (server.uptimeMs - previous.server.uptimeMs) / 1000;
  const before = (key) => previous === null ? null : previous.totals[key];
  const t = snapshot.totals;
  const rates = {
    in: perSecond(t.messagesReceived, before("messagesReceived"), seconds),
    out: perSecond(t.messagesDelivered, before("messagesDelivered"), seconds),
    bytesIn: perSecond(t.bytesIn, before("bytesIn"), seconds),
    bytesOut: perSecond(t.bytesOut, before("bytesOut"), seconds),
  };
  renderTotals(snapshot, rates);
  if (seconds > 0 || previous === null) {
    series.push({ t: server.uptimeMs, connections: t.connections, in: rates.in, out: rates.out });
    while (series.length > 0 && series[0].t < server.uptimeMs - WINDOW_MS) series.shift();
  }
  for (const chart of charts) drawChart(chart);
  renderRooms(snapshot, seconds);
  renderNodes(snapshot);
  renderPairs(ui.drops, Object.entries(t.dropped), "none");
  renderPairs(ui.refusals, Object.entries(t.refused), "none");
  renderPairs(ui.closes, Object.entries(t.closes), "none yet");
  renderNotice(server);
  previous = snapshot;
  setStatus("live", "Live");
  setText(ui.updated, "· " + clock(new Date()));
}

function renderTotals(snapshot, rates) {
  const { server, totals: t, memory } = snapshot;
  const show = (id, value, sub) => {
    setText(totals[id].value, value);
    setText(totals[id].sub, sub);
  };
  const sum = (record) => Object.values(record).reduce((a, b) => a + b, 0);
  show("connections", formatCount(t.connections), snapshot.cluster?.connections == null
    ? formatCount(t.upgrades) + " accepted since start"
    : formatCount(snapshot.cluster.connections) + " across the cluster");
  show("rooms", formatCount(t.rooms), snapshot.cluster?.rooms == null ? "on this node" :
    formatCount(snapshot.cluster.rooms) + " across the cluster");
  show("in", formatRate(rates.in), formatCount(t.messagesReceived) + " in total");
  show("out", formatRate(rates.out), formatCount(t.messagesDelivered) + " in total");
  show("bytes-in", rates.bytesIn === null ? "—" : formatBytes(rates.bytesIn) + "/s", formatBytes(t.bytesIn) + " in total");
  show("bytes-out", rates.bytesOut === null ? "—" : formatBytes(rates.bytesOut) + "/s",
    formatBytes(t.bytesOut) + " in total");
  show("drops", formatCount(sum(t.dropped)), "since start");
  show("refusals", formatCount(sum(t.refused)), "handshakes refused");
  const started = new Date(server.startedAt);
  show("uptime", formatDuration(server.uptimeMs), "since " + (server.uptimeMs < 86400000
    ? clock(started)
    : started.toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric" })));
  show("engine", server.engine, "mode " + server.mode);
  show("memory", formatBytes(memory.rss), "heap " + formatBytes(memory.heapUsed));
  totals.memory.sub.title = "V8 heap " + formatBytes(memory.heapUsed) + " used of " + formatBytes(memory.heapTotal) +
    ", " + formatBytes(memory.external) + " outside it";
}

function drawChart(chart) {
  const last = series[series.length - 1];
  const end = last ? last.t : 0;
  const span = Math.min(WINDOW_MS, Math.max(MIN_WINDOW_MS, series.length ? end - series[0].t : 0));
  const start = end - span;
  let max = 0;
  for (const point of series) {
    for (const key of chart.keys) if (point[key] !== null && point[key] > max) max = point[key];
  }
  const top = niceCeil(max);
  let points = 0;
  chart.keys.forEach((key, i) => {
    let d = "";
    let firstX = "";
    let lastX = "";
    for (const point of series) {
      if (point[key] === null) continue;
      const x = ((point.t - start) / span * W).toFixed(1);
      const y = (H - point[key] / top * H).toFixed(1);
      d += (d === "" ? "M" : "L") + x + " " + y;
      if (firstX === "") firstX = x;
      lastX = x;
      if (i === 0) points++;
    }
    chart.lines[i].setAttribute("d", d);
    if (i === 0 && chart.area) {
      chart.area.setAttribute("d", d === "" ? "" : d + "L" + lastX + " " + H + "L" + firstX + " " + H + "Z");
    }
  });
  chart.svg.dataset.points = String(points);
  setText(chart.top, formatAxis(top));
  setText(chart.mid, formatAxis(top / 2));
  setText(chart.start, "−" + formatDuration(span));
  const now = last ? chart.keys.map((key) => last[key]) : [];
  if (chart.keys.length === 1) {
    setText(chart.now[0], "now " + formatCount(now[0] ?? null));
  } else {
    setText(chart.now[0], "in " + formatRate(now[0] ?? null));
    setText(chart.now[1], "delivered " + formatRate(now[1] ?? null));
  }
  const described = chart.keys.length === 1
    ? "now " + formatCount(now[0] ?? null)
    : "now " + formatRate(now[0] ?? null) + " in and " + formatRate(now[1] ?? null) + " delivered";
  chart.svg.setAttribute("aria-label", chart.title + " over the last " + formatDuration(span) + ": " + described +
    ", scale 0 to " + formatAxis(top));
}

/** Puts rows for items into tbody in order: existing rows are updated in place (focus stays), others made. */
function syncRows(tbody, rows, items, keyOf, create, update) {
  const seen = new Set();
  let cursor = tbody.firstElementChild;
  for (const item of items) {
    const key = keyOf(item);
    seen.add(key);
    let row = rows.get(key);
    if (row === undefined) {
      row = create(item);
      rows.set(key, row);
    }
    update(row, item);
    if (row.tr !== cursor) tbody.insertBefore(row.tr, cursor);
    else cursor = cursor.nextElementSibling;
  }
  for (const [key, row] of rows) {
    if (!seen.has(key)) {
      row.tr.remove();
      rows.delete(key);
    }
  }
}

function renderRooms(snapshot, seconds) {
  const { rooms } = snapshot;
  const earlier = new Map((previous?.rooms.list ?? []).map((room) => [room.name, room.messages]));
  // A room missing from a complete earlier list did not exist then: its messages all came since.
  const complete = previous !== null && previous.rooms.filter === rooms.filter &&
    previous.rooms.matched === previous.rooms.list.length;
  syncRows(ui.roomsBody, roomRows, rooms.list, (room) => room.name, (room) => {
    const tr = el("tr");
    tr.dataset.room = room.name;
    const name = el("td", "name");
    const link = el("a", "", room.name === "/" ? "/ (main room)" : room.name);
    link.href = roomHref(room.name);
    link.target = "_blank";
    link.rel = "noopener";
    link.title = "Open the client page on " + (room.name === "/" ? "the main room" : room.name) + " (new tab)";
    name.append(link);
    const cells = {
      members: el("td", "num members"), rate: el("td", "num rate"), messages: el("td", "num total messages"),
      history: el("td", "num history"),
    };
    tr.append(name, cells.members, cells.rate, cells.messages, cells.history);
    return { tr, cells };
  }, (row, room) => {
    let base = earlier.has(room.name) ? earlier.get(room.name) : complete ? 0 : null;
    if (base !== null && room.messages < base) base = 0; // emptied and made again in between
    setText(row.cells.members, formatCount(room.members));
    setText(row.cells.rate, formatRate(perSecond(room.messages, base, seconds)));
    setText(row.cells.messages, formatCount(room.messages));
    setText(row.cells.history, room.history === null ? "—" : formatCount(room.history));
  });
  const shown = rooms.list.length;
  const what = rooms.filter === "" ? "" : " matching “" + rooms.filter + "”";
  setText(ui.roomsCount, shown < rooms.matched
    ? "the " + shown + " largest of " + formatCount(rooms.matched) + " rooms" + what
    : plural(rooms.matched, "room") + what);
  ui.roomsEmpty.hidden = shown > 0;
  setText(ui.roomsEmpty, rooms.filter === "" ? "No rooms: nobody is in a room on this node." :
    "No room on this node matches “" + rooms.filter + "”.");
  const names = rooms.list.map((room) => room.name).join("\n");
  if (ui.roomNames.dataset.names !== names) {
    ui.roomNames.dataset.names = names;
    ui.roomNames.replaceChildren(...rooms.list.map((room) => {
      const option = el("option");
      option.value = room.name;
      return option;
    }));
  }
}

function renderNodes(snapshot) {
  const cluster = snapshot.cluster;
  ui.nodes.hidden = cluster === null;
  if (cluster === null) return;
  const now = snapshot.server.now;
  setText(ui.nodesSummary, cluster.error !== null ? "Broker down: " + cluster.error
    : plural(cluster.nodes.length, "node") + ", " + plural(cluster.connections, "connection") + " and " +
      plural(cluster.rooms, "room") + " across the cluster");
  syncRows(ui.nodesBody, nodeRows, cluster.nodes, (node) => node.id, (node) => {
    const tr = el("tr");
    tr.dataset.node = node.id;
    const id = el("td");
    id.append(el("code", "", node.id));
    const address = el("td", "address");
    const link = el("a", "", node.address + (node.address === location.origin ? " (this node)" : ""));
    link.href = node.address + "/dashboard";
    link.target = "_blank";
    link.rel = "noopener";
    address.append(link);
    const cells = {
      connections: el("td", "num connections"), up: el("td", "num up"), heartbeat: el("td", "num heartbeat"),
      broker: el("span", "badge"),
    };
    const broker = el("td");
    broker.append(cells.broker);
    tr.append(id, address, cells.connections, cells.up, cells.heartbeat, broker);
    return { tr, cells };
  }, (row, node) => {
    setText(row.cells.connections, formatCount(node.connections));
    setText(row.cells.up, formatDuration(now - node.startedAt));
    row.cells.up.title = "Up since " + new Date(node.startedAt).toLocaleString("en-GB");
    setText(row.cells.heartbeat, formatAgo(now - node.heartbeatAt));
    row.cells.broker.dataset.state = node.broker;
    setText(row.cells.broker, node.broker);
  });
}

function renderPairs(list, entries, empty) {
  const keys = entries.map(([key]) => key).join("\n");
  if (list.dataset.keys !== keys) {
    list.dataset.keys = keys;
    list.replaceChildren(...entries.flatMap(([key]) => [el("dt", "", key), el("dd")]));
    if (entries.length === 0) list.dataset.empty = empty;
    else delete list.dataset.empty;
  }
  entries.forEach(([, value], i) => setText(list.children[2 * i + 1], formatCount(value)));
}

function renderNotice(server) {
  setText(ui.notice, server.access === "loopback" && !server.loopback
    ? "This server listens on " + server.hostname + ", but with no --admin-token its dashboard answers this machine " +
      "only (http://localhost). To watch it from elsewhere, restart it with --admin-token."
    : "");
}

async function publish() {
  if (publishing) return;
  const room = ui.pubRoom.value.trim();
  if (room !== "/" && (!ROOM_NAME.test(room) || room === "." || room === "..")) {
    ui.pubRoom.setAttribute("aria-invalid", "true");
    ui.pubResult.dataset.state = "error";
    setText(ui.pubResult, "Room names are / or 1-64 of A-Z a-z 0-9 . _ -, got: " + (room || "(empty)"));
    ui.pubRoom.focus();
    return;
  }
  ui.pubRoom.removeAttribute("aria-invalid");
  publishing = true;
  ui.pubResult.dataset.state = "busy";
  setText(ui.pubResult, "Publishing…");
  try {
    const response = await fetch(roomHref(room), {
      method: "POST",
      headers: { ...authHeaders(), "content-type": "text/plain; charset=utf-8" },
      body: ui.pubText.value,
      cache: "no-store",
    });
    const body = await response.text();
    if (response.status === 202) {
      const answer = JSON.parse(body);
      ui.pubResult.dataset.state = "ok";
      setText(ui.pubResult, "Published " + formatCount(answer.bytes) + " bytes to " +
        (room === "/" ? "the main room" : room) + ".");
      ui.pubText.value = "";
    } else {
      ui.pubResult.dataset.state = "error";
      setText(ui.pubResult, "Not published (HTTP " + response.status + "): " + body.trim());
    }
  } catch (error) {
    ui.pubResult.dataset.state = "error";
    setText(ui.pubResult, "Not published: " + error.message);
  } finally {
    publishing = false;
  }
}

globalThis.hubbubDashboard = { niceCeil, formatCount, formatRate, formatBytes, formatDuration, perSecond, series };

ui.login.addEventListener("submit", (event) => {
  event.preventDefault();
  const value = ui.adminToken.value.trim();
  if (value === "") {
    ui.adminToken.setAttribute("aria-invalid", "true");
    setText(ui.loginError, "Enter the admin token the server was started with.");
    return;
  }
  token = value;
  sessionStorage.setItem(TOKEN_KEY, token);
  ui.adminToken.value = "";
  setText(ui.loginError, "");
  poll();
});
ui.adminToken.addEventListener("input", () => ui.adminToken.removeAttribute("aria-invalid"));
ui.forget.addEventListener("click", () => {
  token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  poll();
});
let filterTimer = 0;
ui.filter.addEventListener("input", () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(poll, 250);
});
ui.publish.addEventListener("submit", (event) => {
  event.preventDefault();
  publish();
});
ui.pubText.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    publish();
  }
});
ui.pubRoom.addEventListener("input", () => ui.pubRoom.removeAttribute("aria-invalid"));
setStatus("loading", "Loading…");
poll();
</script>
</body>
</html>
`;
