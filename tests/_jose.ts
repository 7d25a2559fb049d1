/**
 * Making JWTs with tools we did not write, for the auth tests: base64url, running `openssl` (and Python) with stdin,
 * openssl key pairs in a temporary directory, and DER ECDSA signatures turned into JOSE's raw r||s.
 *
 * @module
 */

import assert from "node:assert/strict";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Base64url without padding, of bytes or of a string's UTF-8. */
export function b64url(data: Uint8Array | string): string {
  return (typeof data === "string" ? encoder.encode(data) : data).toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });
}

/** Runs a command with optional stdin; returns stdout, or throws with stderr. */
export async function run(command: string, args: string[], stdin?: string): Promise<Uint8Array> {
  const child = new Deno.Command(command, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(encoder.encode(stdin));
    await writer.close();
  }
  const output = await child.output();
  if (!output.success) throw new Error(`${command} ${args.join(" ")} failed: ${decoder.decode(output.stderr)}`);
  return output.stdout;
}

/** A private key file made by openssl and its public key as PEM (SPKI). */
export interface TestKey {
  readonly file: string;
  readonly pem: string;
}

/** Makes a key pair with `openssl genpkey` in `dir`, named `name`. */
export async function genpkey(dir: string, name: string, ...options: string[]): Promise<TestKey> {
  const file = `${dir}/${name}.key`;
  await run("openssl", ["genpkey", ...options, "-out", file]);
  return { file, pem: decoder.decode(await run("openssl", ["pkey", "-in", file, "-pubout"])) };
}

/** DER ECDSA signature (as openssl writes it) → JOSE raw r||s, each left-padded to `size` bytes. */
export function derToRaw(der: Uint8Array, size: number): Uint8Array {
  assert.equal(der[0], 0x30);
  let at = 2 + (der[1] & 0x80 ? der[1] & 0x7f : 0);
  const raw = new Uint8Array(2 * size);
  for (let i = 0; i < 2; i++) {
    assert.equal(der[at], 0x02);
    const length = der[at + 1];
    let integer = der.subarray(at + 2, at + 2 + length);
    at += 2 + length;
    while (integer.length > size && integer[0] === 0) integer = integer.subarray(1);
    raw.set(integer, (i + 1) * size - integer.length);
  }
  return raw;
}
