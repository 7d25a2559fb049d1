/**
 * JWT verification against tokens made by code we did not write: HS* by Python's standard library (hmac, hashlib,
 * base64, json), RS*, PS*, ES* and EdDSA signatures by `openssl` (keys made once per run), keys as SPKI, X.509,
 * PKCS#1 and a JWKS built from Web Crypto's JWK export. Every attack the verifier refuses has a test with its reason.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  createJwtVerifier,
  JWT_DEFAULTS,
  JWT_REFUSAL,
  type JwtResult,
  type JwtVerifier,
  signJwt,
} from "../lib/auth/jwt.ts";
import { ALL_ROOMS } from "../lib/auth/permissions.ts";
import { b64url, derToRaw, genpkey, run, type TestKey } from "./_jose.ts";

const decoder = new TextDecoder();

// Private keys live in a temporary directory for this file's run only.
const dir = await Deno.makeTempDir({ prefix: "hubbub-jwt-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

const [rsa, rsaB, rsa1024, rsaPss, ec256, ec256b, ec384, ec521, ed25519, ed448, secp256k1] = await Promise.all([
  genpkey(dir, "rsa", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"),
  genpkey(dir, "rsa-b", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"),
  genpkey(dir, "rsa1024", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"),
  genpkey(dir, "rsa-pss", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:1024"),
  genpkey(dir, "ec256", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
  genpkey(dir, "ec256b", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
  genpkey(dir, "ec384", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"),
  genpkey(dir, "ec521", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"),
  genpkey(dir, "ed25519", "-algorithm", "ed25519"),
  genpkey(dir, "ed448", "-algorithm", "ed448"),
  genpkey(dir, "secp256k1", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"),
]);

/** Signs the ASCII signing input `header.payload`; returns the raw JWS signature. */
type Signer = (input: string) => Promise<Uint8Array>;

function rsaPkcs1(key: TestKey, bits: number): Signer {
  return (input) => run("openssl", ["dgst", `-sha${bits}`, "-sign", key.file], input);
}

function rsaPssSigner(key: TestKey, bits: number): Signer {
  const salt = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", `rsa_pss_saltlen:${bits / 8}`];
  return (input) => run("openssl", ["dgst", `-sha${bits}`, "-sign", key.file, ...salt], input);
}

/** openssl's ECDSA signature, DER as openssl gives it (`SEQUENCE { INTEGER r, INTEGER s }`). */
function ecdsaDer(key: TestKey, bits: number): Signer {
  return (input) => run("openssl", ["dgst", `-sha${bits}`, "-sign", key.file], input);
}

function ecdsa(key: TestKey, bits: number, size: number): Signer {
  return async (input) => derToRaw(await ecdsaDer(key, bits)(input), size);
}

let messages = 0;
function ed25519Signer(key: TestKey): Signer {
  return async (input) => {
    // pkeyutl -rawin cannot read the message from a pipe.
    const file = `${dir}/message-${messages++}`;
    await Deno.writeTextFile(file, input);
    return await run("openssl", ["pkeyutl", "-sign", "-inkey", key.file, "-rawin", "-in", file]);
  };
}

/**
 * For each job, Python builds and signs the whole token itself from `header` and `claims`, or signs `input` as
 * given (for crafted headers). One process per batch keeps the file fast.
 */
const PYTHON_HS = `
import base64, hashlib, hmac, json, sys
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def token(d):
    data = d.get("input") or b64(json.dumps(d["header"]).encode()) + "." + b64(json.dumps(d["claims"]).encode())
    digest = getattr(hashlib, "sha" + d["alg"][2:])
    return data + "." + b64(hmac.new(d["secret"].encode(), data.encode(), digest).digest())
print(json.dumps([token(d) for d in json.load(sys.stdin)]))
`;

type PythonJob = { alg: string; secret: string } & ({ header: object; claims: unknown } | { input: string });

async function python(jobs: PythonJob[]): Promise<string[]> {
  return JSON.parse(decoder.decode(await run("python3", ["-c", PYTHON_HS], JSON.stringify(jobs))));
}

/** HS* tokens made entirely by Python's standard library, one for each of `claims`. */
function pythonTokens(alg: string, secret: string, claims: unknown[], header: object = { alg, typ: "JWT" }) {
  return python(claims.map((claims) => ({ alg, secret, header, claims })));
}

/** An HS* token made entirely by Python's standard library. */
async function pythonToken(alg: string, secret: string, claims: unknown, header?: object): Promise<string> {
  return (await pythonTokens(alg, secret, [claims], header))[0];
}

/** Python's HMAC over each crafted signing input: returns the whole tokens. */
function pythonSign(alg: string, secret: string, inputs: string[]): Promise<string[]> {
  return python(inputs.map((input) => ({ alg, secret, input })));
}

/** Our base64url of the parts, `signer`'s signature. */
async function makeToken(header: object, claims: unknown, signer: Signer): Promise<string> {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(await signer(input))}`;
}

const SECRET = "a shared secret of more than thirty-two bytes";
const NOW = 1_800_000_000;
const CLAIMS = { sub: "ada", iat: NOW, exp: NOW + 600 };
const clock = { now: () => NOW * 1000 };

async function assertRefused(verifier: JwtVerifier, token: string, reason: string): Promise<void> {
  assert.deepEqual(await verifier.verify(token), { ok: false, reason });
}

async function assertAccepted(verifier: JwtVerifier, token: string, claims: object = CLAIMS): Promise<JwtResult> {
  const result = await verifier.verify(token);
  assert.ok(result.ok, `expected acceptance, got ${JSON.stringify(result)}`);
  assert.deepEqual(result.claims, claims);
  return result;
}

/** The SPKI of `pem` imported into Web Crypto and exported as a JWK, with `extra` members. */
async function jwkOf(pem: string, algorithm: EcKeyImportParams | RsaHashedImportParams, extra: object) {
  const spki = Uint8Array.fromBase64(pem.replace(/-----[^-]+-----|\s/g, ""));
  const key = await crypto.subtle.importKey("spki", spki, algorithm, true, ["verify"]);
  return { ...await crypto.subtle.exportKey("jwk", key), ...extra };
}

// ---------------------------------------------------------------------------------------------------------------
// Tokens from elsewhere verify.

for (const alg of ["HS256", "HS384", "HS512"]) {
  Deno.test(`verify() accepts an ${alg} token made by Python's hmac and reports sub and expiresAt`, async () => {
    const verifier = await createJwtVerifier({ secret: SECRET, ...clock });
    const result = await assertAccepted(verifier, await pythonToken(alg, SECRET, CLAIMS));
    assert.ok(result.ok);
    assert.equal(result.sub, "ada");
    assert.equal(result.expiresAt, CLAIMS.exp * 1000);
    assert.equal(result.permissions, ALL_ROOMS);
    await assertRefused(verifier, await pythonToken(alg, SECRET + "!", CLAIMS), JWT_REFUSAL.BadSignature);
  });
}

const ASYMMETRIC: [alg: string, key: TestKey, signer: Signer][] = [
  ["RS256", rsa, rsaPkcs1(rsa, 256)],
  ["RS384", rsa, rsaPkcs1(rsa, 384)],
  ["RS512", rsa, rsaPkcs1(rsa, 512)],
  ["PS256", rsa, rsaPssSigner(rsa, 256)],
  ["PS384", rsa, rsaPssSigner(rsa, 384)],
  ["PS512", rsa, rsaPssSigner(rsa, 512)],
  ["ES256", ec256, ecdsa(ec256, 256, 32)],
  ["ES384", ec384, ecdsa(ec384, 384, 48)],
  ["ES512", ec521, ecdsa(ec521, 512, 66)],
  ["EdDSA", ed25519, ed25519Signer(ed25519)],
];

for (const [alg, key, signer] of ASYMMETRIC) {
  Deno.test(`verify() accepts an ${alg} token signed by openssl, and refuses it tampered with`, async () => {
    const verifier = await createJwtVerifier({ keys: key.pem, ...clock });
    const token = await makeToken({ alg, typ: "JWT" }, CLAIMS, signer);
    await assertAccepted(verifier, token);
    const [header, , signature] = token.split(".");
    const forged = `${header}.${b64url(JSON.stringify({ ...CLAIMS, sub: "root" }))}.${signature}`;
    await assertRefused(verifier, forged, JWT_REFUSAL.BadSignature);
    const bytes = Uint8Array.fromBase64(signature, { alphabet: "base64url" });
    bytes[bytes.length >> 1] ^= 1;
    await assertRefused(verifier, `${header}.${token.split(".")[1]}.${b64url(bytes)}`, JWT_REFUSAL.BadSignature);
  });
}

Deno.test("verify() refuses an ES256 signature in DER, as openssl makes it, instead of JOSE r||s", async () => {
  const verifier = await createJwtVerifier({ keys: ec256.pem, ...clock });
  await assertRefused(
    verifier,
    await makeToken({ alg: "ES256" }, CLAIMS, ecdsaDer(ec256, 256)),
    JWT_REFUSAL.BadSignature,
  );
  await assertAccepted(verifier, await makeToken({ alg: "ES256" }, CLAIMS, ecdsa(ec256, 256, 32)));
});

async function certificateOf(key: TestKey): Promise<string> {
  return decoder.decode(
    await run("openssl", ["req", "-x509", "-new", "-key", key.file, "-subj", "/CN=hubbub", "-days", "1"]),
  );
}

async function pkcs1Of(key: TestKey): Promise<string> {
  return decoder.decode(await run("openssl", ["rsa", "-in", key.file, "-RSAPublicKey_out"]));
}

Deno.test("createJwtVerifier() reads an RSA key from an X.509 certificate and from PKCS#1 RSA PUBLIC KEY", async () => {
  const token = await makeToken({ alg: "RS256" }, CLAIMS, rsaPkcs1(rsa, 256));
  for (const convert of [certificateOf, pkcs1Of]) {
    const pem = await convert(rsa);
    assert.match(pem, convert === certificateOf ? /BEGIN CERTIFICATE/ : /BEGIN RSA PUBLIC KEY/);
    await assertAccepted(await createJwtVerifier({ keys: pem, ...clock }), token);
    // The same shape made from another key refuses it: the key really is the one in the PEM.
    await assertRefused(
      await createJwtVerifier({ keys: await convert(rsaB), ...clock }),
      token,
      JWT_REFUSAL.BadSignature,
    );
  }
});

Deno.test("createJwtVerifier() reads an EC key from an X.509 certificate", async () => {
  const verifier = await createJwtVerifier({ keys: await certificateOf(ec384), ...clock });
  await assertAccepted(verifier, await makeToken({ alg: "ES384" }, CLAIMS, ecdsa(ec384, 384, 48)));
  await assertRefused(
    verifier,
    await makeToken({ alg: "ES384" }, CLAIMS, ecdsa(ec256, 256, 32)),
    JWT_REFUSAL.BadSignature,
  );
});

Deno.test("createJwtVerifier() takes several PEM keys in one text; a token verifies with the one that fits", async () => {
  const verifier = await createJwtVerifier({ keys: rsa.pem + ec256.pem + ec256b.pem, ...clock });
  await assertAccepted(verifier, await makeToken({ alg: "RS256" }, CLAIMS, rsaPkcs1(rsa, 256)));
  await assertAccepted(verifier, await makeToken({ alg: "ES256" }, CLAIMS, ecdsa(ec256, 256, 32)));
  await assertAccepted(verifier, await makeToken({ alg: "ES256" }, CLAIMS, ecdsa(ec256b, 256, 32)));
  await assertRefused(
    verifier,
    await makeToken({ alg: "ES384" }, CLAIMS, ecdsa(ec384, 384, 48)),
    JWT_REFUSAL.AlgNotAccepted,
  );
});

Deno.test("verify() with both a secret and keys accepts HS and public-key tokens", async () => {
  const verifier = await createJwtVerifier({ secret: SECRET, keys: ed25519.pem, ...clock });
  await assertAccepted(verifier, await pythonToken("HS256", SECRET, CLAIMS));
  await assertAccepted(verifier, await makeToken({ alg: "EdDSA" }, CLAIMS, ed25519Signer(ed25519)));
});

// ---------------------------------------------------------------------------------------------------------------
// JWKS.

const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
const RSA = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;

Deno.test("JWKS: a token's kid picks its key; a wrong kid fails the signature, an unknown kid is refused", async () => {
  const jwks = JSON.stringify({
    keys: [await jwkOf(ec256.pem, EC, { kid: "a" }), await jwkOf(ec256b.pem, EC, { kid: "b", use: "sig" })],
  });
  const verifier = await createJwtVerifier({ keys: jwks, ...clock });
  const signB = ecdsa(ec256b, 256, 32);
  await assertAccepted(verifier, await makeToken({ alg: "ES256", kid: "b" }, CLAIMS, signB));
  await assertAccepted(verifier, await makeToken({ alg: "ES256", kid: "a" }, CLAIMS, ecdsa(ec256, 256, 32)));
  await assertRefused(verifier, await makeToken({ alg: "ES256", kid: "a" }, CLAIMS, signB), JWT_REFUSAL.BadSignature);
  await assertRefused(verifier, await makeToken({ alg: "ES256", kid: "c" }, CLAIMS, signB), JWT_REFUSAL.UnknownKid);
  await assertRefused(verifier, await makeToken({ alg: "ES256", kid: 7 }, CLAIMS, signB), JWT_REFUSAL.UnknownKid);
  // Without a kid every key for the algorithm is tried.
  await assertAccepted(verifier, await makeToken({ alg: "ES256" }, CLAIMS, signB));
});

Deno.test("JWKS: a key's alg, use and key_ops bind it; a kid of another key type is unknown", async () => {
  const jwks = JSON.stringify({
    keys: [
      await jwkOf(rsa.pem, RSA, { kid: "rsa", alg: "RS256" }),
      await jwkOf(ec256.pem, EC, { kid: "enc", use: "enc" }),
      await jwkOf(ec384.pem, { name: "ECDSA", namedCurve: "P-384" }, { kid: "wrap", key_ops: ["wrapKey"] }),
      await jwkOf(ed25519.pem, { name: "Ed25519" } as unknown as EcKeyImportParams, { kid: "ed" }),
    ],
  });
  const verifier = await createJwtVerifier({ keys: jwks, ...clock });
  await assertAccepted(verifier, await makeToken({ alg: "RS256", kid: "rsa" }, CLAIMS, rsaPkcs1(rsa, 256)));
  // The key says RS256, so the same RSA key may not verify PS256 (nor RS512) for it.
  await assertRefused(
    verifier,
    await makeToken({ alg: "PS256", kid: "rsa" }, CLAIMS, rsaPssSigner(rsa, 256)),
    JWT_REFUSAL.AlgNotAccepted,
  );
  await assertRefused(
    verifier,
    await makeToken({ alg: "ES256", kid: "enc" }, CLAIMS, ecdsa(ec256, 256, 32)),
    JWT_REFUSAL.AlgNotAccepted,
  );
  await assertRefused(
    verifier,
    await makeToken({ alg: "ES384", kid: "wrap" }, CLAIMS, ecdsa(ec384, 384, 48)),
    JWT_REFUSAL.AlgNotAccepted,
  );
  await assertAccepted(verifier, await makeToken({ alg: "EdDSA", kid: "ed" }, CLAIMS, ed25519Signer(ed25519)));
  await assertRefused(
    verifier,
    await makeToken({ alg: "RS256", kid: "ed" }, CLAIMS, rsaPkcs1(rsa, 256)),
    JWT_REFUSAL.UnknownKid,
  );
});

// ---------------------------------------------------------------------------------------------------------------
// Attacks.

Deno.test("verify() refuses alg none in every spelling, even with keys for everything", async () => {
  const verifier = await createJwtVerifier({ secret: SECRET, keys: rsa.pem + ec256.pem, ...clock });
  for (const alg of ["none", "None", "NONE", "nOnE"]) {
    const input = `${b64url(JSON.stringify({ alg }))}.${b64url(JSON.stringify(CLAIMS))}`;
    await assertRefused(verifier, `${input}.`, JWT_REFUSAL.AlgNone);
    await assertRefused(verifier, `${input}.${b64url("x")}`, JWT_REFUSAL.AlgNone);
  }
});

Deno.test("verify() refuses HS256 signed with the RSA public key PEM as the HMAC secret (algorithm confusion)", async () => {
  // This is what a library that lets the token pick how the key is used would accept.
  const confused = await pythonToken("HS256", rsa.pem, CLAIMS);
  await assertRefused(await createJwtVerifier({ keys: rsa.pem, ...clock }), confused, JWT_REFUSAL.AlgNotAccepted);
  const jwks = JSON.stringify({ keys: [await jwkOf(rsa.pem, RSA, { kid: "k" })] });
  await assertRefused(
    await createJwtVerifier({ keys: jwks, ...clock }),
    await pythonToken("HS256", jwks, CLAIMS, { alg: "HS256", kid: "k" }),
    JWT_REFUSAL.AlgNotAccepted,
  );
  // With a secret configured too, HS256 is checked against the secret only, never the PEM.
  await assertRefused(
    await createJwtVerifier({ secret: SECRET, keys: rsa.pem, ...clock }),
    confused,
    JWT_REFUSAL.BadSignature,
  );
});

Deno.test("verify() refuses an algorithm the configured key is not for", async () => {
  const rsaOnly = await createJwtVerifier({ keys: rsa.pem, ...clock });
  const secretOnly = await createJwtVerifier({ secret: SECRET, ...clock });
  const ecOnly = await createJwtVerifier({ keys: ec256.pem, ...clock });
  const rs256 = await makeToken({ alg: "RS256" }, CLAIMS, rsaPkcs1(rsa, 256));
  await assertRefused(secretOnly, rs256, JWT_REFUSAL.AlgNotAccepted);
  await assertRefused(
    rsaOnly,
    await makeToken({ alg: "ES256" }, CLAIMS, ecdsa(ec256, 256, 32)),
    JWT_REFUSAL.AlgNotAccepted,
  );
  await assertRefused(rsaOnly, await pythonToken("HS256", SECRET, CLAIMS), JWT_REFUSAL.AlgNotAccepted);
  await assertRefused(
    ecOnly,
    await makeToken({ alg: "EdDSA" }, CLAIMS, ed25519Signer(ed25519)),
    JWT_REFUSAL.AlgNotAccepted,
  );
  // A P-256 key never verifies ES384, even for a token signed by it with SHA-384.
  await assertRefused(
    ecOnly,
    await makeToken({ alg: "ES384" }, CLAIMS, ecdsa(ec256, 384, 32)),
    JWT_REFUSAL.AlgNotAccepted,
  );
  // Relabelled within the key's own family: the signature no longer checks out.
  const [, payload, signature] = rs256.split(".");
  await assertRefused(
    rsaOnly,
    `${b64url(JSON.stringify({ alg: "PS256" }))}.${payload}.${signature}`,
    JWT_REFUSAL.BadSignature,
  );
  await assertRefused(
    rsaOnly,
    `${b64url(JSON.stringify({ alg: "RS512" }))}.${payload}.${signature}`,
    JWT_REFUSAL.BadSignature,
  );
});

Deno.test("verify() refuses a missing, empty, non-string or unsupported alg, and crit extensions", async () => {
  const verifier = await createJwtVerifier({ secret: SECRET, keys: rsa.pem, ...clock });
  const cases: [header: object, reason: string][] = [
    [{}, JWT_REFUSAL.AlgMissing],
    [{ alg: "" }, JWT_REFUSAL.AlgMissing],
    [{ alg: null }, JWT_REFUSAL.AlgMissing],
    [{ alg: 256 }, JWT_REFUSAL.AlgUnsupported],
    [{ alg: ["HS256"] }, JWT_REFUSAL.AlgUnsupported],
    [{ alg: "hs256" }, JWT_REFUSAL.AlgUnsupported],
    [{ alg: "HS1" }, JWT_REFUSAL.AlgUnsupported],
    [{ alg: "ES256K" }, JWT_REFUSAL.AlgUnsupported],
    [{ alg: "constructor" }, JWT_REFUSAL.AlgUnsupported],
    [{ alg: "__proto__" }, JWT_REFUSAL.AlgUnsupported],
    [{ alg: "HS256", crit: ["b64"], b64: false }, JWT_REFUSAL.Crit],
  ];
  const inputs = cases.map(([header]) => `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(CLAIMS))}`);
  const tokens = await pythonSign("HS256", SECRET, inputs);
  for (const [i, [, reason]] of cases.entries()) await assertRefused(verifier, tokens[i], reason);
});

Deno.test("verify() refuses malformed base64url: padding, +, /, spaces, stray bits, impossible lengths", async () => {
  const verifier = await createJwtVerifier({ secret: SECRET, ...clock });
  const good = await pythonToken("HS256", SECRET, { sub: "a" }); // the JSON is 12 bytes: no padding of its own
  const [header, payload, signature] = good.split(".");
  await assertAccepted(verifier, good, { sub: "a" });
  const bad = [
    `${header}.${payload}.${signature}=`,
    `${header}=.${payload}.${signature}`,
    `${header}.${payload}==.${signature}`,
    `${header}.${payload.replace(/[-_]|.$/, "+")}.${signature}`,
    `${header.replace(/.$/, "/")}.${payload}.${signature}`,
    `${header}.${payload} .${signature}`,
    `${header}.${payload}.${signature.slice(0, 10)}\n${signature.slice(10)}`,
    `${header}.${payload}.${signature}AA`, // length ≡ 1 (mod 4) encodes no whole byte
    `${header}.${payload}.${signature.slice(0, -1)}${String.fromCharCode(signature.charCodeAt(42) + 1)}`,
    `${header}.${payload}.${signature.slice(0, -1)}é`,
  ];
  // The last character of a 32-byte signature carries 2 unused bits; they must be zero, so the next letter differs.
  assert.equal(signature.length, 43);
  for (const token of bad) await assertRefused(verifier, token, JWT_REFUSAL.Base64);
});

Deno.test("verify() refuses malformed JSON, and a header or claims that are not an object", async () => {
  const verifier = await createJwtVerifier({ secret: SECRET, ...clock });
  const claims = JSON.stringify(CLAIMS);
  const cases: [header: string, claims: string, reason: string][] = [
    ['{"alg":"HS256"', claims, JWT_REFUSAL.Json],
    ["", claims, JWT_REFUSAL.Json],
    ['"HS256"', claims, JWT_REFUSAL.HeaderNotObject],
    ['["HS256"]', claims, JWT_REFUSAL.HeaderNotObject],
    ["null", claims, JWT_REFUSAL.HeaderNotObject],
    ['{"alg":"HS256"}', '{"sub":', JWT_REFUSAL.Json],
    ['{"alg":"HS256"}', "[1,2]", JWT_REFUSAL.ClaimsNotObject],
    ['{"alg":"HS256"}', "42", JWT_REFUSAL.ClaimsNotObject],
  ];
  // Invalid UTF-8 in the header is malformed JSON, not a crash.
  const badUtf8 = `${b64url(new Uint8Array([0x7b, 0xff, 0x7d]))}.${b64url(claims)}`;
  const inputs = [...cases.map(([header, body]) => `${b64url(header)}.${b64url(body)}`), badUtf8];
  const tokens = await pythonSign("HS256", SECRET, inputs);
  for (const [i, [, , reason]] of cases.entries()) await assertRefused(verifier, tokens[i], reason);
  await assertRefused(verifier, tokens[cases.length], JWT_REFUSAL.Json);
});

Deno.test("verify() refuses anything but three dot-separated parts", async () => {
  const verifier = await createJwtVerifier({ secret: SECRET, ...clock });
  const good = await pythonToken("HS256", SECRET, CLAIMS);
  for (const token of ["", ".", "...", good.split(".").slice(0, 2).join("."), `${good}.`, `${good}.${good}`]) {
    await assertRefused(verifier, token, JWT_REFUSAL.NotCompact);
  }
  await assertRefused(verifier, 42 as unknown as string, JWT_REFUSAL.NotCompact);
});

Deno.test("verify() checks the length before anything else: maxTokenBytes", async () => {
  const verifier = await createJwtVerifier({ secret: SECRET, maxTokenBytes: 100, ...clock });
  await assertRefused(verifier, ".".repeat(101), JWT_REFUSAL.TooLarge);
  await assertRefused(verifier, ".".repeat(100), JWT_REFUSAL.NotCompact);
  // A correctly signed token just over the default limit is still refused.
  const big = await createJwtVerifier({ secret: SECRET, ...clock });
  const padding = "x".repeat(JWT_DEFAULTS.maxTokenBytes);
  await assertRefused(big, await pythonToken("HS256", SECRET, { ...CLAIMS, padding }), JWT_REFUSAL.TooLarge);
  const fits = { ...CLAIMS, padding: padding.slice(0, JWT_DEFAULTS.maxTokenBytes / 2) };
  await assertAccepted(big, await pythonToken("HS256", SECRET, fits), fits);
});

Deno.test("verify() applies exp and nbf with the leeway, and refuses ones that are not numbers", async () => {
  const leeway = JWT_DEFAULTS.leewaySeconds;
  const verifier = await createJwtVerifier({ secret: SECRET, ...clock });
  const cases: [claims: Record<string, unknown>, reason: string | undefined][] = [
    [{ exp: NOW - leeway + 1 }, undefined],
    [{ exp: NOW - leeway }, JWT_REFUSAL.Expired],
    [{ exp: NOW - 3600 }, JWT_REFUSAL.Expired],
    [{ nbf: NOW + leeway }, undefined],
    [{ nbf: NOW + leeway + 1 }, JWT_REFUSAL.NotYetValid],
    [{ exp: String(NOW + 600) }, JWT_REFUSAL.ExpNotNumber],
    [{ exp: null }, JWT_REFUSAL.ExpNotNumber],
    [{ exp: [NOW + 600] }, JWT_REFUSAL.ExpNotNumber],
    [{ nbf: "0" }, JWT_REFUSAL.NbfNotNumber],
    [{ exp: NOW + 600.5, nbf: NOW - 0.5 }, undefined],
    [{}, undefined],
  ];
  const tokens = await pythonTokens("HS256", SECRET, cases.map(([claims]) => claims));
  for (const [i, [claims, reason]] of cases.entries()) {
    if (reason === undefined) await assertAccepted(verifier, tokens[i], claims);
    else await assertRefused(verifier, tokens[i], reason);
  }
  const strict = await createJwtVerifier({ secret: SECRET, leewaySeconds: 0, ...clock });
  await assertRefused(strict, await pythonToken("HS256", SECRET, { exp: NOW }), JWT_REFUSAL.Expired);
  await assertAccepted(strict, await pythonToken("HS256", SECRET, { exp: NOW + 1 }), { exp: NOW + 1 });
});

Deno.test("verify() checks iss and aud (a string or an array) when configured, and sub's type", async () => {
  const verifier = await createJwtVerifier({
    secret: SECRET,
    issuer: "https://id.example",
    audience: "hubbub",
    ...clock,
  });
  const iss = "https://id.example";
  const cases: [claims: Record<string, unknown>, reason: string | undefined][] = [
    [{ iss, aud: "hubbub" }, undefined],
    [{ iss, aud: ["other", "hubbub"] }, undefined],
    [{ iss, aud: ["other"] }, JWT_REFUSAL.Audience],
    [{ iss, aud: "hubbub2" }, JWT_REFUSAL.Audience],
    [{ iss, aud: [["hubbub"]] }, JWT_REFUSAL.Audience],
    [{ iss }, JWT_REFUSAL.Audience],
    [{ iss: "https://id.example/", aud: "hubbub" }, JWT_REFUSAL.Issuer],
    [{ aud: "hubbub" }, JWT_REFUSAL.Issuer],
    [{ iss: [iss], aud: "hubbub" }, JWT_REFUSAL.Issuer],
    [{ iss, aud: "hubbub", sub: 42 }, JWT_REFUSAL.Sub],
  ];
  const tokens = await pythonTokens("HS256", SECRET, cases.map(([claims]) => claims));
  for (const [i, [claims, reason]] of cases.entries()) {
    if (reason === undefined) await assertAccepted(verifier, tokens[i], claims);
    else await assertRefused(verifier, tokens[i], reason);
  }
  // Unconfigured, iss and aud are not looked at.
  const open = await createJwtVerifier({ secret: SECRET, ...clock });
  await assertAccepted(open, await pythonToken("HS256", SECRET, { iss: "x", aud: 5 }), { iss: "x", aud: 5 });
});

Deno.test("verify() returns the hubbub claim's permissions, and refuses a malformed one with its reason", async () => {
  const verifier = await createJwtVerifier({ secret: SECRET, ...clock });
  const hubbub = { subscribe: ["lobby", "team-*"], publish: ["lobby"] };
  const result = await assertAccepted(verifier, await pythonToken("HS384", SECRET, { sub: "ada", hubbub }), {
    sub: "ada",
    hubbub,
  });
  assert.ok(result.ok);
  assert.equal(result.permissions.canSubscribe("team-red"), true);
  assert.equal(result.permissions.canPublish("team-red"), false);
  assert.equal(result.permissions.canPublish("lobby"), true);
  const cases: [claim: unknown, reason: string][] = [
    [{ subscribe: "lobby" }, "hubbub.subscribe must be an array of room patterns"],
    [{ publish: ["a b"] }, "hubbub.publish[0] is not a room pattern (1-64 of A-Z a-z 0-9 . _ - *, or /)"],
    [["lobby"], "hubbub claim must be an object with subscribe and publish lists"],
    [{ publsh: ["lobby"] }, "hubbub claim may only have the keys subscribe and publish"],
  ];
  const tokens = await pythonTokens("HS256", SECRET, cases.map(([hubbub]) => ({ hubbub })));
  for (const [i, [, reason]] of cases.entries()) await assertRefused(verifier, tokens[i], reason);
});

Deno.test("verify() refuses an RSA signature longer than the modulus without throwing", async () => {
  const verifier = await createJwtVerifier({ keys: rsa.pem, ...clock });
  const long = () => Promise.resolve(new Uint8Array(512).fill(0xff));
  await assertRefused(verifier, await makeToken({ alg: "RS256" }, CLAIMS, long), JWT_REFUSAL.BadSignature);
  await assertRefused(
    verifier,
    await makeToken({ alg: "PS256" }, CLAIMS, () => Promise.resolve(new Uint8Array())),
    JWT_REFUSAL.BadSignature,
  );
});

Deno.test("verify() never throws and never accepts on 2,000 random mutations of a good token", async () => {
  const verifier = await createJwtVerifier({ secret: SECRET, keys: ec256.pem, ...clock });
  const tokens = [
    await pythonToken("HS256", SECRET, { ...CLAIMS, hubbub: { subscribe: ["a*"] } }),
    await makeToken({ alg: "ES256" }, CLAIMS, ecdsa(ec256, 256, 32)),
  ];
  const reasons = new Set<string>(Object.values(JWT_REFUSAL));
  const alphabet = 'ABCxyz019-_.=+/ \u00e9\u0000{}"';
  let seed = 12345;
  const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const original = tokens[i % tokens.length];
    const at = random(original.length);
    const char = alphabet[random(alphabet.length)];
    const mutated = [
      original.slice(0, at) + char + original.slice(at + 1),
      original.slice(0, at) + original.slice(at + 1),
      original.slice(0, at) + char + original.slice(at),
    ][random(3)];
    const result = await verifier.verify(mutated);
    if (mutated === original) continue;
    assert.equal(result.ok, false, mutated);
    if (!result.ok) {
      assert.ok(reasons.has(result.reason), result.reason);
      seen.add(result.reason);
    }
  }
  // The mutations reached several layers, not just the first check.
  for (const reason of [JWT_REFUSAL.Base64, JWT_REFUSAL.BadSignature, JWT_REFUSAL.NotCompact, JWT_REFUSAL.Json]) {
    assert.ok(seen.has(reason), `no mutation reached: ${reason}`);
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Bad key material and options.

Deno.test("createJwtVerifier() throws a TypeError naming what is wrong with the key material", async () => {
  const rsaPrivate = await Deno.readTextFile(rsa.file);
  const truncated = `-----BEGIN PUBLIC KEY-----\n${rsa.pem.split("\n").slice(1, 3).join("")}\n-----END PUBLIC KEY-----`;
  const rsaJwk = await jwkOf(rsa.pem, RSA, {});
  const cases: [options: Parameters<typeof createJwtVerifier>[0], message: RegExp][] = [
    [{}, /needs a secret \(HS256\/384\/512\) or keys/],
    [{ secret: "too short" }, /secret is too short to be safe: 9 bytes, give at least 32/],
    [{ keys: rsaPrivate }, /Keys must be public, not private/],
    [{ keys: "hello" }, /No PEM block found/],
    [{ keys: "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----" }, /PEM block is not valid base64/],
    [{ keys: truncated }, /Truncated DER/],
    [{ keys: rsa.pem.replace("PUBLIC KEY-----\n", "PUBLIC KEY-----\nAAAA") }, /Not a SubjectPublicKeyInfo/],
    [{ keys: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PRIVATE THING-----" }, /BEGIN and END labels differ/],
    [{ keys: "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----" }, /Unsupported PEM block: X509 CRL/],
    [{ keys: rsa1024.pem }, /RSA key too small in PEM key 0: 1024 bits, use at least 2048/],
    [{ keys: rsaPss.pem }, /RSA-PSS-only key/],
    [{ keys: ed448.pem }, /Unsupported public key algorithm/],
    [{ keys: secp256k1.pem }, /Unsupported elliptic curve/],
    [{ keys: "{ not json" }, /The JWKS is not valid JSON/],
    [{ keys: '{"keys": 5}' }, /must be an object with a "keys" array/],
    [{ keys: JSON.stringify({ keys: [{ kty: "oct", k: "c2VjcmV0" }] }) }, /JWKS key 0 holds private or secret key/],
    [{ keys: JSON.stringify({ keys: [{ ...rsaJwk, d: "AQAB" }] }) }, /JWKS key 0 holds private or secret key/],
    [{ keys: JSON.stringify({ keys: [{ kty: "EC", crv: "secp256k1", x: "", y: "" }] }) }, /Unsupported key type/],
    [{ keys: JSON.stringify({ keys: [{ ...rsaJwk, kid: "r", alg: "ES256" }] }) }, /\(kid r\) has an alg its key type/],
    [{ keys: JSON.stringify({ keys: [{ ...rsaJwk, n: "AAAA" }] }) }, /RSA key too small in JWKS key 0: 8 bits/],
    [{ keys: JSON.stringify({ keys: [{ ...rsaJwk, n: undefined }] }) }, /Cannot import JWKS key 0 for RS256/],
    [{ keys: JSON.stringify({ keys: [{ ...rsaJwk, use: "enc" }] }) }, /The JWKS has no signing keys/],
    [{ keys: 42 as unknown as string }, /keys must be the text of a PEM or JWKS file: number/],
  ];
  for (const [options, message] of cases) {
    await assert.rejects(() => createJwtVerifier(options), (error: Error) => {
      assert.equal(error.name, "TypeError", `${error.name}: ${error.message}`);
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("createJwtVerifier() throws a RangeError for a bad leeway or size limit", async () => {
  for (const options of [{ leewaySeconds: -1 }, { leewaySeconds: NaN }, { maxTokenBytes: 0 }, { maxTokenBytes: 1.5 }]) {
    await assert.rejects(() => createJwtVerifier({ secret: SECRET, ...options }), RangeError);
  }
});

Deno.test("signJwt() makes tokens Python's hmac agrees with, for each HMAC algorithm", async () => {
  for (const algorithm of ["HS256", "HS384", "HS512"] as const) {
    const token = await signJwt({ secret: SECRET, algorithm, claims: CLAIMS });
    const input = token.slice(0, token.lastIndexOf("."));
    assert.deepEqual(await pythonSign(algorithm, SECRET, [input]), [token]);
    assert.deepEqual(
      JSON.parse(decoder.decode(Uint8Array.fromBase64(token.split(".")[0], { alphabet: "base64url" }))),
      {
        alg: algorithm,
        typ: "JWT",
      },
    );
  }
  await assert.rejects(() => signJwt({ secret: "short", claims: {} }), /too short/);
  await assert.rejects(
    () => signJwt({ secret: SECRET, algorithm: "RS256" as "HS256", claims: {} }),
    /algorithm must be/,
  );
});
