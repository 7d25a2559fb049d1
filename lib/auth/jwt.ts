/**
 * JSON Web Tokens (RFC 7519, JWS compact form): verified with Web Crypto only, no dependencies.
 *
 * HMAC algorithms (HS256/384/512) use the `secret`; the public-key ones (RS256/384/512, PS256/384/512, ES256/384/512,
 * EdDSA with Ed25519) use `keys`, and each key only for the algorithms of its own type, so a token cannot pick how
 * its key is used: an HS256 token "signed" with the RSA public key as the HMAC secret is refused, since HS* never
 * looks at `keys`. A JWKS key is further bound by its `alg`, `use` and `key_ops`, and chosen by the token's `kid`.
 *
 * `verify()` never throws and never echoes the token: a refusal's reason is one of the fixed {@linkcode JWT_REFUSAL}
 * texts, or the fixed text of a bad `hubbub` claim. A token without `exp` does not expire, so issue every token with
 * one (`hubbub token` always does); `iat` is not checked.
 *
 * @module
 */

import { parseRoomPermissions, type RoomPermissions } from "./permissions.ts";
import { type KeyKind, readPublicKeyPem } from "./pem.ts";

/** A JWS algorithm Hubbub verifies. */
export type JwtAlgorithm =
  | "HS256"
  | "HS384"
  | "HS512"
  | "RS256"
  | "RS384"
  | "RS512"
  | "PS256"
  | "PS384"
  | "PS512"
  | "ES256"
  | "ES384"
  | "ES512"
  | "EdDSA";

/** The algorithms {@linkcode signJwt} makes: HMAC with a shared secret. */
export type HmacAlgorithm = "HS256" | "HS384" | "HS512";
/** Every {@linkcode HmacAlgorithm}. */
export const HMAC_ALGORITHMS: readonly HmacAlgorithm[] = ["HS256", "HS384", "HS512"];

/** How each algorithm maps onto Web Crypto: import parameters, verify parameters, fixed signature length. */
const ALGORITHMS: Readonly<
  Record<JwtAlgorithm, { import: Algorithm & Record<string, unknown>; verify: Algorithm; signatureBytes?: number }>
> = {
  HS256: { import: { name: "HMAC", hash: "SHA-256" }, verify: { name: "HMAC" }, signatureBytes: 32 },
  HS384: { import: { name: "HMAC", hash: "SHA-384" }, verify: { name: "HMAC" }, signatureBytes: 48 },
  HS512: { import: { name: "HMAC", hash: "SHA-512" }, verify: { name: "HMAC" }, signatureBytes: 64 },
  RS256: { import: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, verify: { name: "RSASSA-PKCS1-v1_5" } },
  RS384: { import: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-384" }, verify: { name: "RSASSA-PKCS1-v1_5" } },
  RS512: { import: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-512" }, verify: { name: "RSASSA-PKCS1-v1_5" } },
  // RFC 7518 §3.5: the salt is as long as the hash.
  PS256: { import: { name: "RSA-PSS", hash: "SHA-256" }, verify: { name: "RSA-PSS", saltLength: 32 } as Algorithm },
  PS384: { import: { name: "RSA-PSS", hash: "SHA-384" }, verify: { name: "RSA-PSS", saltLength: 48 } as Algorithm },
  PS512: { import: { name: "RSA-PSS", hash: "SHA-512" }, verify: { name: "RSA-PSS", saltLength: 64 } as Algorithm },
  // JOSE ECDSA signatures are raw r||s of fixed length (RFC 7518 §3.4); the length check refuses DER at once.
  ES256: {
    import: { name: "ECDSA", namedCurve: "P-256" },
    verify: { name: "ECDSA", hash: "SHA-256" } as Algorithm,
    signatureBytes: 64,
  },
  ES384: {
    import: { name: "ECDSA", namedCurve: "P-384" },
    verify: { name: "ECDSA", hash: "SHA-384" } as Algorithm,
    signatureBytes: 96,
  },
  ES512: {
    import: { name: "ECDSA", namedCurve: "P-521" },
    verify: { name: "ECDSA", hash: "SHA-512" } as Algorithm,
    signatureBytes: 132,
  },
  EdDSA: { import: { name: "Ed25519" }, verify: { name: "Ed25519" }, signatureBytes: 64 },
};

/** Which algorithms each public key type may verify: the binding that stops algorithm confusion. */
const ALGORITHMS_FOR_KEY: Readonly<Record<KeyKind, readonly JwtAlgorithm[]>> = {
  "RSA": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
  "P-256": ["ES256"],
  "P-384": ["ES384"],
  "P-521": ["ES512"],
  "Ed25519": ["EdDSA"],
};

/**
 * Shortest HMAC secret, in bytes. RFC 7518 §3.2 asks for a key at least as long as the hash; below 256 bits a
 * secret can be brute-forced offline from any one token.
 */
export const MIN_SECRET_BYTES = 32;

/** Shortest RSA modulus in bits accepted (RFC 7518 §3.3 requires 2048). */
export const MIN_RSA_BITS = 2048;

/** The defaults behind {@linkcode JwtVerifierOptions}. */
export const JWT_DEFAULTS = {
  /** Clock skew forgiven on `exp` and `nbf`: 30 s covers NTP-synced hosts and is short next to any sane lifetime. */
  leewaySeconds: 30,
  /** Longest token accepted: a handshake header or query string; 8 KiB fits an RS512 token with many claims. */
  maxTokenBytes: 8192,
} as const;

/** The fixed reasons a token is refused for; none includes any part of the token. */
export const JWT_REFUSAL = {
  TooLarge: "Token too large",
  NotCompact: "Malformed token: expected three base64url parts separated by dots",
  Base64: "Malformed token: bad base64url",
  Json: "Malformed token: bad JSON",
  HeaderNotObject: "Malformed token: header is not a JSON object",
  ClaimsNotObject: "Malformed token: claims are not a JSON object",
  AlgNone: "Unsigned token (alg none) refused",
  AlgMissing: "Malformed token: header has no alg",
  AlgUnsupported: "Unsupported token algorithm",
  AlgNotAccepted: "Token algorithm not accepted: no configured key is for it",
  Crit: "Token header has critical extensions this server does not understand",
  UnknownKid: "Unknown token key id (kid)",
  BadSignature: "Invalid token signature",
  ExpNotNumber: "Token exp is not a number",
  NbfNotNumber: "Token nbf is not a number",
  Expired: "Token expired",
  NotYetValid: "Token not yet valid (nbf)",
  Issuer: "Token issuer not accepted",
  Audience: "Token audience not accepted",
  Sub: "Token sub is not a string",
} as const;

/** Options for {@linkcode createJwtVerifier}; at least one of `secret` and `keys` is required. */
export interface JwtVerifierOptions {
  /** Shared secret for HS256/384/512 tokens, at least {@linkcode MIN_SECRET_BYTES} bytes. @default {undefined} */
  secret?: string;
  /**
   * Public keys for RS/PS/ES/EdDSA tokens: the text of a PEM file (one or more "PUBLIC KEY", "RSA PUBLIC KEY" or
   * "CERTIFICATE" blocks) or of a JWKS JSON file (`{"keys": [...]}`).
   * @default {undefined}
   */
  keys?: string;
  /** The exact `iss` a token must carry; unchecked when unset. @default {undefined} */
  issuer?: string;
  /**
   * The value a token's `aud` (a string or an array of strings) must contain; when unset `aud` is not checked.
   * @default {undefined}
   */
  audience?: string;
  /** Seconds of clock skew forgiven on `exp` and `nbf`. @default {30} */
  leewaySeconds?: number;
  /** Longest token accepted, checked before any other work. @default {8192} */
  maxTokenBytes?: number;
  /** The clock, in milliseconds since the epoch; for tests. @default {Date.now} */
  now?: () => number;
}

/** A token's claims: its JSON payload. */
export type JwtClaims = Readonly<Record<string, unknown>>;

/** What {@linkcode JwtVerifier.verify} resolves to. */
export type JwtResult =
  | {
    readonly ok: true;
    /** Every claim of the token. */
    readonly claims: JwtClaims;
    /** The `sub` claim: who the token names. */
    readonly sub?: string;
    /** When the token expires (its `exp`), in milliseconds since the epoch, as `Date.now()` counts. */
    readonly expiresAt?: number;
    /** The rooms the `hubbub` claim grants (all of them without one). */
    readonly permissions: RoomPermissions;
  }
  | { readonly ok: false; readonly reason: string };

/** Verifies tokens against the keys it was created with. */
export interface JwtVerifier {
  /** Checks `token`'s signature and claims; never throws, and a refusal's reason never echoes the token. */
  verify(token: string): Promise<JwtResult>;
  /** Seconds of clock skew forgiven on `exp`: a connection whose token expires is closed this long after `exp`. */
  readonly leewaySeconds: number;
}

/** A key ready for one algorithm, with the `kid` it was published under, if any. */
interface VerifyKey {
  readonly key: CryptoKey;
  readonly kid?: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Decodes unpadded base64url, refusing padding, other characters and non-zero trailing bits (so no two encodings). */
function fromBase64url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return undefined;
  try {
    // "strict" wants the padding back, and in exchange refuses stray bits in the last character.
    const padded = text + "=".repeat((4 - text.length % 4) % 4);
    return Uint8Array.fromBase64(padded, { alphabet: "base64url", lastChunkHandling: "strict" });
  } catch {
    return undefined;
  }
}

function toBase64url(bytes: Uint8Array): string {
  return bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}

function parseJsonObject(bytes: Uint8Array): Record<string, unknown> | "json" | "not object" {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    return "json";
  }
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : "not object";
}

/** Compares two byte strings in time that depends only on their lengths. */
function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function isAlgorithm(alg: unknown): alg is JwtAlgorithm {
  return typeof alg === "string" && Object.hasOwn(ALGORITHMS, alg);
}

function checkSecret(secret: unknown): Uint8Array<ArrayBuffer> {
  if (typeof secret !== "string") throw new TypeError(`The JWT secret must be a string: ${typeof secret}`);
  const bytes = encoder.encode(secret);
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new TypeError(
      `The JWT secret is too short to be safe: ${bytes.length} bytes, give at least ${MIN_SECRET_BYTES} ` +
        "(e.g. openssl rand -base64 32)",
    );
  }
  return bytes;
}

async function importHmac(secret: Uint8Array<ArrayBuffer>, alg: JwtAlgorithm, usage: KeyUsage): Promise<CryptoKey> {
  return await crypto.subtle.importKey("raw", secret, ALGORITHMS[alg].import, false, [usage]);
}

/** Imports `keyData` once for each of `algorithms`: Web Crypto binds a key to one algorithm and hash. */
async function importForEach(
  format: "spki" | "jwk",
  keyData: Uint8Array<ArrayBuffer> | JsonWebKey,
  algorithms: readonly JwtAlgorithm[],
  what: string,
): Promise<[JwtAlgorithm, CryptoKey][]> {
  const imported: [JwtAlgorithm, CryptoKey][] = [];
  for (const alg of algorithms) {
    const params = ALGORITHMS[alg].import;
    let key: CryptoKey;
    try {
      key = await (format === "spki"
        ? crypto.subtle.importKey("spki", keyData as Uint8Array<ArrayBuffer>, params, false, ["verify"])
        : crypto.subtle.importKey("jwk", keyData as JsonWebKey, params, false, ["verify"]));
    } catch (error) {
      throw new TypeError(`Cannot import ${what} for ${alg}: ${(error as Error).message}`);
    }
    const bits = (key.algorithm as RsaHashedKeyAlgorithm).modulusLength;
    if (bits !== undefined && bits < MIN_RSA_BITS) {
      throw new TypeError(`RSA key too small in ${what}: ${bits} bits, use at least ${MIN_RSA_BITS}`);
    }
    imported.push([alg, key]);
  }
  return imported;
}

/** The key type of a JWK from `kty`/`crv`, or a TypeError naming what is unsupported. */
function jwkKind(jwk: Record<string, unknown>, what: string): KeyKind {
  if (jwk.kty === "RSA") return "RSA";
  if (jwk.kty === "EC" && (jwk.crv === "P-256" || jwk.crv === "P-384" || jwk.crv === "P-521")) return jwk.crv;
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "Ed25519";
  throw new TypeError(
    `Unsupported key type in ${what}: ${String(jwk.kty)} ${String(jwk.crv ?? "")}`.trim() +
      " (use RSA, EC P-256/P-384/P-521 or OKP Ed25519; HMAC secrets go in secret)",
  );
}

/** Only the public members of a JWK: Web Crypto checks `alg`/`use`/`key_ops` its own way, and we do it ourselves. */
function publicJwk(jwk: Record<string, unknown>, kind: KeyKind): JsonWebKey {
  if (kind === "RSA") return { kty: "RSA", n: jwk.n as string, e: jwk.e as string };
  if (kind === "Ed25519") return { kty: "OKP", crv: "Ed25519", x: jwk.x as string };
  return { kty: "EC", crv: kind, x: jwk.x as string, y: jwk.y as string };
}

async function importJwks(text: string, into: Map<JwtAlgorithm, VerifyKey[]>): Promise<void> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new TypeError(`The JWKS is not valid JSON: ${(error as Error).message}`);
  }
  const set = parsed as { keys?: unknown; kty?: unknown };
  const list = typeof set === "object" && set !== null && Array.isArray(set.keys)
    ? set.keys
    : typeof set?.kty === "string"
    ? [set]
    : undefined;
  if (list === undefined) throw new TypeError('The JWKS must be an object with a "keys" array, or one JWK');
  let usable = 0;
  for (const [index, value] of list.entries()) {
    if (typeof value !== "object" || value === null) throw new TypeError(`JWKS key ${index} is not an object`);
    const jwk = value as Record<string, unknown>;
    if (jwk.kid !== undefined && typeof jwk.kid !== "string") {
      throw new TypeError(`JWKS key ${index}: kid not a string`);
    }
    const what = `JWKS key ${index}${jwk.kid === undefined ? "" : ` (kid ${jwk.kid})`}`;
    // Keys published for encryption share the set with signing keys; they are not ours to use, nor an error.
    if (jwk.use !== undefined && jwk.use !== "sig") continue;
    if (Array.isArray(jwk.key_ops) && !jwk.key_ops.includes("verify")) continue;
    if ("d" in jwk || "p" in jwk || "k" in jwk) {
      throw new TypeError(`${what} holds private or secret key material: publish only public keys`);
    }
    const kind = jwkKind(jwk, what);
    let algorithms = ALGORITHMS_FOR_KEY[kind];
    if (jwk.alg !== undefined) {
      if (!algorithms.includes(jwk.alg as JwtAlgorithm)) {
        throw new TypeError(`${what} has an alg its key type cannot verify: ${String(jwk.alg)}`);
      }
      algorithms = [jwk.alg as JwtAlgorithm];
    }
    for (const [alg, key] of await importForEach("jwk", publicJwk(jwk, kind), algorithms, what)) {
      into.get(alg)!.push(jwk.kid === undefined ? { key } : { key, kid: jwk.kid as string });
    }
    usable++;
  }
  if (usable === 0) throw new TypeError("The JWKS has no signing keys (use sig) to verify with");
}

async function importKeys(text: unknown, into: Map<JwtAlgorithm, VerifyKey[]>): Promise<void> {
  if (typeof text !== "string") throw new TypeError(`keys must be the text of a PEM or JWKS file: ${typeof text}`);
  if (text.trimStart().startsWith("{")) return await importJwks(text, into);
  for (const [index, { spki, kind }] of readPublicKeyPem(text).entries()) {
    for (const [alg, key] of await importForEach("spki", spki, ALGORITHMS_FOR_KEY[kind], `PEM key ${index}`)) {
      into.get(alg)!.push({ key });
    }
  }
}

/** The `exp`/`nbf`/`iss`/`aud`/`sub` checks; returns a refusal reason or `undefined`. */
function checkClaims(
  claims: Record<string, unknown>,
  options: { issuer?: string; audience?: string; leeway: number },
  now: number,
): string | undefined {
  const { leeway } = options;
  const { exp, nbf, iss, aud, sub } = claims;
  if (exp !== undefined && (typeof exp !== "number" || !Number.isFinite(exp))) return JWT_REFUSAL.ExpNotNumber;
  if (nbf !== undefined && (typeof nbf !== "number" || !Number.isFinite(nbf))) return JWT_REFUSAL.NbfNotNumber;
  if (exp !== undefined && now >= exp + leeway) return JWT_REFUSAL.Expired;
  if (nbf !== undefined && now < nbf - leeway) return JWT_REFUSAL.NotYetValid;
  if (options.issuer !== undefined && iss !== options.issuer) return JWT_REFUSAL.Issuer;
  if (options.audience !== undefined) {
    const audiences = Array.isArray(aud) ? aud : [aud];
    if (!audiences.includes(options.audience)) return JWT_REFUSAL.Audience;
  }
  if (sub !== undefined && typeof sub !== "string") return JWT_REFUSAL.Sub;
  return undefined;
}

/**
 * Imports the secret and keys once and returns a {@linkcode JwtVerifier}. Throws a TypeError for bad or missing key
 * material (too short a secret, a private key, an unsupported key type, a malformed JWKS) and a RangeError for a bad
 * limit.
 *
 * @example
 * ```ts
 * import { createJwtVerifier, signJwt } from "./jwt.ts";
 * import assert from "node:assert/strict";
 * const secret = "correct horse battery staple, 32+";
 * const verifier = await createJwtVerifier({ secret, issuer: "hubbub" });
 * const token = await signJwt({ secret, claims: { sub: "ada", iss: "hubbub" } });
 * const result = await verifier.verify(token);
 * assert.equal(result.ok && result.sub, "ada");
 * assert.deepEqual(await verifier.verify(token + "x"), { ok: false, reason: "Invalid token signature" });
 * ```
 */
export async function createJwtVerifier(options: JwtVerifierOptions): Promise<JwtVerifier> {
  const { secret, keys, issuer, audience } = options;
  const leeway = options.leewaySeconds ?? JWT_DEFAULTS.leewaySeconds;
  const maxTokenBytes = options.maxTokenBytes ?? JWT_DEFAULTS.maxTokenBytes;
  const now = options.now ?? Date.now;
  if (secret === undefined && keys === undefined) {
    throw new TypeError("A JWT verifier needs a secret (HS256/384/512) or keys (PEM or JWKS), or both");
  }
  if (!Number.isFinite(leeway) || leeway < 0) throw new RangeError(`leewaySeconds must be 0 or more: ${leeway}`);
  if (!Number.isSafeInteger(maxTokenBytes) || maxTokenBytes < 1) {
    throw new RangeError(`maxTokenBytes must be a whole number of at least 1: ${maxTokenBytes}`);
  }
  if (issuer !== undefined && typeof issuer !== "string") throw new TypeError(`issuer must be a string: ${issuer}`);
  if (audience !== undefined && typeof audience !== "string") {
    throw new TypeError(`audience must be a string: ${audience}`);
  }
  const byAlgorithm = new Map<JwtAlgorithm, VerifyKey[]>(
    Object.keys(ALGORITHMS).map((alg) => [alg as JwtAlgorithm, []]),
  );
  if (secret !== undefined) {
    const bytes = checkSecret(secret);
    for (const alg of HMAC_ALGORITHMS) byAlgorithm.get(alg)!.push({ key: await importHmac(bytes, alg, "sign") });
  }
  if (keys !== undefined) await importKeys(keys, byAlgorithm);
  const checks = { issuer, audience, leeway };

  async function verify(token: string): Promise<JwtResult> {
    const refuse = (reason: string): JwtResult => ({ ok: false, reason });
    if (typeof token !== "string") return refuse(JWT_REFUSAL.NotCompact);
    if (token.length > maxTokenBytes) return refuse(JWT_REFUSAL.TooLarge);
    const parts = token.split(".");
    if (parts.length !== 3) return refuse(JWT_REFUSAL.NotCompact);
    const [headerBytes, payloadBytes, signature] = parts.map(fromBase64url);
    if (!headerBytes || !payloadBytes || !signature) return refuse(JWT_REFUSAL.Base64);
    const header = parseJsonObject(headerBytes);
    if (header === "json") return refuse(JWT_REFUSAL.Json);
    if (header === "not object") return refuse(JWT_REFUSAL.HeaderNotObject);
    const { alg, kid, crit } = header;
    if (alg === undefined || alg === null || alg === "") return refuse(JWT_REFUSAL.AlgMissing);
    if (typeof alg === "string" && alg.toLowerCase() === "none") return refuse(JWT_REFUSAL.AlgNone);
    if (!isAlgorithm(alg)) return refuse(JWT_REFUSAL.AlgUnsupported);
    // RFC 7515 §4.1.11: a token may demand extensions be understood; we understand none (e.g. b64: false).
    if (crit !== undefined) return refuse(JWT_REFUSAL.Crit);
    const forAlgorithm = byAlgorithm.get(alg)!;
    if (forAlgorithm.length === 0) return refuse(JWT_REFUSAL.AlgNotAccepted);
    if (kid !== undefined && typeof kid !== "string") return refuse(JWT_REFUSAL.UnknownKid);
    const candidates = kid === undefined
      ? forAlgorithm
      : forAlgorithm.filter((entry) => entry.kid === undefined || entry.kid === kid);
    if (candidates.length === 0) return refuse(JWT_REFUSAL.UnknownKid);
    const { verify: params, signatureBytes } = ALGORITHMS[alg];
    if (signatureBytes !== undefined && signature.length !== signatureBytes) return refuse(JWT_REFUSAL.BadSignature);
    const signed = encoder.encode(token.slice(0, token.lastIndexOf(".")));
    let valid = false;
    for (const { key } of candidates) {
      valid = params.name === "HMAC"
        // Sign and compare ourselves, so the comparison is constant-time whatever Web Crypto's verify does.
        ? equalBytes(new Uint8Array(await crypto.subtle.sign(params, key, signed)), signature)
        : await crypto.subtle.verify(params, key, signature, signed);
      if (valid) break;
    }
    if (!valid) return refuse(JWT_REFUSAL.BadSignature);
    const claims = parseJsonObject(payloadBytes);
    if (claims === "json") return refuse(JWT_REFUSAL.Json);
    if (claims === "not object") return refuse(JWT_REFUSAL.ClaimsNotObject);
    const problem = checkClaims(claims, checks, now() / 1000);
    if (problem !== undefined) return refuse(problem);
    const parsed = parseRoomPermissions(claims.hubbub);
    if ("error" in parsed) return refuse(parsed.error);
    const { sub, exp } = claims;
    return {
      ok: true,
      claims,
      ...(typeof sub === "string" ? { sub } : {}),
      ...(typeof exp === "number" ? { expiresAt: exp * 1000 } : {}),
      permissions: parsed.permissions,
    };
  }

  return {
    leewaySeconds: leeway,
    verify: async (token) => {
      try {
        return await verify(token);
      } catch {
        // Web Crypto may reject input it finds odd (e.g. an RSA signature longer than the modulus): still a bad token.
        return { ok: false, reason: JWT_REFUSAL.BadSignature };
      }
    },
  };
}

/** Options for {@linkcode signJwt}. */
export interface SignJwtOptions {
  /** The shared secret, at least {@linkcode MIN_SECRET_BYTES} bytes. */
  secret: string;
  /** The HMAC algorithm. @default {"HS256"} */
  algorithm?: HmacAlgorithm;
  /** The payload: `sub`, `exp` (seconds since the epoch), `hubbub`, ... */
  claims: Record<string, unknown>;
}

/**
 * Makes an HMAC-signed token, for trying things out and for `hubbub token`.
 *
 * @example
 * ```ts
 * import { signJwt } from "./jwt.ts";
 * import assert from "node:assert/strict";
 * const token = await signJwt({ secret: "x".repeat(32), claims: { sub: "ada" } });
 * assert.equal(token.split(".").length, 3);
 * ```
 */
export async function signJwt(options: SignJwtOptions): Promise<string> {
  const algorithm = options.algorithm ?? "HS256";
  if (!HMAC_ALGORITHMS.includes(algorithm)) {
    throw new TypeError(`algorithm must be one of ${HMAC_ALGORITHMS.join(", ")}: ${algorithm}`);
  }
  const { claims } = options;
  if (typeof claims !== "object" || claims === null || Array.isArray(claims)) {
    throw new TypeError("claims must be an object");
  }
  const key = await importHmac(checkSecret(options.secret), algorithm, "sign");
  const input = [{ alg: algorithm, typ: "JWT" }, claims]
    .map((part) => toBase64url(encoder.encode(JSON.stringify(part))))
    .join(".");
  const signature = new Uint8Array(await crypto.subtle.sign({ name: "HMAC" }, key, encoder.encode(input)));
  return `${input}.${toBase64url(signature)}`;
}
