/**
 * The receive side of one WebSocket connection as a sans-I/O state machine (RFC 6455): bytes go in through
 * {@linkcode ServerProtocol.receive}, events and the bytes the protocol must answer come out through callbacks. No
 * sockets, no timers: a transport feeds it and acts on what it reports. It plays the server by default; with
 * `role: "client"` it plays the client (`hubbub client` uses it that way).
 *
 * @example
 * ```ts
 * import { ServerProtocol } from "./protocol.ts";
 * import assert from "node:assert/strict";
 * const messages: unknown[] = [];
 * const protocol = new ServerProtocol({ onMessage: (data) => messages.push(data) });
 * // A masked text frame "Hi" with the mask 01 02 03 04.
 * protocol.receive(new Uint8Array([0x81, 0x82, 1, 2, 3, 4, 0x48 ^ 1, 0x69 ^ 2]));
 * assert.deepEqual(messages, ["Hi"]);
 * ```
 *
 * @module
 */

import { CLOSE_CODE, isSendableCloseCode } from "./close_code.ts";
import { encodeClose, encodePong, MAX_CONTROL_PAYLOAD_BYTES, OPCODE } from "./frame.ts";
import type { Message } from "../hub/peer.ts";
import { Utf8Validator } from "./utf8.ts";

/** Options for {@linkcode ServerProtocol}; every callback defaults to doing nothing. */
export interface ServerProtocolOptions {
  /**
   * Which end of the connection this is. A server requires every frame it receives to be masked and sends its own
   * unmasked; a client requires unmasked frames (a masked one fails with 1002, RFC 6455 §5.1) and masks the pongs
   * and close frames it writes, each with a fresh random key (§5.3).
   *
   * @default {"server"}
   */
  role?: "server" | "client";
  /**
   * Largest message accepted, in payload bytes summed over its fragments. A frame whose header would take the message
   * past it fails the connection with 1009 before any of its payload is buffered.
   *
   * @default {1048576}
   */
  maxMessageBytes?: number;
  /**
   * Called with each complete message: text as a `string`, binary as an `ArrayBuffer` of exactly its bytes. For text,
   * `bytes[start, end)` are also the UTF-8 bytes it was decoded from, valid only during the call (they may be the
   * caller's chunk): a transport that relays the message unchanged can frame these instead of encoding the string.
   */
  onMessage?: (data: Message, bytes?: Uint8Array, start?: number, end?: number) => void;
  /** Called after a ping has been answered (the pong is already passed to `write`); `payload` is a copy. */
  onPing?: (payload: Uint8Array) => void;
  /** Called with each pong's payload (a copy). */
  onPong?: (payload: Uint8Array) => void;
  /**
   * Called once with the peer's valid close frame: its code (1005 when it carried none) and reason. The answering
   * close frame, if one was due, is already passed to `write`; the transport should flush and end the connection.
   */
  onClose?: (code: number, reason: string) => void;
  /**
   * Called once when the peer broke the protocol, with the close code and a short fixed reason. The close frame
   * carrying them is already passed to `write`; the transport should flush it and end the connection.
   */
  onError?: (code: number, reason: string) => void;
  /** Receives bytes the protocol itself must send: pongs and close frames. */
  write?: (bytes: Uint8Array) => void;
}

const DEFAULTS = {
  // 1 MiB: far above chat-sized traffic, yet a few hundred slow uploads cannot exhaust memory.
  maxMessageBytes: 1_048_576,
} as const;

/** Close reasons for protocol failures: short, fixed text so a failure never echoes the peer's data back. */
const FAILURE = {
  ReservedBits: "Reserved bits set",
  Unmasked: "Frame not masked",
  Masked: "Frame masked",
  ReservedOpcode: "Reserved opcode",
  FragmentedControl: "Fragmented control frame",
  ControlTooLong: "Control frame too long",
  UnexpectedContinuation: "Continuation without a message",
  ExpectedContinuation: "Expected a continuation frame",
  LengthTooLarge: "Frame length out of range",
  // Lower case like the hub's own 1009, so a client sees one reason whichever engine caught the message.
  MessageTooBig: "message too big",
  InvalidUtf8: "Invalid UTF-8 in text message",
  CloseTooShort: "Close frame too short",
  InvalidCloseCode: "Invalid close code",
  InvalidCloseReason: "Invalid UTF-8 in close reason",
} as const;

const FIN_BIT = 0x80;
const RSV_BITS = 0x70;
const MASK_BIT = 0x80;
const NO_MESSAGE = -1;
const TWO_TO_32 = 0x1_0000_0000;
// A masked client header is at most 14 bytes: 2, 8 of extended length, 4 of mask key.
const MAX_HEADER_BYTES = 14;
const MASK_KEY_BYTES = 4;
// What the frames a client writes are encoded with; a server passes no options.
const CLIENT_WRITES = { mask: true } as const;
// Below this many bytes the word-at-a-time unmasking costs more in setup than it saves.
const WORD_UNMASK_MIN_BYTES = 32;
// Up to this many bytes, a JavaScript loop beats the native call: an ASCII check plus String.fromCharCode ran ~3x
// faster than TextDecoder.decode for 16 bytes, and a copy loop beat TypedArray.set (measured on Deno 2.9).
const SMALL_PAYLOAD_BYTES = 48;
/** First buffer for a payload split across reads: the declared length is the peer's word, not bytes in hand. */
const INITIAL_PAYLOAD_BYTES = 64 * 1024;
/** First buffer for a fragmented message; it doubles as fragments arrive, never past `maxMessageBytes`. */
const INITIAL_MESSAGE_BYTES = 1024;
/** One reusable array of char codes per small length, for decoding short ASCII text without allocating. */
const CHAR_CODES: number[][] = Array.from({ length: SMALL_PAYLOAD_BYTES + 1 }, (_, n) => new Array<number>(n).fill(0));

const noop = (): void => {};
// `ignoreBOM` keeps a leading U+FEFF: it is part of the message, not a byte order mark to strip.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const EMPTY = new Uint8Array(0);

// The mask key as one native-endian 32-bit word, for unmasking four bytes at a time.
const maskBytes = new Uint8Array(4);
const maskWord = new Uint32Array(maskBytes.buffer);

/** XORs `data[start, end)` in place with the 4-byte key at `key[keyAt]`, byte 0 of the key at `start`. */
function unmask(data: Uint8Array, start: number, end: number, key: Uint8Array, keyAt: number): void {
  let i = start;
  if (end - start >= WORD_UNMASK_MIN_BYTES) {
    // Uint32Array views need 4-byte aligned offsets: unmask the unaligned lead byte by byte.
    const lead = (4 - ((data.byteOffset + i) & 3)) & 3;
    for (let k = 0; k < lead; k++) data[i + k] ^= key[keyAt + k];
    i += lead;
    maskBytes[0] = key[keyAt + (lead & 3)];
    maskBytes[1] = key[keyAt + ((lead + 1) & 3)];
    maskBytes[2] = key[keyAt + ((lead + 2) & 3)];
    maskBytes[3] = key[keyAt + ((lead + 3) & 3)];
    const word = maskWord[0];
    const words = (end - i) >>> 2;
    const view = new Uint32Array(data.buffer, data.byteOffset + i, words);
    for (let w = 0; w < words; w++) view[w] ^= word;
    i += words << 2;
  }
  for (; i < end; i++) data[i] ^= key[keyAt + ((i - start) & 3)];
}

/** Decodes `bytes[start, end)` as strict UTF-8, or returns `null` if it is not valid UTF-8. */
function decodeUtf8(bytes: Uint8Array, start: number, end: number): string | null {
  const length = end - start;
  if (length <= SMALL_PAYLOAD_BYTES) {
    // Into a reused plain array: a `subarray` view would cost an allocation per message.
    const codes = CHAR_CODES[length];
    let i = 0;
    for (; i < length; i++) {
      const byte = bytes[start + i];
      if (byte >= 0x80) break;
      codes[i] = byte;
    }
    if (i === length) return String.fromCharCode.apply(null, codes);
  }
  try {
    return utf8.decode(bytes.subarray(start, end));
  } catch {
    return null;
  }
}

/** Copies `bytes[start, end)` into an `ArrayBuffer` of its own. */
function copyToArrayBuffer(bytes: Uint8Array, start: number, end: number): ArrayBuffer {
  const length = end - start;
  const out = new Uint8Array(length);
  if (length <= SMALL_PAYLOAD_BYTES) {
    for (let i = 0; i < length; i++) out[i] = bytes[start + i];
  } else {
    out.set(bytes.subarray(start, end));
  }
  return out.buffer;
}

/**
 * The receive state machine of one WebSocket connection (RFC 6455 §5, §7), with no I/O: the server's end unless
 * `role: "client"` is given.
 *
 * Ownership: {@linkcode ServerProtocol.receive} unmasks frames in place, so it modifies the chunk it is given; once it
 * returns, nothing it reported aliases the chunk and the caller may reuse or overwrite it.
 *
 * @example
 * ```ts
 * import { ServerProtocol } from "./protocol.ts";
 * import assert from "node:assert/strict";
 * const written: Uint8Array[] = [];
 * const errors: number[] = [];
 * const protocol = new ServerProtocol({ write: (bytes) => written.push(bytes), onError: (code) => errors.push(code) });
 * protocol.receive(new Uint8Array([0x81, 0x00])); // unmasked: a protocol error
 * assert.deepEqual(errors, [1002]);
 * assert.equal(written[0][0], 0x88); // the close frame to send
 * assert.equal(protocol.closed, true);
 * ```
 */
export class ServerProtocol {
  #maxMessageBytes: number;
  #onMessage: (data: Message, bytes?: Uint8Array, start?: number, end?: number) => void;
  #onPing: (payload: Uint8Array) => void;
  #onPong: (payload: Uint8Array) => void;
  #onClose: (code: number, reason: string) => void;
  #onError: (code: number, reason: string) => void;
  #write: (bytes: Uint8Array) => void;
  // The role, as the mask bit every received frame must carry (0x80 server, 0 client) and the matching key size. The
  // server's receive path pays for it with field reads instead of constants and one well-predicted branch per frame
  // before unmasking (measured: no difference beyond noise).
  #maskBit: number;
  #keyBytes: number;
  #writeOptions: typeof CLIENT_WRITES | undefined;

  // The frame being received, once its header is complete.
  #fin = false;
  #opcode = 0;
  #payloadLength = 0;
  // A header split across chunks, and later the mask key of a split payload; allocated on first need.
  #head: Uint8Array | null = null;
  #headLength = 0;
  #keyAt = 0;
  // The payload of a frame split across chunks, filled as bytes arrive.
  #payload: Uint8Array | null = null;
  #filled = 0;

  // The fragmented message in progress, if any: its bytes so far in one buffer that grows by doubling (never a
  // buffer or string per fragment: a million one-byte fragments must cost what one message of that size costs).
  #messageOpcode = NO_MESSAGE;
  #messageBytes = 0;
  #message: Uint8Array | null = null;
  #validator: Utf8Validator | null = null;

  #closeSent = false;
  #closed = false;

  /**
   * Creates the state machine; throws a `RangeError` if `maxMessageBytes` is not a non-negative safe integer, and a
   * `TypeError` for a `role` other than `"server"` or `"client"`.
   */
  constructor(options: ServerProtocolOptions = {}) {
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULTS.maxMessageBytes;
    if (!Number.isSafeInteger(maxMessageBytes) || maxMessageBytes < 0) {
      throw new RangeError(`maxMessageBytes must be a non-negative safe integer: ${maxMessageBytes}`);
    }
    const role = options.role ?? "server";
    if (role !== "server" && role !== "client") throw new TypeError(`role must be "server" or "client": ${role}`);
    const client = role === "client";
    this.#maskBit = client ? 0 : MASK_BIT;
    this.#keyBytes = client ? 0 : MASK_KEY_BYTES;
    this.#writeOptions = client ? CLIENT_WRITES : undefined;
    this.#maxMessageBytes = maxMessageBytes;
    this.#onMessage = options.onMessage ?? noop;
    this.#onPing = options.onPing ?? noop;
    this.#onPong = options.onPong ?? noop;
    this.#onClose = options.onClose ?? noop;
    this.#onError = options.onError ?? noop;
    this.#write = options.write ?? noop;
  }

  /** Whether a close frame has been sent (by {@linkcode ServerProtocol.close} or in answer to the peer). */
  get closing(): boolean {
    return this.#closeSent;
  }

  /** Whether receiving is over: the peer's close arrived or the protocol failed. Later input is ignored. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Starts the closing handshake from this side: passes a close frame to `write` (masked in the client role) and,
   * when the peer's close arrives, reports it without answering again. Does nothing if a close frame was already
   * sent or receiving is over.
   *
   * Throws a `RangeError` for a code that may not be sent (see `isSendableCloseCode`).
   *
   * @example
   * ```ts
   * import { ServerProtocol } from "./protocol.ts";
   * import assert from "node:assert/strict";
   * const written: Uint8Array[] = [];
   * const protocol = new ServerProtocol({ write: (bytes) => written.push(bytes) });
   * protocol.close(1001, "bye");
   * assert.deepEqual(written, [new Uint8Array([0x88, 5, 0x03, 0xe9, 0x62, 0x79, 0x65])]);
   * assert.equal(protocol.closing, true);
   * ```
   */
  close(code: number, reason = ""): void {
    if (this.#closeSent || this.#closed) return;
    const frame = encodeClose(code, reason, this.#writeOptions);
    this.#closeSent = true;
    this.#write(frame);
  }

  /**
   * Parses every frame in `chunk`, keeping an incomplete frame for the next call, and reports through the callbacks.
   *
   * The chunk is unmasked in place (server role); once this returns, nothing reported aliases it. Callbacks must not
   * throw: an exception propagates to the caller and the rest of the chunk is lost.
   */
  receive(chunk: Uint8Array): void {
    const end = chunk.length;
    let pos = 0;
    while (pos < end && !this.#closed) {
      let payload = this.#payload;
      if (payload !== null) {
        const take = Math.min(this.#payloadLength - this.#filled, end - pos);
        if (this.#filled + take > payload.length) {
          // Grow with what arrives, never past the declared length, so the full buffer is exactly the payload.
          const grown = new Uint8Array(
            Math.min(this.#payloadLength, Math.max(2 * payload.length, this.#filled + take)),
          );
          grown.set(payload.subarray(0, this.#filled));
          this.#payload = payload = grown;
        }
        payload.set(take === end ? chunk : chunk.subarray(pos, pos + take), this.#filled);
        this.#filled += take;
        pos += take;
        if (this.#filled < this.#payloadLength) return;
        this.#payload = null;
        if (this.#keyBytes !== 0) unmask(payload, 0, payload.length, this.#head!, this.#keyAt);
        this.#frame(payload, 0, payload.length, true);
        continue;
      }

      let headerEnd: number;
      let key: Uint8Array;
      let keyAt: number;
      if (this.#headLength === 0) {
        const size = this.#parseHeader(chunk, pos, end);
        if (size < 0) return;
        if (size === 0) {
          this.#stashHeader(chunk, pos, end);
          return;
        }
        headerEnd = pos + size;
        key = chunk;
        keyAt = headerEnd - MASK_KEY_BYTES;
      } else {
        // Finish a header split across chunks in #head, then go on with the payload from this chunk.
        const head = this.#head!;
        const had = this.#headLength;
        const copied = Math.min(MAX_HEADER_BYTES - had, end - pos);
        head.set(chunk.subarray(pos, pos + copied), had);
        this.#headLength = had + copied;
        const size = this.#parseHeader(head, 0, this.#headLength);
        if (size < 0) return;
        if (size === 0) return; // still incomplete: the whole chunk went into #head
        this.#headLength = 0;
        headerEnd = pos + size - had;
        key = head;
        keyAt = size - MASK_KEY_BYTES;
      }

      const length = this.#payloadLength;
      if (end - headerEnd >= length) {
        pos = headerEnd + length;
        if (this.#keyBytes !== 0) unmask(chunk, headerEnd, pos, key, keyAt);
        this.#frame(chunk, headerEnd, pos, false);
      } else {
        // The payload continues in later chunks: copy what is here into a buffer that grows as the rest arrives.
        // Sizing it from the header alone would let 15 bytes (a header and one byte) pin maxMessageBytes.
        if (this.#keyBytes !== 0) {
          const head = this.#head ??= new Uint8Array(MAX_HEADER_BYTES);
          if (key !== head) head.set(key.subarray(keyAt, keyAt + MASK_KEY_BYTES), 0);
          this.#keyAt = key === head ? keyAt : 0;
        }
        const buffer = new Uint8Array(Math.min(length, Math.max(INITIAL_PAYLOAD_BYTES, 2 * (end - headerEnd))));
        buffer.set(chunk.subarray(headerEnd, end), 0);
        this.#payload = buffer;
        this.#filled = end - headerEnd;
        return;
      }
    }
  }

  #stashHeader(chunk: Uint8Array, pos: number, end: number): void {
    const head = this.#head ??= new Uint8Array(MAX_HEADER_BYTES);
    head.set(chunk.subarray(pos, end), 0);
    this.#headLength = end - pos;
  }

  /**
   * Reads and checks a frame header at `bytes[pos, end)`. Returns its size, 0 if it is incomplete, or -1 after a
   * failure. The first two bytes are checked as soon as they are there, and the length before any payload arrives.
   */
  #parseHeader(bytes: Uint8Array, pos: number, end: number): number {
    if (end - pos < 2) return 0;
    const b0 = bytes[pos];
    const b1 = bytes[pos + 1];
    const opcode = b0 & 0x0f;
    const fin = (b0 & FIN_BIT) !== 0;
    let length = b1 & 0x7f;
    if ((b0 & RSV_BITS) !== 0) return this.#fail(CLOSE_CODE.ProtocolError, FAILURE.ReservedBits);
    if (opcode >= OPCODE.Close) {
      if (opcode > OPCODE.Pong) return this.#fail(CLOSE_CODE.ProtocolError, FAILURE.ReservedOpcode);
      if (!fin) return this.#fail(CLOSE_CODE.ProtocolError, FAILURE.FragmentedControl);
      if (length > MAX_CONTROL_PAYLOAD_BYTES) return this.#fail(CLOSE_CODE.ProtocolError, FAILURE.ControlTooLong);
    } else if (opcode === OPCODE.Continuation) {
      if (this.#messageOpcode === NO_MESSAGE) {
        return this.#fail(CLOSE_CODE.ProtocolError, FAILURE.UnexpectedContinuation);
      }
    } else if (opcode === OPCODE.Text || opcode === OPCODE.Binary) {
      if (this.#messageOpcode !== NO_MESSAGE) {
        return this.#fail(CLOSE_CODE.ProtocolError, FAILURE.ExpectedContinuation);
      }
    } else {
      return this.#fail(CLOSE_CODE.ProtocolError, FAILURE.ReservedOpcode);
    }
    if ((b1 & MASK_BIT) !== this.#maskBit) {
      return this.#fail(CLOSE_CODE.ProtocolError, this.#maskBit === 0 ? FAILURE.Masked : FAILURE.Unmasked);
    }

    let size = 2 + this.#keyBytes;
    if (length === 126) {
      size += 2;
      if (end - pos < size) return 0;
      length = (bytes[pos + 2] << 8) | bytes[pos + 3];
    } else if (length === 127) {
      size += 8;
      if (end - pos < size) return 0;
      const high = bytes[pos + 2] * 0x100_0000 + ((bytes[pos + 3] << 16) | (bytes[pos + 4] << 8) | bytes[pos + 5]);
      // §5.2: the most significant bit of a 64-bit length must be 0.
      if (high >= 0x8000_0000) return this.#fail(CLOSE_CODE.ProtocolError, FAILURE.LengthTooLarge);
      const low = bytes[pos + 6] * 0x100_0000 + ((bytes[pos + 7] << 16) | (bytes[pos + 8] << 8) | bytes[pos + 9]);
      length = high * TWO_TO_32 + low;
    } else if (end - pos < size) {
      return 0;
    }
    if (opcode < OPCODE.Close && length > this.#maxMessageBytes - this.#messageBytes) {
      return this.#fail(CLOSE_CODE.MessageTooBig, FAILURE.MessageTooBig);
    }
    this.#fin = fin;
    this.#opcode = opcode;
    this.#payloadLength = length;
    return size;
  }

  /**
   * Acts on one complete frame, unmasked (or never masked), at `bytes[start, end)`; `owned` says `bytes` is exactly
   * the payload, in a buffer of this class's, rather than the caller's chunk.
   */
  #frame(bytes: Uint8Array, start: number, end: number, owned: boolean): void {
    const opcode = this.#opcode;
    // Whole messages in one frame are the hot path: handled without a view on the chunk where possible.
    if (opcode === OPCODE.Text && this.#fin) {
      const text = decodeUtf8(bytes, start, end);
      if (text === null) this.#fail(CLOSE_CODE.InvalidPayload, FAILURE.InvalidUtf8);
      else this.#onMessage(text, bytes, start, end);
      return;
    }
    if (opcode === OPCODE.Binary && this.#fin) {
      this.#onMessage(owned ? bytes.buffer as ArrayBuffer : copyToArrayBuffer(bytes, start, end));
      return;
    }
    const payload = owned ? bytes : bytes.subarray(start, end);
    if (opcode < OPCODE.Close) {
      this.#fragment(opcode, payload);
    } else if (opcode === OPCODE.Ping) {
      const copy = payload.slice();
      if (!this.#closeSent) this.#write(encodePong(copy, this.#writeOptions));
      this.#onPing(copy);
    } else if (opcode === OPCODE.Pong) {
      this.#onPong(payload.slice());
    } else {
      this.#peerClose(payload);
    }
  }

  /** Handles a frame of a fragmented message (§5.4): the first, a middle one, or the last. */
  #fragment(opcode: number, payload: Uint8Array): void {
    if (opcode !== OPCODE.Continuation) {
      this.#messageOpcode = opcode;
      this.#messageBytes = 0;
      if (opcode === OPCODE.Text) (this.#validator ??= new Utf8Validator()).reset();
    }
    const text = this.#messageOpcode === OPCODE.Text;
    // Each fragment is validated as it arrives, so bad UTF-8 fails fast, even split across frames.
    if (text && !this.#validator!.push(payload)) {
      this.#fail(CLOSE_CODE.InvalidPayload, FAILURE.InvalidUtf8);
      return;
    }
    const used = this.#messageBytes;
    const length = used + payload.length;
    let buffer = this.#message;
    if (buffer === null || length > buffer.length) {
      // The header check already holds `length` within maxMessageBytes.
      const grown = new Uint8Array(
        Math.min(this.#maxMessageBytes, Math.max(length, INITIAL_MESSAGE_BYTES, 2 * (buffer?.length ?? 0))),
      );
      if (buffer !== null) grown.set(buffer.subarray(0, used));
      this.#message = buffer = grown;
    }
    buffer.set(payload, used);
    this.#messageBytes = length;
    if (!this.#fin) return;
    if (text) {
      if (!this.#validator!.complete) {
        this.#fail(CLOSE_CODE.InvalidPayload, FAILURE.InvalidUtf8);
        return;
      }
      const message = utf8.decode(buffer.subarray(0, length));
      this.#endMessage();
      this.#onMessage(message, buffer, 0, length);
      return;
    }
    const message = length === buffer.length ? buffer.buffer as ArrayBuffer : buffer.slice(0, length).buffer;
    this.#endMessage();
    this.#onMessage(message);
  }

  #endMessage(): void {
    this.#messageOpcode = NO_MESSAGE;
    this.#messageBytes = 0;
    this.#message = null;
  }

  /** Validates the peer's close frame (§5.5.1, §7.4), answers it unless a close was already sent, and reports it. */
  #peerClose(payload: Uint8Array): void {
    let code: number = CLOSE_CODE.NoStatus;
    let reason = "";
    if (payload.length === 1) {
      this.#fail(CLOSE_CODE.ProtocolError, FAILURE.CloseTooShort);
      return;
    }
    if (payload.length >= 2) {
      code = (payload[0] << 8) | payload[1];
      if (!isSendableCloseCode(code)) {
        this.#fail(CLOSE_CODE.ProtocolError, FAILURE.InvalidCloseCode);
        return;
      }
      try {
        reason = utf8.decode(payload.length === 2 ? EMPTY : payload.subarray(2));
      } catch {
        this.#fail(CLOSE_CODE.InvalidPayload, FAILURE.InvalidCloseReason);
        return;
      }
    }
    this.#finish();
    if (!this.#closeSent) {
      this.#closeSent = true;
      // Echo the code and reason, as Deno's engine and Python's websockets do, so both engines look the same from
      // outside; an empty frame answers an empty one.
      const options = this.#writeOptions;
      this.#write(
        code === CLOSE_CODE.NoStatus ? encodeClose(undefined, "", options) : encodeClose(code, reason, options),
      );
    }
    this.#onClose(code, reason);
  }

  /** Fails the connection: sends the close frame unless one was sent, stops receiving, and reports. Returns -1. */
  #fail(code: number, reason: string): -1 {
    this.#finish();
    if (!this.#closeSent) {
      this.#closeSent = true;
      this.#write(encodeClose(code, reason, this.#writeOptions));
    }
    this.#onError(code, reason);
    return -1;
  }

  #finish(): void {
    this.#closed = true;
    this.#payload = null;
    this.#head = null;
    this.#headLength = 0;
    this.#validator = null;
    this.#endMessage();
  }
}
