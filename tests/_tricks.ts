/**
 * Host and request-target tricks, as raw request heads, with the answer both engines must give. Shared by
 * `target_test.ts` (in-process, with log checks) and the hostile suite (against a server process).
 *
 * @module
 */

const UPGRADE = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
  "Sec-WebSocket-Version: 13\r\n";

/** One trick: the request head (`{port}` is replaced), the status, and what the body or status line must match. */
export interface Trick {
  readonly name: string;
  readonly head: string;
  readonly status: number;
  readonly body?: RegExp;
  readonly statusLine?: RegExp;
}

/** Every trick; routing must use the target's path as sent, and a bad Host or target is a 400. */
export const TRICKS: readonly Trick[] = [
  {
    name: "a Host that splices a room into the URL",
    head: `GET / HTTP/1.1\r\nHost: x/rooms/secret?\r\n${UPGRADE}\r\n`,
    status: 400,
    body: /^Invalid Host header/,
  },
  {
    name: "a Host that splices /echo into the URL",
    head: `GET /rooms/lobby HTTP/1.1\r\nHost: x/echo#\r\n${UPGRADE}\r\n`,
    status: 400,
    body: /^Invalid Host header/,
  },
  {
    name: "a Host that splices /healthz into the URL",
    head: "GET /nope HTTP/1.1\r\nHost: x/healthz#\r\n\r\n",
    status: 400,
    body: /^Invalid Host header/,
  },
  {
    name: "a Host with a space",
    head: "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n",
    status: 400,
    body: /^Invalid Host/,
  },
  {
    name: "a Host with a port out of range",
    head: "GET /healthz HTTP/1.1\r\nHost: x:99999\r\n\r\n",
    status: 400,
    body: /^Invalid Host/,
  },
  {
    name: "an empty Host with /metrics",
    head: "GET /metrics HTTP/1.1\r\nHost: \r\n\r\n",
    status: 200,
    body: /^# HELP hubbub_connections /,
  },
  { name: "a target without its leading slash", head: "GET healthz HTTP/1.1\r\nHost: x\r\n\r\n", status: 400 },
  { name: "a target that starts with @", head: "GET @evil/healthz HTTP/1.1\r\nHost: x\r\n\r\n", status: 400 },
  { name: "a target with a fragment", head: "GET /healthz#x HTTP/1.1\r\nHost: x\r\n\r\n", status: 400 },
  {
    name: "an absolute-form target",
    head: "GET http://127.0.0.1:{port}/healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
    status: 200,
    body: /"status":"ok"/,
  },
  {
    name: "an upgrade into room %2e%2e",
    head: `GET /rooms/%2e%2e HTTP/1.1\r\nHost: x\r\n${UPGRADE}\r\n`,
    status: 400,
    body: /cannot be \. or \.\./,
  },
  {
    name: "/metrics behind an encoded dot-dot",
    head: "GET /rooms/%2e%2e/metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    status: 400,
    body: /^Room name/,
  },
  { name: "/metrics behind a backslash", head: "GET /rooms/..\\metrics HTTP/1.1\r\nHost: x\r\n\r\n", status: 400 },
  { name: "/stats for room ..", head: "GET /stats?room=.. HTTP/1.1\r\nHost: x\r\n\r\n", status: 400 },
  { name: "/stats for room .", head: "GET /stats?room=%2e HTTP/1.1\r\nHost: x\r\n\r\n", status: 400 },
  { name: "a route with a trailing slash", head: "GET /healthz/ HTTP/1.1\r\nHost: x\r\n\r\n", status: 404 },
  { name: "a route with a double slash", head: "GET //healthz HTTP/1.1\r\nHost: x\r\n\r\n", status: 404 },
  { name: "a percent-encoded route", head: "GET /%68ealthz HTTP/1.1\r\nHost: x\r\n\r\n", status: 404 },
  {
    name: "a method in lower case",
    head: "get /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    status: 405,
    statusLine: /^HTTP\/1\.1 405 Method Not Allowed$/,
  },
  {
    name: "an upgrade with a method in lower case",
    head: `get /echo HTTP/1.1\r\nHost: x\r\n${UPGRADE}\r\n`,
    status: 405,
    body: /must use GET, not get/,
  },
];

/** The head of `trick` for a server on `port`. */
export function trickHead(trick: Trick, port: number): string {
  return trick.head.replaceAll("{port}", String(port));
}
