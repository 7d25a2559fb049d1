/**
 * RESP, the Redis serialization protocol, sans-I/O: a {@linkcode RespParser} fed whatever chunks the socket gives,
 * and a {@linkcode CommandWriter} that packs commands into one buffer for a pipelined write.
 *
 * The parser speaks RESP2 (what Redis answers until a client sends `HELLO 3`), plus two cheap RESP3 types: the push
 * frame `>` (as a {@linkcode RespPush}) and the null `_`. Other RESP3 types are protocol errors: Hubbub never asks
 * for RESP3.
 *
 * @example
 * ```ts
 * import { encodeCommand, RespParser } from "./resp.ts";
 * import assert from "node:assert/strict";
 * assert.equal(new TextDecoder().decode(encodeCommand(["GET", "k"])), "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
 * const parser = new RespParser();
 * assert.deepEqual(parser.push(new TextEncoder().encode("*2\r\n:1\r\n$2\r\nhi")), []);
 * assert.deepEqual(parser.push(new TextEncoder().encode("\r\n+OK\r\n")), [[1, new TextEncoder().encode("hi")], "OK"]);
 * ```
 *
 * @module
 */

/** An error reply (`-ERR ...`), a value like any other: the parser never throws it. */
export class RespError {
  /** The whole error line without the leading `-`, e.g. `NOSCRIPT No matching script. Please use EVAL.` */
  readonly message: string;

  /** Wraps an error line. */
  constructor(message: string) {
    this.message = message;
  }

  /** The error's first word (`ERR`, `WRONGTYPE`, `NOSCRIPT`, ...), by which Redis tells kinds of errors apart. */
  get code(): string {
    const space = this.message.indexOf(" ");
    return space === -1 ? this.message : this.message.slice(0, space);
  }

  /** The error line. */
  toString(): string {
    return this.message;
  }
}

/** A RESP3 push frame (`>`): an out-of-band message such as a pub/sub delivery, not a reply to a command. */
export class RespPush {
  /** The frame's elements, e.g. `message`, the channel and the payload. */
  readonly items: RespValue[];

  /** Wraps a push frame's elements. */
  constructor(items: RespValue[]) {
    this.items = items;
  }
}

/**
 * One parsed reply. Simple string → `string`; integer → `number`, or `bigint` when outside ±(2^53 − 1) (Redis
 * integers are signed 64-bit, and a silently rounded counter is worse than a second type); bulk string →
 * `Uint8Array` (a copy the caller owns); null bulk, null array and RESP3 null → `null`; error → {@linkcode RespError};
 * array → `RespValue[]`; RESP3 push → {@linkcode RespPush}.
 */
export type RespValue = string | number | bigint | Uint8Array | null | RespError | RespPush | RespValue[];

/** Thrown by {@linkcode RespParser.push} when the stream is not RESP or breaks a limit; the connection is unusable. */
export class RespProtocolError extends Error {
  /** Makes the error; `message` says what was wrong. */
  constructor(message: string) {
    super(message);
    this.name = "RespProtocolError";
  }
}

/** Limits of a {@linkcode RespParser}; each defaults from {@linkcode RESP_DEFAULTS}. */
export interface RespParserOptions {
  /** Largest bulk string accepted, in bytes; a larger header is refused before anything is allocated. @default {512 MiB} */
  maxBulkBytes?: number;
  /** Largest array accepted, in elements. @default {1_048_576} */
  maxArrayLength?: number;
  /** Deepest nesting of arrays accepted (a flat array is depth 1). @default {16} */
  maxDepth?: number;
  /** Longest simple string, error or header line, in bytes (without CRLF). @default {65_536} */
  maxLineBytes?: number;
}

/** Default limits of {@linkcode RespParser}. */
export const RESP_DEFAULTS = {
  /** Redis's own ceiling for a string value (`proto-max-bulk-len`), so nothing Redis can store is refused. */
  maxBulkBytes: 512 * 1024 * 1024,
  /**
   * The replies Hubbub asks for (XRANGE with COUNT, pub/sub) have a few thousand elements at most; a million leaves
   * room for admin commands and still refuses a corrupt header. Elements are created as they arrive, never from the
   * header, so this bounds work, not an allocation.
   */
  maxArrayLength: 1_048_576,
  /** XRANGE nests 3 deep and XREAD 5; Lua scripts can nest more, but not usefully beyond this. */
  maxDepth: 16,
  /** Simple strings and errors are short (Redis clips echoed arguments to 128 bytes); this bounds a missing CRLF. */
  maxLineBytes: 64 * 1024,
} as const;

const CR = 13;
const LF = 10;
const ZERO = 48;
const MINUS = 45;

// Parser states.
const LINE = 0; // reading a header line up to its CR
const LINE_LF = 1; // saw the line's CR, expecting LF
const BULK = 2; // filling a bulk string's body
const BULK_CR = 3; // body complete, expecting CR
const BULK_LF = 4; // expecting the LF after the body
const BROKEN = 5; // a protocol error happened; every later push throws

// Type bytes.
const SIMPLE = 0x2b; // +
const ERROR = 0x2d; // -
const INTEGER = 0x3a; // :
const BULK_STRING = 0x24; // $
const ARRAY = 0x2a; // *
const PUSH = 0x3e; // >
const NULL = 0x5f; // _

/** Longest integer line: a sign and 19 digits (signed 64-bit). */
const MAX_INTEGER_DIGITS = 19;
/** Integers with at most this many digits are exact in a double; longer ones go through BigInt. */
const SAFE_DIGITS = 15;

const textDecoder = new TextDecoder();

/** An array still receiving elements. */
interface OpenArray {
  readonly items: RespValue[];
  readonly length: number;
  readonly push: boolean;
}

function limit(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer: ${v}`);
  return v;
}

/** Shows a byte in an error message: printable ASCII as itself, anything else in hex. */
function showByte(byte: number): string {
  const hex = `0x${byte.toString(16).padStart(2, "0")}`;
  return byte >= 0x20 && byte < 0x7f ? `${hex} (${JSON.stringify(String.fromCharCode(byte))})` : hex;
}

/** Quotes at most the first 40 bytes of a line for an error message. */
function showLine(bytes: Uint8Array, start: number, end: number): string {
  const shown = JSON.stringify(textDecoder.decode(bytes.subarray(start, Math.min(end, start + 40))));
  return end - start > 40 ? `${shown}...` : shown;
}

/** Decodes a short line: plain ASCII is built directly (most replies are `OK`, `PONG`, `QUEUED`), the rest as UTF-8. */
function lineText(bytes: Uint8Array, start: number, end: number): string {
  if (end - start > 32) return textDecoder.decode(bytes.subarray(start, end));
  let text = "";
  for (let i = start; i < end; i++) {
    const byte = bytes[i];
    if (byte >= 0x80) return textDecoder.decode(bytes.subarray(start, end));
    text += String.fromCharCode(byte);
  }
  return text;
}

/**
 * Incremental RESP parser: feed it chunks as they arrive, in any sizes; it returns the replies completed by each
 * chunk. A partial reply is kept between chunks as state (the open arrays, the bulk string being filled, the header
 * line so far), so no byte is examined twice and 1-byte chunks cost linear time. Every bulk string is copied out:
 * the caller may reuse its read buffer at once.
 *
 * @example
 * ```ts
 * import { RespError, RespParser } from "./resp.ts";
 * import assert from "node:assert/strict";
 * const parser = new RespParser();
 * const bytes = new TextEncoder().encode("-NOSCRIPT No matching script\r\n");
 * const replies = bytes.reduce((all, byte) => all.concat(parser.push(new Uint8Array([byte]))), [] as unknown[]);
 * assert.ok(replies[0] instanceof RespError && replies[0].code === "NOSCRIPT");
 * ```
 */
export class RespParser {
  readonly #maxBulkBytes: number;
  readonly #maxArrayLength: number;
  readonly #maxDepth: number;
  readonly #maxLineBytes: number;
  #state = LINE;
  /** The header line so far when it spans chunks (type byte included). */
  #line = new Uint8Array(64);
  #lineLength = 0;
  /** The header parsed at its CR, applied once its LF arrives. */
  #headerType = 0;
  #headerValue: RespValue = null;
  /** The bulk string being filled. */
  #bulk = new Uint8Array(0);
  #bulkLength = 0;
  #bulkFilled = 0;
  #stack: OpenArray[] = [];
  #error: RespProtocolError | undefined;

  /** Makes a parser; limits default from {@linkcode RESP_DEFAULTS}; a limit that is not a positive integer throws. */
  constructor(options: RespParserOptions = {}) {
    this.#maxBulkBytes = limit("maxBulkBytes", options.maxBulkBytes, RESP_DEFAULTS.maxBulkBytes);
    this.#maxArrayLength = limit("maxArrayLength", options.maxArrayLength, RESP_DEFAULTS.maxArrayLength);
    this.#maxDepth = limit("maxDepth", options.maxDepth, RESP_DEFAULTS.maxDepth);
    this.#maxLineBytes = limit("maxLineBytes", options.maxLineBytes, RESP_DEFAULTS.maxLineBytes);
  }

  /** Whether a reply has started but not finished (bytes are held between chunks). */
  get partial(): boolean {
    return this.#state !== LINE || this.#lineLength > 0 || this.#stack.length > 0;
  }

  /**
   * Parses `chunk` (which the caller may reuse afterwards) and returns the replies it completed, in order.
   * Throws {@linkcode RespProtocolError} on malformed input or a broken limit, and again on every later call.
   */
  push(chunk: Uint8Array): RespValue[] {
    if (this.#error !== undefined) throw this.#error;
    try {
      return this.#parse(chunk);
    } catch (error) {
      this.#state = BROKEN;
      this.#stack = [];
      this.#bulk = new Uint8Array(0);
      this.#error = error instanceof RespProtocolError ? error : new RespProtocolError(String(error));
      throw this.#error;
    }
  }

  #parse(chunk: Uint8Array): RespValue[] {
    const out: RespValue[] = [];
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      switch (this.#state) {
        case LINE: {
          if (this.#lineLength === 0) this.#checkType(chunk[i]);
          let end = i;
          for (let byte = chunk[end]; byte !== CR; byte = chunk[++end]) {
            if (end === n) break;
            if (byte === LF) throw new RespProtocolError("RESP line holds a bare LF");
          }
          const cr = end === n ? -1 : end;
          if (this.#lineLength + end - i > this.#maxLineBytes + 1) {
            throw new RespProtocolError(`RESP line longer than the limit of ${this.#maxLineBytes} bytes`);
          }
          if (cr === -1) {
            this.#appendLine(chunk, i, n);
            i = n;
            break;
          }
          if (this.#lineLength === 0) {
            this.#header(chunk, i, cr);
          } else {
            this.#appendLine(chunk, i, cr);
            this.#header(this.#line, 0, this.#lineLength);
            this.#lineLength = 0;
          }
          i = cr + 1;
          if (i < n) {
            if (chunk[i] !== LF) throw new RespProtocolError(`RESP line ends in CR without LF: ${showByte(chunk[i])}`);
            i++;
            this.#state = LINE;
            this.#apply(out);
            if (this.#state === BULK) i = this.#fillBulk(chunk, i, out);
          } else {
            this.#state = LINE_LF;
          }
          break;
        }
        case LINE_LF:
          if (chunk[i] !== LF) throw new RespProtocolError(`RESP line ends in CR without LF: ${showByte(chunk[i])}`);
          i++;
          this.#state = LINE;
          this.#apply(out);
          break;
        case BULK:
          i = this.#fillBulk(chunk, i, out);
          break;
        case BULK_CR:
          if (chunk[i] !== CR) {
            throw new RespProtocolError(`Bulk string longer than its header said: ${showByte(chunk[i])}`);
          }
          i++;
          this.#state = BULK_LF;
          break;
        case BULK_LF:
          if (chunk[i] !== LF) throw new RespProtocolError(`Bulk string ends in CR without LF: ${showByte(chunk[i])}`);
          i++;
          this.#state = LINE;
          this.#emit(this.#takeBulk(), out);
          break;
        default:
          throw new RespProtocolError("RESP parser used after a protocol error");
      }
    }
    return out;
  }

  /** Refuses a line that does not start with a known type byte as soon as that byte arrives. */
  #checkType(byte: number): void {
    switch (byte) {
      case SIMPLE:
      case ERROR:
      case INTEGER:
      case BULK_STRING:
      case ARRAY:
      case PUSH:
      case NULL:
        return;
      default:
        throw new RespProtocolError(`Unknown RESP type byte: ${showByte(byte)}`);
    }
  }

  #appendLine(chunk: Uint8Array, start: number, end: number): void {
    const need = this.#lineLength + end - start;
    if (need > this.#line.length) {
      const grown = new Uint8Array(Math.max(need, this.#line.length * 2));
      grown.set(this.#line.subarray(0, this.#lineLength));
      this.#line = grown;
    }
    this.#line.set(chunk.subarray(start, end), this.#lineLength);
    this.#lineLength = need;
  }

  /** Parses the header line `bytes[start..end)` (type byte included) into `#headerType` / `#headerValue`. */
  #header(bytes: Uint8Array, start: number, end: number): void {
    const type = bytes[start];
    this.#headerType = type;
    switch (type) {
      case SIMPLE:
        this.#headerValue = lineText(bytes, start + 1, end);
        return;
      case ERROR:
        this.#headerValue = new RespError(lineText(bytes, start + 1, end));
        return;
      case INTEGER:
        this.#headerValue = parseInteger(bytes, start + 1, end);
        return;
      case NULL:
        if (end !== start + 1) throw new RespProtocolError("RESP3 null carries no data");
        this.#headerValue = null;
        return;
      default: { // $ * >
        const length = parseInteger(bytes, start + 1, end);
        if (typeof length !== "number" || length < -1 || (length === -1 && type === PUSH)) {
          throw new RespProtocolError(`Invalid RESP length: ${length}`);
        }
        if (type === BULK_STRING && length > this.#maxBulkBytes) {
          throw new RespProtocolError(
            `Bulk string of ${length} bytes is over the limit of ${this.#maxBulkBytes}; raise maxBulkBytes to accept it`,
          );
        }
        if (type !== BULK_STRING && length > this.#maxArrayLength) {
          throw new RespProtocolError(
            `Array of ${length} elements is over the limit of ${this.#maxArrayLength}; raise maxArrayLength to accept it`,
          );
        }
        this.#headerValue = length;
      }
    }
  }

  /** Acts on the header line just completed: emits a value, opens an array, or starts a bulk string. */
  #apply(out: RespValue[]): void {
    const type = this.#headerType;
    const value = this.#headerValue;
    this.#headerValue = null;
    if (type !== BULK_STRING && type !== ARRAY && type !== PUSH) {
      this.#emit(value, out);
      return;
    }
    const length = value as number;
    if (length === -1) {
      this.#emit(null, out);
    } else if (type === BULK_STRING) {
      this.#bulkLength = length;
      this.#bulkFilled = 0;
      this.#state = BULK;
    } else if (length === 0) {
      this.#emit(type === PUSH ? new RespPush([]) : [], out);
    } else {
      if (this.#stack.length >= this.#maxDepth) {
        throw new RespProtocolError(`Arrays nested deeper than the limit of ${this.#maxDepth}`);
      }
      this.#stack.push({ items: [], length, push: type === PUSH });
    }
  }

  /** Copies body bytes from `chunk` at `i`; returns the new position. Finishes the value when its CRLF is there too. */
  #fillBulk(chunk: Uint8Array, i: number, out: RespValue[]): number {
    const length = this.#bulkLength;
    if (this.#bulkFilled === 0) {
      if (chunk.length - i >= length) {
        // The whole body is here: one copy, and nothing held between chunks.
        this.#bulk = chunk.slice(i, i + length);
        this.#bulkFilled = length;
        i += length;
      } else {
        // Allocated only once body bytes arrive, and never beyond maxBulkBytes (checked at the header).
        this.#bulk = new Uint8Array(length);
      }
    }
    const bulk = this.#bulk;
    const take = Math.min(length - this.#bulkFilled, chunk.length - i);
    if (take > 0) {
      bulk.set(chunk.subarray(i, i + take), this.#bulkFilled);
      this.#bulkFilled += take;
      i += take;
    }
    if (this.#bulkFilled < bulk.length) return i;
    if (i + 1 < chunk.length) {
      if (chunk[i] !== CR) {
        throw new RespProtocolError(`Bulk string longer than its header said: ${showByte(chunk[i])}`);
      }
      if (chunk[i + 1] !== LF) {
        throw new RespProtocolError(`Bulk string ends in CR without LF: ${showByte(chunk[i + 1])}`);
      }
      this.#state = LINE;
      this.#emit(this.#takeBulk(), out);
      return i + 2;
    }
    this.#state = BULK_CR;
    return i;
  }

  #takeBulk(): Uint8Array {
    const bulk = this.#bulk;
    this.#bulk = new Uint8Array(0);
    return bulk;
  }

  /** Adds a finished value to the innermost open array, closing every array it completes; a top-level value is out. */
  #emit(value: RespValue, out: RespValue[]): void {
    const stack = this.#stack;
    for (;;) {
      const top = stack[stack.length - 1];
      if (top === undefined) {
        out.push(value);
        return;
      }
      top.items.push(value);
      if (top.items.length < top.length) return;
      stack.pop();
      value = top.push ? new RespPush(top.items) : top.items;
    }
  }
}

/** Parses a signed decimal integer from `bytes[start..end)`: a number, or a bigint beyond ±(2^53 − 1). */
function parseInteger(bytes: Uint8Array, start: number, end: number): number | bigint {
  const negative = bytes[start] === MINUS;
  const first = negative ? start + 1 : start;
  const digits = end - first;
  if (digits < 1 || digits > MAX_INTEGER_DIGITS) {
    throw new RespProtocolError(`Invalid RESP integer: ${showLine(bytes, start, end)}`);
  }
  let value = 0;
  for (let i = first; i < end; i++) {
    const digit = bytes[i] - ZERO;
    if (digit < 0 || digit > 9) {
      throw new RespProtocolError(`Invalid RESP integer: ${showLine(bytes, start, end)}`);
    }
    value = value * 10 + digit;
  }
  if (digits <= SAFE_DIGITS || Number.isSafeInteger(value)) return negative ? -value : value;
  const big = BigInt(lineText(bytes, start, end));
  if (big > 0x7fff_ffff_ffff_ffffn || big < -0x8000_0000_0000_0000n) {
    throw new RespProtocolError(`RESP integer out of the 64-bit range: ${big}`);
  }
  return big;
}

/** One argument of a command: strings go out as UTF-8, numbers in decimal, bytes as they are. */
export type CommandArg = string | Uint8Array | number;

const textEncoder = new TextEncoder();
/** Initial size of a {@linkcode CommandWriter}'s buffer: a few dozen typical commands fit without growing. */
const WRITER_INITIAL_BYTES = 4096;
/**
 * Strings up to this many UTF-16 units are tried as ASCII by a plain loop before calling the native encoder: a call
 * into `encodeInto` costs about as much as copying a hundred characters in JavaScript.
 */
const ASCII_LOOP_UNITS = 128;
/** Largest buffer a {@linkcode CommandWriter} keeps for reuse. */
const MAX_SPARE_BYTES = 256 * 1024;
const EMPTY = new Uint8Array(0);
/** Room for a bulk header: `$`, up to 16 digits (a length below 2^53), CRLF. */
const MAX_BULK_HEADER = 19;

function decimalDigits(n: number): number {
  if (n < 10) return 1;
  if (n < 100) return 2;
  let digits = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    digits++;
  }
  return digits;
}

/**
 * Packs commands as RESP arrays of bulk strings into one growing buffer, so a pipeline of commands leaves in one
 * write with no per-command copy; {@linkcode take} hands the bytes over and starts an empty buffer.
 *
 * @example
 * ```ts
 * import { CommandWriter } from "./resp.ts";
 * import assert from "node:assert/strict";
 * const writer = new CommandWriter();
 * writer.write(["INCR", "n"]);
 * writer.write(["PUBLISH", "room", new Uint8Array([0, 255])]);
 * assert.equal(writer.take().length, 21 + 35);
 * assert.equal(writer.length, 0);
 * ```
 */
export class CommandWriter {
  #buf: Uint8Array;
  #length = 0;
  /** A buffer given back by {@linkcode recycle}, used for the next batch instead of a new allocation. */
  #spare: Uint8Array | undefined;
  readonly #initialBytes: number;

  /** Makes an empty writer whose first buffer holds `initialBytes`. */
  constructor(initialBytes: number = WRITER_INITIAL_BYTES) {
    this.#initialBytes = limit("initialBytes", initialBytes, WRITER_INITIAL_BYTES);
    this.#buf = new Uint8Array(this.#initialBytes);
  }

  /** Bytes written since the last {@linkcode take}. */
  get length(): number {
    return this.#length;
  }

  /**
   * Appends one command. Throws `TypeError` on an argument that is not a string, number or `Uint8Array`, and
   * `RangeError` on an empty command or a number that is not finite; nothing is appended then.
   */
  write(args: readonly CommandArg[]): void {
    if (args.length === 0) throw new RangeError("A command needs at least one argument: []");
    const start = this.#length;
    try {
      this.#reserve(MAX_BULK_HEADER);
      this.#buf[this.#length++] = ARRAY;
      this.#writeLength(args.length);
      for (const arg of args) {
        if (typeof arg === "string") this.#writeString(arg);
        else if (arg instanceof Uint8Array) this.#writeBytes(arg);
        else if (typeof arg === "number") this.#writeNumber(arg);
        else throw new TypeError(`A command argument must be a string, number or Uint8Array: ${typeof arg}`);
      }
    } catch (error) {
      this.#length = start;
      throw error;
    }
  }

  /** Forgets everything after the first `length` bytes (to take back commands appended since then). */
  truncate(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.#length) {
      throw new RangeError(`truncate() length must be between 0 and ${this.#length}: ${length}`);
    }
    this.#length = length;
  }

  /**
   * Returns everything written since the last call and starts a new buffer. The caller owns the bytes; once done
   * with them (the write finished) it may hand them back with {@linkcode recycle}.
   */
  take(): Uint8Array {
    const bytes = this.#buf.subarray(0, this.#length);
    this.#buf = EMPTY;
    this.#length = 0;
    return bytes;
  }

  /**
   * Takes back bytes from {@linkcode take} that nobody uses any more, to write the next batch into the same memory
   * (a flush per turn would otherwise allocate a buffer per turn). Buffers over 256 KiB are left to the collector,
   * so one burst does not pin a large buffer for the life of the connection.
   */
  recycle(bytes: Uint8Array): void {
    const buffer = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.buffer.byteLength - bytes.byteOffset);
    if (buffer.length <= MAX_SPARE_BYTES && buffer.length >= this.#initialBytes) this.#spare = buffer;
  }

  #reserve(bytes: number): void {
    const need = this.#length + bytes;
    if (need <= this.#buf.length) return;
    const spare = this.#spare;
    if (this.#length === 0 && spare !== undefined && need <= spare.length) {
      this.#spare = undefined;
      this.#buf = spare;
      return;
    }
    const grown = new Uint8Array(Math.max(need, this.#buf.length * 2, this.#initialBytes));
    grown.set(this.#buf.subarray(0, this.#length));
    this.#buf = grown;
  }

  /** Writes a non-negative integer and CRLF (room already reserved). */
  #writeLength(n: number): void {
    const buf = this.#buf;
    let at = this.#length + decimalDigits(n);
    this.#length = at + 2;
    do {
      buf[--at] = ZERO + (n % 10);
      n = Math.floor(n / 10);
    } while (n > 0);
    buf[this.#length - 2] = CR;
    buf[this.#length - 1] = LF;
  }

  #writeBytes(bytes: Uint8Array): void {
    this.#reserve(MAX_BULK_HEADER + bytes.length + 2);
    const buf = this.#buf;
    buf[this.#length++] = BULK_STRING;
    this.#writeLength(bytes.length);
    buf.set(bytes, this.#length);
    this.#length += bytes.length;
    buf[this.#length++] = CR;
    buf[this.#length++] = LF;
  }

  #writeNumber(n: number): void {
    if (!Number.isFinite(n)) throw new RangeError(`A numeric command argument must be finite: ${n}`);
    this.#writeString(String(n));
  }

  #writeString(text: string): void {
    const units = text.length;
    if (units <= ASCII_LOOP_UNITS && this.#writeAscii(text)) return;
    // UTF-8 takes between 1 and 3 bytes per UTF-16 unit: encode after a header sized for the longest case, then
    // slide the body left if the real length has fewer digits (a native memmove, rare for long strings).
    const headerRoom = decimalDigits(3 * units) + 3;
    this.#reserve(headerRoom + 3 * units + 2);
    const buf = this.#buf;
    const start = this.#length;
    const { written } = textEncoder.encodeInto(text, buf.subarray(start + headerRoom));
    const header = decimalDigits(written) + 3;
    if (header !== headerRoom) buf.copyWithin(start + header, start + headerRoom, start + headerRoom + written);
    buf[start] = BULK_STRING;
    this.#length = start + 1;
    this.#writeLength(written);
    this.#length += written;
    buf[this.#length++] = CR;
    buf[this.#length++] = LF;
  }

  /** Writes a short string if it is all ASCII; returns false (nothing written) if not. */
  #writeAscii(text: string): boolean {
    const units = text.length;
    this.#reserve(MAX_BULK_HEADER + units + 2);
    const buf = this.#buf;
    const start = this.#length;
    buf[start] = BULK_STRING;
    this.#length = start + 1;
    this.#writeLength(units);
    let at = this.#length;
    for (let i = 0; i < units; i++) {
      const unit = text.charCodeAt(i);
      if (unit > 0x7f) {
        this.#length = start;
        return false;
      }
      buf[at++] = unit;
    }
    buf[at++] = CR;
    buf[at++] = LF;
    this.#length = at;
    return true;
  }
}

/** Encodes one command as a RESP array of bulk strings (UTF-8 for strings, decimal for numbers). */
export function encodeCommand(args: readonly CommandArg[]): Uint8Array {
  const writer = new CommandWriter(256);
  writer.write(args);
  return writer.take();
}

/** Encodes several commands into one buffer, ready for one pipelined write. */
export function encodeCommands(commands: readonly (readonly CommandArg[])[]): Uint8Array {
  const writer = new CommandWriter();
  for (const args of commands) writer.write(args);
  return writer.take();
}

/**
 * A reply as text: a simple string as it is, a bulk string decoded as UTF-8. Throws `TypeError` for any other
 * value (a null, an integer, an error), naming what it got.
 */
export function respText(value: RespValue): string {
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return textDecoder.decode(value);
  throw new TypeError(`Expected a string reply: ${describeValue(value)}`);
}

/** A short description of a reply for error messages (its type, and an error's text). */
export function describeValue(value: RespValue): string {
  if (value === null) return "null";
  if (value instanceof RespError) return `error ${value.message}`;
  if (value instanceof RespPush) return `push of ${value.items.length}`;
  if (Array.isArray(value)) return `array of ${value.length}`;
  if (value instanceof Uint8Array) return `bulk string of ${value.length} bytes`;
  return typeof value;
}
