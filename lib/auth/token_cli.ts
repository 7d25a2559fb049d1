/**
 * `hubbub token`: makes an HMAC-signed JWT for trying out a server that checks tokens.
 *
 * @example
 * ```sh
 * HUBBUB_JWT_SECRET=$(openssl rand -base64 32) deno run -A main.ts token --sub ada --subscribe 'lobby,team-*'
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { HMAC_ALGORITHMS, type HmacAlgorithm, MIN_SECRET_BYTES, signJwt } from "./jwt.ts";
import { parseRoomPermissions } from "./permissions.ts";

/** The `hubbub token --help` text. */
export const TOKEN_USAGE = `Usage: hubbub token [options]

Prints a JWT signed with a shared secret (HMAC) on stdout.

Options:
      --secret S          the secret, at least ${MIN_SECRET_BYTES} bytes (env HUBBUB_JWT_SECRET; prefer the env:
                          arguments show in ps)
      --sub NAME          who the token names (the sub claim)
      --subscribe LIST    rooms it may join, comma-separated patterns: lobby,team-* ("/" is the main room)
      --publish LIST      rooms it may send to, same form
                          without either flag every room is allowed both ways; with one, the other allows none
      --ttl DURATION      lifetime: N with s, m, h or d, e.g. 90s, 15m, 12h, 7d; at most 366d (default 1h)
      --issuer ISS        the iss claim
      --audience AUD      the aud claim
      --alg ALG           ${HMAC_ALGORITHMS.join(", ")} (default HS256)
  -h, --help              show this help

Exit codes: 0 printed a token, 2 usage error.
`;

/** Longest `--ttl`: a token nobody can revoke should not outlive a year. */
const MAX_TTL_SECONDS = 366 * 86_400;
const TTL_UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3_600, d: 86_400 };

/** A command-line mistake: printed with the usage, exit code 2. */
class UsageError extends Error {}

function parseTtl(text: string): number {
  const match = /^(\d{1,9})([smhd])$/.exec(text);
  const seconds = match ? Number(match[1]) * TTL_UNITS[match[2]] : NaN;
  if (!(seconds >= 1 && seconds <= MAX_TTL_SECONDS)) {
    throw new UsageError(`--ttl must be a number with s, m, h or d, from 1s to 366d: ${text}`);
  }
  return seconds;
}

function patterns(text: string | undefined): string[] {
  return (text ?? "").split(",").map((pattern) => pattern.trim()).filter((pattern) => pattern !== "");
}

/** Parses the flags into what to sign; throws `UsageError` on a bad flag or value. */
function parseTokenArgs(args: string[]): Parameters<typeof signJwt>[0] | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        secret: { type: "string" },
        sub: { type: "string" },
        subscribe: { type: "string" },
        publish: { type: "string" },
        ttl: { type: "string" },
        issuer: { type: "string" },
        audience: { type: "string" },
        alg: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return "help";
  const env = Deno.permissions.querySync({ name: "env", variable: "HUBBUB_JWT_SECRET" }).state === "granted"
    ? Deno.env.get("HUBBUB_JWT_SECRET")
    : undefined;
  const secret = values.secret ?? env;
  if (secret === undefined || secret === "") throw new UsageError("Give the secret: --secret S or HUBBUB_JWT_SECRET");
  const bytes = new TextEncoder().encode(secret).length;
  if (bytes < MIN_SECRET_BYTES) {
    // The length, never the secret itself.
    throw new UsageError(`The secret must be at least ${MIN_SECRET_BYTES} bytes: ${bytes} bytes`);
  }
  const algorithm = (values.alg ?? "HS256") as HmacAlgorithm;
  if (!HMAC_ALGORITHMS.includes(algorithm)) {
    throw new UsageError(`--alg must be one of ${HMAC_ALGORITHMS.join(", ")}: ${values.alg}`);
  }
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {};
  if (values.sub !== undefined) claims.sub = values.sub;
  if (values.issuer !== undefined) claims.iss = values.issuer;
  if (values.audience !== undefined) claims.aud = values.audience;
  claims.iat = now;
  claims.exp = now + parseTtl(values.ttl ?? "1h");
  if (values.subscribe !== undefined || values.publish !== undefined) {
    const hubbub = { subscribe: patterns(values.subscribe), publish: patterns(values.publish) };
    for (const flag of ["subscribe", "publish"] as const) {
      const bad = hubbub[flag].find((pattern) => "error" in parseRoomPermissions({ [flag]: [pattern] }));
      if (bad !== undefined) {
        throw new UsageError(`--${flag} takes patterns of 1-64 A-Z a-z 0-9 . _ - * (or / for the main room): ${bad}`);
      }
    }
    const parsed = parseRoomPermissions(hubbub);
    if ("error" in parsed) throw new UsageError(parsed.error);
    claims.hubbub = hubbub;
  }
  return { secret, algorithm, claims };
}

/** Runs `hubbub token` with `args`; prints the token (or the usage) and resolves to the exit code. */
export async function runToken(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseTokenArgs(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`hubbub token: ${error.message}\n\n${TOKEN_USAGE}`);
    return 2;
  }
  if (parsed === "help") {
    console.log(TOKEN_USAGE);
    return 0;
  }
  console.log(await signJwt(parsed));
  return 0;
}
