/**
 * Test helpers: client-side (masked) WebSocket frames built byte by byte, independently of `lib/frame.ts`, so the
 * protocol tests do not check the encoder against itself.
 *
 * @module
 */

/** Options for {@linkcode clientFrame}. */
export interface ClientFrameOptions {
  /** FIN bit. @default {true} */
  fin?: boolean;
  /** RSV1-3 as a 3-bit number (4 = RSV1, 2 = RSV2, 1 = RSV3). @default {0} */
  rsv?: number;
  /** The mask key, or `false` to send the frame unmasked. @default {[0x37, 0xfa, 0x21, 0x3d]} */
  mask?: Uint8Array | false;
  /** Force a length encoding (7, 16 or 64 bits) instead of the shortest one. */
  lengthBits?: 7 | 16 | 64;
  /** Override the declared payload length (the bytes sent stay `payload`). */
  declaredLength?: number;
}

const DEFAULT_MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);

/** UTF-8 bytes of `text`. */
export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** One frame as a client would send it: masked by default. */
export function clientFrame(
  opcode: number,
  payload: Uint8Array | string = "",
  options: ClientFrameOptions = {},
): Uint8Array {
  const data = typeof payload === "string" ? utf8(payload) : payload;
  const length = options.declaredLength ?? data.length;
  const bits = options.lengthBits ?? (length < 126 ? 7 : length < 65536 ? 16 : 64);
  const mask = options.mask ?? DEFAULT_MASK;
  const header: number[] = [((options.fin ?? true) ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode];
  const maskBit = mask === false ? 0 : 0x80;
  if (bits === 7) {
    header.push(maskBit | length);
  } else if (bits === 16) {
    header.push(maskBit | 126, length >>> 8, length & 0xff);
  } else {
    const high = Math.floor(length / 2 ** 32);
    const low = length >>> 0;
    header.push(maskBit | 127, high >>> 24, (high >>> 16) & 0xff, (high >>> 8) & 0xff, high & 0xff);
    header.push(low >>> 24, (low >>> 16) & 0xff, (low >>> 8) & 0xff, low & 0xff);
  }
  if (mask !== false) header.push(...mask);
  const frame = new Uint8Array(header.length + data.length);
  frame.set(header, 0);
  for (let i = 0; i < data.length; i++) {
    frame[header.length + i] = mask === false ? data[i] : data[i] ^ mask[i & 3];
  }
  return frame;
}

/** The concatenation of `parts`. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
