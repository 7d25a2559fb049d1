/**
 * RFC 6455 frame encoding for both ends of a connection. Frames a server sends are never masked (§5.1), so by default
 * every function here writes a bare header followed by the payload; a client must mask every frame it sends (§5.3),
 * which `{ mask: true }` does with a fresh random key per frame.
 *
 * @example
 * ```ts
 * import { encodeText } from "./frame.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(encodeText("hi"), new Uint8Array([0x81, 0x02, 0x68, 0x69]));
 * ```
 *
 * @module
 */

import { isSendableCloseCode, MAX_CLOSE_REASON_BYTES } from "./close_code.ts";

/** Frame opcodes by name (RFC 6455 §5.2); the values not listed here are reserved. */
export const OPCODE = {
  /** 0x0: a later fragment of a message. */
  Continuation: 0x0,
  /** 0x1: the first frame of a UTF-8 text message. */
  Text: 0x1,
  /** 0x2: the first frame of a binary message. */
  Binary: 0x2,
  /** 0x8: the closing handshake (§5.5.1). */
  Close: 0x8,
  /** 0x9: a ping, to be answered by a pong with the same payload (§5.5.2). */
  Ping: 0x9,
  /** 0xA: a pong (§5.5.3). */
  Pong: 0xa,
} as const;

/** One of the opcodes in {@linkcode OPCODE}. */
export type Opcode = typeof OPCODE[keyof typeof OPCODE];

/** Largest payload of a control frame (close, ping, pong), in bytes (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD_BYTES = 125;

/** Options for {@linkcode encodeFrameHeader}. */
export interface FrameHeaderOptions {
  /**
   * Whether this frame ends its message; `false` starts or continues a fragmented message.
   *
   * @default {true}
   */
  fin?: boolean;
}

/** The masking option of every encoder that writes a payload. */
export interface MaskOptions {
  /**
   * Mask the frame as a client must (RFC 6455 §5.3): `true` draws a fresh key from `crypto.getRandomValues` for this
   * frame; a 4-byte `Uint8Array` is used as the key (for tests: a client's keys must be unpredictable).
   *
   * @default {false} (a server's frames are never masked, §5.1)
   */
  mask?: boolean | Uint8Array;
}

/** Options for {@linkcode encodeFrame}. */
export interface EncodeFrameOptions extends FrameHeaderOptions, MaskOptions {}

const FIN_BIT = 0x80;
const MASK_BIT = 0x80;
const MASK_KEY_BYTES = 4;
const LENGTH_16 = 126;
const LENGTH_64 = 127;
const MAX_HEADER_BYTES = 10;
const TWO_TO_32 = 0x1_0000_0000;

const encoder = new TextEncoder();

// Strings up to this many UTF-16 units are encoded through one reused scratch buffer (3 bytes per unit in the worst
// case) and copied out at their exact size: one allocation per frame, and no oversized buffer kept alive by a queue.
const SCRATCH_TEXT_UNITS = 8192;
const scratch = new Uint8Array(MAX_HEADER_BYTES + 3 * SCRATCH_TEXT_UNITS);
const scratchBody = scratch.subarray(MAX_HEADER_BYTES);
// Below this length a plain loop beats the call into the native encoder, and most hub traffic is short ASCII.
const ASCII_LOOP_UNITS = 64;

function headerSize(payloadLength: number): number {
  return payloadLength < LENGTH_16 ? 2 : payloadLength < 0x1_0000 ? 4 : MAX_HEADER_BYTES;
}

function writeHeader(target: Uint8Array, offset: number, first: number, payloadLength: number): void {
  target[offset] = first;
  if (payloadLength < LENGTH_16) {
    target[offset + 1] = payloadLength;
  } else if (payloadLength < 0x1_0000) {
    target[offset + 1] = LENGTH_16;
    target[offset + 2] = payloadLength >>> 8;
    target[offset + 3] = payloadLength & 0xff;
  } else {
    // Lengths beyond 2^32 cannot use bit operators, which work on 32 bits.
    const high = Math.floor(payloadLength / TWO_TO_32);
    const low = payloadLength >>> 0;
    target[offset + 1] = LENGTH_64;
    target[offset + 2] = high >>> 24;
    target[offset + 3] = (high >>> 16) & 0xff;
    target[offset + 4] = (high >>> 8) & 0xff;
    target[offset + 5] = high & 0xff;
    target[offset + 6] = low >>> 24;
    target[offset + 7] = (low >>> 16) & 0xff;
    target[offset + 8] = (low >>> 8) & 0xff;
    target[offset + 9] = low & 0xff;
  }
}

function firstByte(opcode: number, payloadLength: number, fin: boolean): number {
  if (opcode !== OPCODE.Continuation && opcode !== OPCODE.Text && opcode !== OPCODE.Binary) {
    if (opcode !== OPCODE.Close && opcode !== OPCODE.Ping && opcode !== OPCODE.Pong) {
      throw new RangeError(`Opcode is not defined by RFC 6455: ${opcode}`);
    }
    if (!fin) throw new RangeError(`Control frames cannot be fragmented: opcode ${opcode}`);
    if (payloadLength > MAX_CONTROL_PAYLOAD_BYTES) {
      throw new RangeError(`Control frame payload exceeds 125 bytes: ${payloadLength}`);
    }
  }
  return fin ? FIN_BIT | opcode : opcode;
}

/** The key for one masked frame: fresh random bytes for `true`, else the caller's 4 bytes. */
function maskKey(mask: true | Uint8Array): Uint8Array {
  if (mask === true) return crypto.getRandomValues(new Uint8Array(MASK_KEY_BYTES));
  if (mask.length !== MASK_KEY_BYTES) throw new RangeError(`Mask key must be 4 bytes: ${mask.length}`);
  return mask;
}

/** Writes a masked frame: header with the mask bit, the key, and `payload` XORed with it (§5.3). */
function encodeMasked(first: number, payload: Uint8Array, mask: true | Uint8Array): Uint8Array {
  const key = maskKey(mask);
  const length = payload.length;
  const keyAt = headerSize(length);
  const start = keyAt + MASK_KEY_BYTES;
  const frame = new Uint8Array(start + length);
  writeHeader(frame, 0, first, length);
  frame[1] |= MASK_BIT;
  frame.set(key, keyAt);
  // Client frames only: a byte loop is plenty for a CLI, and needs no alignment care.
  for (let i = 0; i < length; i++) frame[start + i] = payload[i] ^ key[i & 3];
  return frame;
}

/**
 * Encodes one frame: header and a copy of `payload`, in a single buffer; masked with `{ mask: true }`.
 *
 * Throws a `RangeError` for an undefined opcode, a fragmented control frame, a control payload over 125 bytes, or a
 * mask key that is not 4 bytes.
 *
 * @example
 * ```ts
 * import { encodeFrame, OPCODE } from "./frame.ts";
 * import assert from "node:assert/strict";
 * const frame = encodeFrame(OPCODE.Binary, new Uint8Array([1, 2, 3]), { fin: false });
 * assert.deepEqual(frame, new Uint8Array([0x02, 0x03, 1, 2, 3]));
 * const masked = encodeFrame(OPCODE.Binary, new Uint8Array([1, 2, 3]), { mask: new Uint8Array([1, 1, 1, 1]) });
 * assert.deepEqual(masked, new Uint8Array([0x82, 0x83, 1, 1, 1, 1, 0, 3, 2]));
 * ```
 */
export function encodeFrame(opcode: Opcode, payload: Uint8Array, options: EncodeFrameOptions = {}): Uint8Array {
  const first = firstByte(opcode, payload.length, options.fin ?? true);
  const mask = options.mask;
  if (mask !== undefined && mask !== false) return encodeMasked(first, payload, mask);
  const offset = headerSize(payload.length);
  const frame = new Uint8Array(offset + payload.length);
  writeHeader(frame, 0, first, payload.length);
  frame.set(payload, offset);
  return frame;
}

/**
 * Encodes only the header of an unmasked frame whose payload is `payloadLength` bytes, so a large payload can be
 * written after it without being copied. (No masking here: a masked payload is a copy anyway, so use
 * {@linkcode encodeFrame}.)
 *
 * @example
 * ```ts
 * import { encodeFrameHeader, OPCODE } from "./frame.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(encodeFrameHeader(OPCODE.Binary, 70_000), new Uint8Array([0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]));
 * ```
 */
export function encodeFrameHeader(opcode: Opcode, payloadLength: number, options: FrameHeaderOptions = {}): Uint8Array {
  if (!Number.isSafeInteger(payloadLength) || payloadLength < 0) {
    throw new RangeError(`Payload length must be a non-negative safe integer: ${payloadLength}`);
  }
  const first = firstByte(opcode, payloadLength, options.fin ?? true);
  const header = new Uint8Array(headerSize(payloadLength));
  writeHeader(header, 0, first, payloadLength);
  return header;
}

/**
 * Encodes `text` as one final text frame, writing the UTF-8 bytes straight into the frame buffer.
 *
 * Lone surrogates become U+FFFD, as the WebSocket API does, so the frame is always valid UTF-8.
 *
 * @example
 * ```ts
 * import { encodeText } from "./frame.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(encodeText("é"), new Uint8Array([0x81, 0x02, 0xc3, 0xa9]));
 * assert.equal(encodeText("é", { mask: true }).length, 2 + 4 + 2);
 * ```
 */
export function encodeText(text: string, options?: MaskOptions): Uint8Array {
  // One check for the server's path; a client's masked text takes the general route.
  if (options !== undefined && options.mask) return encodeFrame(OPCODE.Text, encoder.encode(text), options);
  const units = text.length;
  if (units <= ASCII_LOOP_UNITS) {
    const frame = new Uint8Array(2 + units);
    let i = 0;
    for (; i < units; i++) {
      const unit = text.charCodeAt(i);
      if (unit > 0x7f) break;
      frame[2 + i] = unit;
    }
    if (i === units) {
      frame[0] = FIN_BIT | OPCODE.Text;
      frame[1] = units;
      return frame;
    }
  }
  if (units <= SCRATCH_TEXT_UNITS) {
    const written = encoder.encodeInto(text, scratchBody).written;
    const start = MAX_HEADER_BYTES - headerSize(written);
    writeHeader(scratch, start, FIN_BIT | OPCODE.Text, written);
    return scratch.slice(start, MAX_HEADER_BYTES + written);
  }
  return encodeFrame(OPCODE.Text, encoder.encode(text));
}

/**
 * Encodes `data` as one final binary frame (a copy: the caller may reuse `data` afterwards).
 *
 * @example
 * ```ts
 * import { encodeBinary } from "./frame.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(encodeBinary(new Uint8Array([7]).buffer), new Uint8Array([0x82, 0x01, 7]));
 * ```
 */
export function encodeBinary(data: ArrayBuffer | Uint8Array, options?: MaskOptions): Uint8Array {
  return encodeFrame(OPCODE.Binary, data instanceof Uint8Array ? data : new Uint8Array(data), options);
}

/**
 * Encodes a close frame. Without `code` the frame is empty; otherwise `reason` is cut to at most 123 UTF-8 bytes
 * ({@linkcode MAX_CLOSE_REASON_BYTES}), never inside a code point.
 *
 * Throws a `RangeError` for a code that may not be sent on the wire (1005, 1006, 1015, or outside the ranges).
 *
 * @example
 * ```ts
 * import { encodeClose } from "./frame.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(encodeClose(1000, "ok"), new Uint8Array([0x88, 0x04, 0x03, 0xe8, 0x6f, 0x6b]));
 * assert.deepEqual(encodeClose(), new Uint8Array([0x88, 0x00]));
 * ```
 */
export function encodeClose(code?: number, reason = "", options?: MaskOptions): Uint8Array {
  if (options !== undefined && options.mask) {
    // A close frame's header is always 2 bytes: mask its payload through the general encoder.
    return encodeFrame(OPCODE.Close, encodeClose(code, reason).subarray(2), options);
  }
  if (code === undefined) {
    if (reason !== "") throw new TypeError(`A close reason needs a close code: "${reason}"`);
    return new Uint8Array([FIN_BIT | OPCODE.Close, 0]);
  }
  if (!isSendableCloseCode(code)) throw new RangeError(`Close code may not be sent: ${code}`);
  const frame = new Uint8Array(4 + MAX_CLOSE_REASON_BYTES);
  // encodeInto writes whole code points only, which is exactly the truncation rule.
  const written = reason === "" ? 0 : encoder.encodeInto(reason, frame.subarray(4)).written;
  frame[0] = FIN_BIT | OPCODE.Close;
  frame[1] = 2 + written;
  frame[2] = code >>> 8;
  frame[3] = code & 0xff;
  return written === MAX_CLOSE_REASON_BYTES ? frame : frame.slice(0, 4 + written);
}

/**
 * Encodes a ping frame carrying `payload` (at most 125 bytes).
 *
 * @example
 * ```ts
 * import { encodePing } from "./frame.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(encodePing(new Uint8Array([1])), new Uint8Array([0x89, 0x01, 1]));
 * ```
 */
export function encodePing(payload: Uint8Array = new Uint8Array(0), options?: MaskOptions): Uint8Array {
  return encodeFrame(OPCODE.Ping, payload, options);
}

/**
 * Encodes a pong frame carrying `payload` (at most 125 bytes); answering a ping, use the ping's payload.
 *
 * @example
 * ```ts
 * import { encodePong } from "./frame.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(encodePong(new Uint8Array([1])), new Uint8Array([0x8a, 0x01, 1]));
 * ```
 */
export function encodePong(payload: Uint8Array = new Uint8Array(0), options?: MaskOptions): Uint8Array {
  return encodeFrame(OPCODE.Pong, payload, options);
}

/** Options for {@linkcode FrameLog}. */
export interface FrameLogOptions {
  /**
   * Size of each segment frames are appended to, in bytes (at least 64). Frames over a quarter of it get a buffer of
   * their own.
   *
   * @default {65536} (a few hundred chat messages per segment; a segment costs one allocation)
   */
  segmentBytes?: number;
}

const FRAME_LOG_DEFAULTS = { segmentBytes: 64 * 1024 } as const;
const MIN_SEGMENT_BYTES = 64;
// A frame of this many UTF-16 units is at most 3 bytes per unit plus a 2-byte header: it fits a 7-bit length.
const SHORT_FRAME_UNITS = 125;

/**
 * Server frames, each encoded once, appended one after another to shared append-only segments. A transport that sends
 * one message to many sockets frames it here once and queues the same bytes, `bytes[start, end)`, for every socket;
 * frames appended one after the other are adjacent, so a socket that receives them all can send them with one slice.
 *
 * Bytes once appended never change: a segment that is full is left to whoever still holds a slice of it, and the log
 * goes on in a new one, so slices stay valid as long as they are referenced. After an append, `bytes`, `start` and
 * `end` locate the new frame (read them before the next append).
 *
 * @example
 * ```ts
 * import { FrameLog } from "./frame.ts";
 * import assert from "node:assert/strict";
 * const log = new FrameLog();
 * log.appendText("hi");
 * const first = { bytes: log.bytes, start: log.start };
 * log.appendText("é");
 * assert.equal(log.bytes, first.bytes); // the same segment, the frames adjacent
 * assert.equal(log.start, first.start + 4);
 * assert.deepEqual(log.bytes.subarray(first.start, log.end), new Uint8Array([0x81, 2, 0x68, 0x69, 0x81, 2, 0xc3, 0xa9]));
 * ```
 */
export class FrameLog {
  readonly #segmentBytes: number;
  readonly #largeBytes: number;
  #segment: Uint8Array;
  #used = 0;
  #bytes: Uint8Array;
  #start = 0;
  #end = 0;

  /** Creates an empty log; throws a `RangeError` for a segment size that is not a safe integer of at least 64. */
  constructor(options: FrameLogOptions = {}) {
    const segmentBytes = options.segmentBytes ?? FRAME_LOG_DEFAULTS.segmentBytes;
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes < MIN_SEGMENT_BYTES) {
      throw new RangeError(`segmentBytes must be a safe integer of at least ${MIN_SEGMENT_BYTES}: ${segmentBytes}`);
    }
    this.#segmentBytes = segmentBytes;
    this.#largeBytes = segmentBytes >>> 2;
    this.#segment = this.#bytes = new Uint8Array(segmentBytes);
  }

  /** The buffer holding the frame appended last. */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  /** Where the frame appended last starts in {@linkcode FrameLog.bytes}. */
  get start(): number {
    return this.#start;
  }

  /** Where the frame appended last ends in {@linkcode FrameLog.bytes}. */
  get end(): number {
    return this.#end;
  }

  /** Appends `text` as one final text frame (lone surrogates become U+FFFD, as in {@linkcode encodeText}). */
  appendText(text: string): void {
    const units = text.length;
    if (units <= SHORT_FRAME_UNITS) {
      // Most hub traffic is short ASCII: copy the units straight into the segment, and only fall back when one is not.
      const at = this.#room(2 + units);
      const segment = this.#segment;
      let i = 0;
      for (; i < units; i++) {
        const unit = text.charCodeAt(i);
        if (unit > 0x7f) break;
        segment[at + 2 + i] = unit;
      }
      if (i === units) {
        segment[at] = FIN_BIT | OPCODE.Text;
        segment[at + 1] = units;
        this.#commit(at, at + 2 + units);
        return;
      }
    }
    const most = 3 * units;
    if (4 + most > this.#largeBytes) {
      this.#own(encodeText(text));
      return;
    }
    // Encode after a 4-byte header (a 16-bit length); a payload under 126 bytes then moves up by 2 for a 7-bit one.
    const at = this.#room(4 + most);
    const segment = this.#segment;
    const written = encoder.encodeInto(text, segment.subarray(at + 4, at + 4 + most)).written;
    if (written < LENGTH_16) {
      segment.copyWithin(at + 2, at + 4, at + 4 + written);
      writeHeader(segment, at, FIN_BIT | OPCODE.Text, written);
      this.#commit(at, at + 2 + written);
    } else {
      writeHeader(segment, at, FIN_BIT | OPCODE.Text, written);
      this.#commit(at, at + 4 + written);
    }
  }

  /**
   * Appends one final data frame of `opcode` (text or binary) whose payload is a copy of `payload[start, end)`: for
   * bytes that are already what the frame must carry, such as a text message's payload as it was received.
   */
  appendFrame(
    opcode: typeof OPCODE.Text | typeof OPCODE.Binary,
    payload: Uint8Array,
    start = 0,
    end = payload.length,
  ): void {
    const length = end - start;
    const header = headerSize(length);
    if (header + length > this.#largeBytes) {
      const frame = new Uint8Array(header + length);
      writeHeader(frame, 0, FIN_BIT | opcode, length);
      frame.set(payload.subarray(start, end), header);
      this.#own(frame);
      return;
    }
    const at = this.#room(header + length);
    const segment = this.#segment;
    writeHeader(segment, at, FIN_BIT | opcode, length);
    const body = at + header;
    // A loop beats the native copy for the short payloads most messages have (no view to allocate).
    if (length <= 64) { for (let i = 0; i < length; i++) segment[body + i] = payload[start + i]; }
    else segment.set(payload.subarray(start, end), body);
    this.#commit(at, body + length);
  }

  /** Where `bytes` more fit in the current segment, starting a new segment when they do not. */
  #room(bytes: number): number {
    if (this.#used + bytes > this.#segmentBytes) {
      this.#segment = new Uint8Array(this.#segmentBytes);
      this.#used = 0;
    }
    return this.#used;
  }

  #commit(start: number, end: number): void {
    this.#bytes = this.#segment;
    this.#start = start;
    this.#end = this.#used = end;
  }

  /** Records a frame with a buffer of its own. */
  #own(frame: Uint8Array): void {
    this.#bytes = frame;
    this.#start = 0;
    this.#end = frame.length;
  }
}
