/**
 * PEM public keys → SubjectPublicKeyInfo (SPKI) DER, the one form Web Crypto imports, and what kind of key each is.
 *
 * Web Crypto reads only SPKI ("PUBLIC KEY"). Two other common shapes are converted with a few lines of DER: an
 * X.509 certificate ("CERTIFICATE", its SPKI is cut out; the certificate's dates and chain are NOT checked, it only
 * carries the key) and PKCS#1 ("RSA PUBLIC KEY", wrapped into SPKI). Private keys are refused.
 *
 * @module
 */

/** What a public key is, as far as JWS algorithms care. */
export type KeyKind = "RSA" | "P-256" | "P-384" | "P-521" | "Ed25519";

/** One public key read from PEM text. */
export interface PublicKeyDer {
  /** The key's SubjectPublicKeyInfo, DER-encoded. */
  readonly spki: Uint8Array<ArrayBuffer>;
  /** The key type, from the SPKI's algorithm identifier. */
  readonly kind: KeyKind;
}

// Algorithm and curve OIDs, as the hex of their DER content bytes.
const RSA_ENCRYPTION = "2a864886f70d010101"; // 1.2.840.113549.1.1.1
const RSASSA_PSS = "2a864886f70d01010a"; // 1.2.840.113549.1.1.10
const EC_PUBLIC_KEY = "2a8648ce3d0201"; // 1.2.840.10045.2.1
const ED25519 = "2b6570"; // 1.3.101.112
const CURVES: Readonly<Record<string, KeyKind>> = {
  "2a8648ce3d030107": "P-256", // 1.2.840.10045.3.1.7 prime256v1
  "2b81040022": "P-384", // 1.3.132.0.34 secp384r1
  "2b81040023": "P-521", // 1.3.132.0.35 secp521r1
};

const TAG = { Integer: 0x02, BitString: 0x03, Null: 0x05, Oid: 0x06, Sequence: 0x30, Version: 0xa0 } as const;

/** One DER element: its tag, and where its content and the whole element end. */
interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

function readTlv(der: Uint8Array, offset: number, limit = der.length): Tlv {
  if (offset + 2 > limit) throw new TypeError("Truncated DER: the key or certificate is cut short");
  const tag = der[offset];
  let length = der[offset + 1];
  let contentStart = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    // Four length bytes cover 4 GiB, far beyond any key; more (or the indefinite form, 0) is not DER.
    if (count === 0 || count > 4 || contentStart + count > limit) throw new TypeError("Bad DER length in the key");
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + der[contentStart + i];
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > limit) throw new TypeError("Truncated DER: the key or certificate is cut short");
  return { tag, start: offset, contentStart, end };
}

function expectTag(tlv: Tlv, tag: number, what: string): Tlv {
  if (tlv.tag !== tag) throw new TypeError(`Not a ${what}: unexpected DER tag 0x${tlv.tag.toString(16)}`);
  return tlv;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Reads the key type from an SPKI's AlgorithmIdentifier; throws a TypeError for keys Web Crypto cannot verify with. */
export function spkiKind(spki: Uint8Array): KeyKind {
  const outer = expectTag(readTlv(spki, 0), TAG.Sequence, "SubjectPublicKeyInfo");
  const algorithm = expectTag(readTlv(spki, outer.contentStart, outer.end), TAG.Sequence, "SubjectPublicKeyInfo");
  const oid = expectTag(readTlv(spki, algorithm.contentStart, algorithm.end), TAG.Oid, "SubjectPublicKeyInfo");
  const id = hex(spki.subarray(oid.contentStart, oid.end));
  if (id === RSA_ENCRYPTION) return "RSA";
  if (id === ED25519) return "Ed25519";
  if (id === EC_PUBLIC_KEY && oid.end < algorithm.end) {
    const curve = readTlv(spki, oid.end, algorithm.end);
    const kind = curve.tag === TAG.Oid ? CURVES[hex(spki.subarray(curve.contentStart, curve.end))] : undefined;
    if (kind) return kind;
    throw new TypeError("Unsupported elliptic curve in the public key: use P-256, P-384 or P-521");
  }
  if (id === RSASSA_PSS) {
    throw new TypeError(
      "Unsupported RSA-PSS-only key (OID 1.2.840.113549.1.1.10): Web Crypto imports RSA keys only as rsaEncryption; " +
        "make the key with openssl genpkey -algorithm RSA",
    );
  }
  throw new TypeError(`Unsupported public key algorithm: OID bytes ${id}`);
}

/** Cuts the SubjectPublicKeyInfo out of an X.509 certificate. */
function certificateSpki(der: Uint8Array): Uint8Array<ArrayBuffer> {
  const certificate = expectTag(readTlv(der, 0), TAG.Sequence, "certificate");
  const tbs = expectTag(readTlv(der, certificate.contentStart, certificate.end), TAG.Sequence, "certificate");
  let field = readTlv(der, tbs.contentStart, tbs.end);
  if (field.tag === TAG.Version) field = readTlv(der, field.end, tbs.end);
  // After the optional version: serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo.
  for (let i = 0; i < 5; i++) field = readTlv(der, field.end, tbs.end);
  expectTag(field, TAG.Sequence, "certificate");
  return der.slice(field.start, field.end);
}

function derLength(length: number): number[] {
  if (length < 0x80) return [length];
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return [0x80 | bytes.length, ...bytes];
}

function derElement(tag: number, content: Uint8Array | number[]): number[] {
  return [tag, ...derLength(content.length), ...content];
}

/** Wraps a PKCS#1 RSAPublicKey into an SPKI with the rsaEncryption algorithm (parameters NULL). */
function pkcs1Spki(der: Uint8Array): Uint8Array<ArrayBuffer> {
  const key = expectTag(readTlv(der, 0), TAG.Sequence, "PKCS#1 RSA public key");
  expectTag(readTlv(der, key.contentStart, key.end), TAG.Integer, "PKCS#1 RSA public key");
  const oid = RSA_ENCRYPTION.match(/../g)!.map((byte) => parseInt(byte, 16));
  const algorithm = derElement(TAG.Sequence, [...derElement(TAG.Oid, oid), TAG.Null, 0]);
  const bits = derElement(TAG.BitString, [0, ...der.subarray(0, key.end)]);
  return new Uint8Array(derElement(TAG.Sequence, [...algorithm, ...bits]));
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([^-]*)-----END ([A-Z0-9 ]+)-----/g;

/**
 * Reads every PEM block in `text` ("PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE") into SPKI DER and its kind.
 * Throws a TypeError naming the problem for private keys, other labels, bad base64 or DER, and unsupported key types.
 *
 * @example
 * ```ts
 * import { readPublicKeyPem } from "./pem.ts";
 * import assert from "node:assert/strict";
 * const keys = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]) as CryptoKeyPair;
 * const publicKey = keys.publicKey;
 * const spki = new Uint8Array(await crypto.subtle.exportKey("spki", publicKey));
 * const pem = `-----BEGIN PUBLIC KEY-----\n${spki.toBase64()}\n-----END PUBLIC KEY-----\n`;
 * assert.deepEqual(readPublicKeyPem(pem), [{ spki, kind: "Ed25519" }]);
 * ```
 */
export function readPublicKeyPem(text: string): PublicKeyDer[] {
  // Checked first: an encrypted private key's headers ("Proc-Type: 4,ENCRYPTED") keep PEM_BLOCK from matching it.
  if (text.includes("PRIVATE KEY-----")) {
    throw new TypeError("Keys must be public, not private: extract the public key with openssl pkey -pubout");
  }
  const keys: PublicKeyDer[] = [];
  for (const [, label, body, endLabel] of text.matchAll(PEM_BLOCK)) {
    if (label !== endLabel) throw new TypeError(`PEM block BEGIN and END labels differ: ${label} / ${endLabel}`);
    let der: Uint8Array<ArrayBuffer>;
    try {
      der = Uint8Array.fromBase64(body.replace(/\s+/g, ""));
    } catch {
      throw new TypeError(`PEM block is not valid base64: ${label}`);
    }
    let spki: Uint8Array<ArrayBuffer>;
    if (label === "PUBLIC KEY") spki = der;
    else if (label === "RSA PUBLIC KEY") spki = pkcs1Spki(der);
    else if (label === "CERTIFICATE") spki = certificateSpki(der);
    else throw new TypeError(`Unsupported PEM block: ${label} (give a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)`);
    keys.push({ spki, kind: spkiKind(spki) });
  }
  if (keys.length === 0) throw new TypeError("No PEM block found: expected -----BEGIN PUBLIC KEY-----");
  return keys;
}
