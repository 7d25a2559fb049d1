/**
 * Sans-I/O HTTP/1.1 for the WebSocket opening handshake: parse a request head (RFC 9112) and write a response head
 * for the server, parse a response head for the client, and compute `Sec-WebSocket-Accept` (RFC 6455 §4.2.2).
 * Bodies are out of scope: bytes after the head are the caller's.
 *
 * @module
 */

import { sha1 } from "./sha1.ts";

/** Options for {@linkcode parseRequestHead}. */
export interface ParseRequestHeadOptions {
  /**
   * Largest request head accepted, in bytes up to and including the blank line; a longer one is a 431.
   *
   * @default {16384}
   */
  maxHeadBytes?: number;
}

/** A parsed request head. */
export interface RequestHead {
  kind: "request";
  /** The method, case preserved (methods are case-sensitive). */
  method: string;
  /** The request target as sent, e.g. `/chat?room=a`. */
  target: string;
  /** The HTTP version. */
  version: "1.1" | "1.0";
  /** The header fields; repeated names are combined with `", "` as `Headers.append` does. */
  headers: Headers;
  /** Bytes the head took, including any leading blank lines and the final CRLFCRLF. */
  headLength: number;
}

/** Why a request head was refused, with the status to answer before closing the connection. */
export interface RequestHeadError {
  kind: "error";
  /** 400 for a malformed head, 431 for one too large, 505 for an HTTP version other than 1.0 and 1.1. */
  status: 400 | 431 | 505;
  /** A short fixed description, safe to send as a response body. */
  reason: string;
}

/** What {@linkcode parseRequestHead} found: more bytes needed, a refusal, or a request. */
export type ParseRequestHeadResult = { kind: "incomplete" } | RequestHeadError | RequestHead;

/** Options for {@linkcode parseResponseHead}. */
export interface ParseResponseHeadOptions {
  /**
   * Largest response head accepted, in bytes up to and including the blank line.
   *
   * @default {16384}
   */
  maxHeadBytes?: number;
}

/** A parsed response head. */
export interface ResponseHead {
  kind: "response";
  /** The HTTP version. */
  version: "1.1" | "1.0";
  /** The status code, 100–599. */
  status: number;
  /** The reason phrase as sent (possibly empty); RFC 9112 §4 says a client should not rely on it. */
  statusText: string;
  /** The header fields; repeated names are combined with `", "` as `Headers.append` does. */
  headers: Headers;
  /** Bytes the head took, including the final CRLFCRLF. */
  headLength: number;
}

/** Why a response head could not be parsed. */
export interface ResponseHeadError {
  kind: "error";
  /** A short fixed description. */
  reason: string;
}

/** What {@linkcode parseResponseHead} found: more bytes needed, a malformed head, or a response. */
export type ParseResponseHeadResult = { kind: "incomplete" } | ResponseHeadError | ResponseHead;

/** Options for {@linkcode serializeResponseHead}. */
export interface SerializeResponseHeadOptions {
  /**
   * The reason phrase after the status code.
   *
   * @default {the standard phrase for `status` from {@linkcode STATUS_TEXT}, or "" for others}
   */
  statusText?: string;
}

const DEFAULTS = {
  // 16 KiB: a browser's handshake with cookies fits in a few KiB; more is abuse or a misrouted client.
  maxHeadBytes: 16_384,
} as const;

/** Standard reason phrases for the statuses a WebSocket server answers with (RFC 9110 §15). */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  101: "Switching Protocols",
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  411: "Length Required",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const INCOMPLETE = { kind: "incomplete" } as const;
// RFC 6455 §1.3: the fixed GUID appended to Sec-WebSocket-Key before hashing.
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const utf8Encoder = new TextEncoder();

// RFC 9110 §5.6.2 tchar, as a lookup table indexed by byte.
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TOKEN[c.charCodeAt(0)] = 1;
}

function isToken(bytes: Uint8Array, start: number, end: number): boolean {
  if (start >= end) return false;
  for (let i = start; i < end; i++) if (TOKEN[bytes[i]] === 0) return false;
  return true;
}

/** RFC 9110 §5.5 field-vchar or SP/HTAB: visible ASCII, obs-text (0x80–0xFF), and blanks; no other controls. */
function isFieldByte(b: number): boolean {
  return b === HTAB || (b >= SP && b !== 0x7f);
}

function latin1(bytes: Uint8Array, start: number, end: number): string {
  let text = "";
  // Bounded slices keep `apply` well under engine argument limits.
  for (let i = start; i < end; i += 4096) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, Math.min(end, i + 4096)) as unknown as number[]);
  }
  return text;
}

function fail(status: 400 | 431 | 505, reason: string): RequestHeadError {
  return { kind: "error", status, reason };
}

function checkMaxHeadBytes(maxHeadBytes: number): void {
  if (!Number.isSafeInteger(maxHeadBytes) || maxHeadBytes <= 0) {
    throw new RangeError(`maxHeadBytes must be a positive safe integer: ${maxHeadBytes}`);
  }
}

/**
 * Finds the blank line ending the head that starts at `start`, pushing each line's [start, end) onto `lines`.
 * Returns the head's length, -1 when no blank line came within `limit` bytes, or the reason the lines are malformed.
 */
function scanLines(bytes: Uint8Array, start: number, limit: number, lines: number[], what: string): number | string {
  let lineStart = start;
  for (let i = start; i < limit; i++) {
    const b = bytes[i];
    if (b === CR) {
      if (i + 1 < bytes.length && bytes[i + 1] !== LF) return `Bare CR in ${what} head`;
    } else if (b === LF) {
      if (i === 0 || bytes[i - 1] !== CR) return `Bare LF in ${what} head`;
      if (i - 1 === lineStart) return i + 1;
      lines.push(lineStart, i - 1);
      lineStart = i + 1;
    }
  }
  return -1;
}

/**
 * Parses the header lines `lines[2..]` into `headers` with the same strictness for requests and responses; returns
 * how many Host fields there were, or the reason a line is malformed.
 */
function parseFields(bytes: Uint8Array, lines: number[], headers: Headers): number | string {
  let hosts = 0;
  for (let l = 2; l < lines.length; l += 2) {
    const from = lines[l];
    const to = lines[l + 1];
    if (bytes[from] === SP || bytes[from] === HTAB) return "Obsolete line folding";
    let colon = from;
    while (colon < to && bytes[colon] !== COLON) colon++;
    if (colon === to || !isToken(bytes, from, colon)) return "Malformed header name";
    let valueStart = colon + 1;
    let valueEnd = to;
    while (valueStart < valueEnd && (bytes[valueStart] === SP || bytes[valueStart] === HTAB)) valueStart++;
    while (valueEnd > valueStart && (bytes[valueEnd - 1] === SP || bytes[valueEnd - 1] === HTAB)) valueEnd--;
    for (let i = valueStart; i < valueEnd; i++) {
      if (!isFieldByte(bytes[i])) return "Malformed header value";
    }
    const name = latin1(bytes, from, colon);
    if (name.length === 4 && name.toLowerCase() === "host") hosts++;
    headers.append(name, latin1(bytes, valueStart, valueEnd));
  }
  return hosts;
}

/**
 * Finds the end of an HTTP head: the offset just past the first CRLF CRLF at or after `from`, or -1. A caller that
 * reads a head in pieces scans only the new bytes (from 3 before them), so a trickled head costs linear time.
 *
 * @example
 * ```ts
 * import { findHeadEnd } from "./http1.ts";
 * import assert from "node:assert/strict";
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\nrest");
 * assert.equal(findHeadEnd(bytes), bytes.length - 4);
 * assert.equal(findHeadEnd(bytes.subarray(0, 20)), -1);
 * ```
 */
export function findHeadEnd(bytes: Uint8Array, from = 0): number {
  for (let i = bytes.indexOf(LF, Math.max(0, from)); i >= 0; i = bytes.indexOf(LF, i + 1)) {
    if (i >= 3 && bytes[i - 1] === CR && bytes[i - 2] === LF && bytes[i - 3] === CR) return i + 1;
  }
  return -1;
}

/**
 * Parses an HTTP/1.x request head from the start of `bytes` (everything received so far on the connection).
 *
 * Strict where laxness enables request smuggling or header injection: lines end in CRLF only (a bare CR or LF is a
 * 400), obs-fold is a 400, whitespace before a header's colon is a 400, controls in values are a 400. An HTTP/1.1
 * request needs exactly one Host header (RFC 9112 §3.2: otherwise 400); HTTP/1.0 may omit it. Leading blank lines
 * are skipped (RFC 9112 §2.2).
 *
 * @example
 * ```ts
 * import { parseRequestHead } from "./http1.ts";
 * import assert from "node:assert/strict";
 * const head = new TextEncoder().encode("GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\r\n");
 * const result = parseRequestHead(head);
 * assert.equal(result.kind, "request");
 * if (result.kind === "request") {
 *   assert.equal(result.target, "/chat");
 *   assert.equal(result.headers.get("upgrade"), "websocket");
 *   assert.equal(result.headLength, head.length);
 * }
 * assert.deepEqual(parseRequestHead(head.subarray(0, 20)), { kind: "incomplete" });
 * ```
 */
export function parseRequestHead(bytes: Uint8Array, options: ParseRequestHeadOptions = {}): ParseRequestHeadResult {
  const maxHeadBytes = options.maxHeadBytes ?? DEFAULTS.maxHeadBytes;
  checkMaxHeadBytes(maxHeadBytes);
  let start = 0;
  while (start + 1 < bytes.length && bytes[start] === CR && bytes[start + 1] === LF) start += 2;

  const lines: number[] = [];
  const headLength = scanLines(bytes, start, Math.min(bytes.length, maxHeadBytes), lines, "request");
  if (typeof headLength === "string") return fail(400, headLength);
  if (headLength < 0) {
    return bytes.length >= maxHeadBytes ? fail(431, "Request head too large") : INCOMPLETE;
  }
  if (lines.length === 0) return fail(400, "Empty request head");

  // request-line = method SP request-target SP HTTP-version (RFC 9112 §3)
  const lineEnd = lines[1];
  const firstSpace = bytes.indexOf(SP, start);
  if (firstSpace < 0 || firstSpace >= lineEnd) return fail(400, "Malformed request line");
  const secondSpace = bytes.indexOf(SP, firstSpace + 1);
  if (secondSpace < 0 || secondSpace >= lineEnd) return fail(400, "Malformed request line");
  if (!isToken(bytes, start, firstSpace)) return fail(400, "Malformed request method");
  if (secondSpace === firstSpace + 1) return fail(400, "Malformed request target");
  for (let i = firstSpace + 1; i < secondSpace; i++) {
    // Visible ASCII only; a third space lands in the version and fails there.
    if (bytes[i] <= SP || bytes[i] >= 0x7f) return fail(400, "Malformed request target");
  }
  const versionText = latin1(bytes, secondSpace + 1, lineEnd);
  let version: "1.1" | "1.0";
  if (versionText === "HTTP/1.1") version = "1.1";
  else if (versionText === "HTTP/1.0") version = "1.0";
  else if (/^HTTP\/\d(\.\d)?$/.test(versionText)) return fail(505, "HTTP version not supported");
  else return fail(400, "Malformed HTTP version");

  const headers = new Headers();
  const hosts = parseFields(bytes, lines, headers);
  if (typeof hosts === "string") return fail(400, hosts);
  if (hosts > 1) return fail(400, "Duplicate Host header");
  if (hosts === 0 && version === "1.1") return fail(400, "Missing Host header");

  return {
    kind: "request",
    method: latin1(bytes, start, firstSpace),
    target: latin1(bytes, firstSpace + 1, secondSpace),
    version,
    headers,
    headLength,
  };
}

/**
 * Parses an HTTP/1.x response head from the start of `bytes` (everything received so far on the connection), as a
 * WebSocket client reads the server's answer to its upgrade request.
 *
 * As strict as {@linkcode parseRequestHead} about line endings and header fields; the status line is
 * `HTTP/1.1 SP 3DIGIT SP reason`, where the space before an empty reason may be missing (RFC 9112 §4).
 *
 * @example
 * ```ts
 * import { parseResponseHead } from "./http1.ts";
 * import assert from "node:assert/strict";
 * const bytes = new TextEncoder().encode("HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nNope\n");
 * const result = parseResponseHead(bytes);
 * assert.equal(result.kind, "response");
 * if (result.kind === "response") {
 *   assert.equal(result.status, 404);
 *   assert.equal(result.statusText, "Not Found");
 *   assert.equal(result.headers.get("content-length"), "5");
 *   assert.equal(result.headLength, bytes.length - 5);
 * }
 * assert.deepEqual(parseResponseHead(bytes.subarray(0, 20)), { kind: "incomplete" });
 * ```
 */
export function parseResponseHead(bytes: Uint8Array, options: ParseResponseHeadOptions = {}): ParseResponseHeadResult {
  const maxHeadBytes = options.maxHeadBytes ?? DEFAULTS.maxHeadBytes;
  checkMaxHeadBytes(maxHeadBytes);
  const lines: number[] = [];
  const headLength = scanLines(bytes, 0, Math.min(bytes.length, maxHeadBytes), lines, "response");
  if (typeof headLength === "string") return { kind: "error", reason: headLength };
  if (headLength < 0) {
    return bytes.length >= maxHeadBytes ? { kind: "error", reason: "Response head too large" } : INCOMPLETE;
  }
  if (lines.length === 0) return { kind: "error", reason: "Empty response head" };

  // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4)
  const lineEnd = lines[1];
  const versionText = latin1(bytes, 0, Math.min(8, lineEnd));
  let version: "1.1" | "1.0";
  if (versionText === "HTTP/1.1") version = "1.1";
  else if (versionText === "HTTP/1.0") version = "1.0";
  else return { kind: "error", reason: "Malformed status line" };
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const digit = bytes[i] - 0x30;
    if (i >= lineEnd || digit < 0 || digit > 9) return { kind: "error", reason: "Malformed status line" };
    status = status * 10 + digit;
  }
  if (bytes[8] !== SP || (lineEnd > 12 && bytes[12] !== SP) || status < 100 || status > 599) {
    return { kind: "error", reason: "Malformed status line" };
  }
  for (let i = 13; i < lineEnd; i++) {
    if (!isFieldByte(bytes[i])) return { kind: "error", reason: "Malformed status line" };
  }

  const headers = new Headers();
  const fields = parseFields(bytes, lines, headers);
  if (typeof fields === "string") return { kind: "error", reason: fields };
  return {
    kind: "response",
    version,
    status,
    statusText: lineEnd > 13 ? latin1(bytes, 13, lineEnd) : "",
    headers,
    headLength,
  };
}

function isFieldText(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff || !isFieldByte(c)) return false;
  }
  return true;
}

/**
 * Writes an HTTP/1.1 response head (status line, header lines, blank line) as bytes.
 *
 * Throws a `RangeError` for a status outside 100–599 and a `TypeError` for a name that is not a token or text with
 * CR, LF or other controls, so nothing can inject header lines.
 *
 * @example
 * ```ts
 * import { serializeResponseHead } from "./http1.ts";
 * import assert from "node:assert/strict";
 * const head = serializeResponseHead(101, [["Upgrade", "websocket"], ["Connection", "Upgrade"]]);
 * assert.equal(
 *   new TextDecoder().decode(head),
 *   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
 * );
 * ```
 */
export function serializeResponseHead(
  status: number,
  headers: Headers | [string, string][],
  options: SerializeResponseHeadOptions = {},
): Uint8Array {
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new RangeError(`Status must be an integer from 100 to 599: ${status}`);
  }
  const statusText = options.statusText ?? STATUS_TEXT[status] ?? "";
  if (!isFieldText(statusText)) {
    throw new TypeError(`Status text has invalid characters: ${JSON.stringify(statusText)}`);
  }
  let text = `HTTP/1.1 ${status} ${statusText}\r\n`;
  for (const [name, value] of headers) {
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) {
      throw new TypeError(`Header name is not a token: ${JSON.stringify(name)}`);
    }
    if (!isFieldText(value)) throw new TypeError(`Header value has invalid characters: ${name}`);
    text += `${name}: ${value}\r\n`;
  }
  text += "\r\n";
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/**
 * Computes the `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`: the base64 SHA-1 of the key and the
 * RFC 6455 GUID (§4.2.2). Synchronous (our own SHA-1), so a handshake takes no extra trip through the event loop.
 *
 * @example
 * ```ts
 * import { computeAcceptKey } from "./http1.ts";
 * import assert from "node:assert/strict";
 * assert.equal(computeAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
 * ```
 */
export function computeAcceptKey(key: string): string {
  const digest = sha1(utf8Encoder.encode(key + WEBSOCKET_GUID));
  return btoa(String.fromCharCode.apply(null, digest as unknown as number[]));
}
