/**
 * `hubbub token` run as a process: the token it prints verifies in Python's hmac and in our verifier with the claims
 * asked for; usage errors exit 2 with the reason and usage, and never print the secret.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createJwtVerifier } from "../lib/auth/jwt.ts";
import { runMain } from "./_process.ts";

const SECRET = "the token command's secret, over 32 bytes";

/** Python checks the HMAC with compare_digest and returns the decoded header and claims, or fails. */
const PYTHON_VERIFY = `
import base64, hashlib, hmac, json, sys
secret, token = sys.stdin.read().split("\\n", 1)
data, signature = token.strip().rsplit(".", 1)
b64 = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
header, claims = (json.loads(b64(part)) for part in data.split("."))
digest = getattr(hashlib, "sha" + header["alg"][2:])
if not hmac.compare_digest(hmac.new(secret.encode(), data.encode(), digest).digest(), b64(signature)):
    sys.exit("bad signature")
print(json.dumps({"header": header, "claims": claims}))
`;

async function pythonVerify(
  secret: string,
  token: string,
): Promise<{ header: object; claims: Record<string, unknown> }> {
  const child = new Deno.Command("python3", { args: ["-c", PYTHON_VERIFY], stdin: "piped", stdout: "piped" }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(`${secret}\n${token}`));
  await writer.close();
  const { success, stdout } = await child.output();
  assert.ok(success, "Python's hmac refused the token");
  return JSON.parse(new TextDecoder().decode(stdout));
}

Deno.test("hubbub token prints a token Python's hmac and our verifier accept, with the claims asked for", async () => {
  const before = Math.floor(Date.now() / 1000);
  const { code, stdout, stderr } = await runMain(
    [
      "token",
      "--sub",
      "ada",
      "--subscribe",
      "lobby, team-*,/",
      "--publish",
      "lobby",
      "--ttl",
      "2h",
      "--issuer",
      "https://id.example",
      "--audience",
      "hubbub",
      "--alg",
      "HS384",
    ],
    { env: { HUBBUB_JWT_SECRET: SECRET } },
  );
  assert.equal(code, 0, stderr);
  assert.equal(stderr, "");
  assert.match(stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  const token = stdout.trim();
  const { header, claims } = await pythonVerify(SECRET, token);
  assert.deepEqual(header, { alg: "HS384", typ: "JWT" });
  const hubbub = { subscribe: ["lobby", "team-*", "/"], publish: ["lobby"] };
  assert.deepEqual(claims, {
    sub: "ada",
    iss: "https://id.example",
    aud: "hubbub",
    iat: claims.iat,
    exp: (claims.iat as number) + 7200,
    hubbub,
  });
  assert.ok((claims.iat as number) >= before && (claims.iat as number) <= Date.now() / 1000 + 1);

  const verifier = await createJwtVerifier({ secret: SECRET, issuer: "https://id.example", audience: "hubbub" });
  const result = await verifier.verify(token);
  assert.ok(result.ok, JSON.stringify(result));
  assert.deepEqual(result.claims, claims);
  assert.equal(result.sub, "ada");
  assert.equal(result.expiresAt, (claims.exp as number) * 1000);
  assert.equal(result.permissions.canSubscribe("team-blue"), true);
  assert.equal(result.permissions.canSubscribe("/"), true);
  assert.equal(result.permissions.canPublish("team-blue"), false);
  assert.equal(result.permissions.canPublish("lobby"), true);
  const wrongAudience = await createJwtVerifier({ secret: SECRET, audience: "other" });
  assert.equal((await wrongAudience.verify(token)).ok, false);
});

Deno.test("hubbub token defaults: HS256, one hour, no hubbub claim (every room); --secret works too", async () => {
  const { code, stdout, stderr } = await runMain(["token", "--secret", SECRET], { env: { HUBBUB_JWT_SECRET: "" } });
  assert.equal(code, 0, stderr);
  const { header, claims } = await pythonVerify(SECRET, stdout.trim());
  assert.deepEqual(header, { alg: "HS256", typ: "JWT" });
  assert.deepEqual(Object.keys(claims).sort(), ["exp", "iat"]);
  assert.equal((claims.exp as number) - (claims.iat as number), 3600);
  const result = await (await createJwtVerifier({ secret: SECRET })).verify(stdout.trim());
  assert.ok(result.ok);
  assert.equal(result.permissions.canPublish("anything"), true);
});

Deno.test("hubbub token --publish alone grants no subscriptions; --ttl takes s, m and d", async () => {
  for (const [ttl, seconds] of [["90s", 90], ["15m", 900], ["7d", 604_800]] as const) {
    const { code, stdout } = await runMain(["token", "--publish", "lobby", "--ttl", ttl], {
      env: { HUBBUB_JWT_SECRET: SECRET },
    });
    assert.equal(code, 0);
    const { claims } = await pythonVerify(SECRET, stdout.trim());
    assert.equal((claims.exp as number) - (claims.iat as number), seconds);
    assert.deepEqual(claims.hubbub, { subscribe: [], publish: ["lobby"] });
  }
});

Deno.test("hubbub token --help prints its usage; hubbub --help mentions it", async () => {
  const help = await runMain(["token", "--help"]);
  assert.equal(help.code, 0);
  for (const flag of ["--secret", "HUBBUB_JWT_SECRET", "--sub", "--subscribe", "--publish", "--ttl", "--alg"]) {
    assert.ok(help.stdout.includes(flag), flag);
  }
  const main = await runMain(["--help"]);
  assert.match(main.stdout, /hubbub token/);
});

const BAD: [args: string[], env: Record<string, string>, reason: RegExp][] = [
  [[], { HUBBUB_JWT_SECRET: "" }, /Give the secret: --secret S or HUBBUB_JWT_SECRET/],
  [["--secret", "hunter2"], {}, /The secret must be at least 32 bytes: 7 bytes/],
  [[], { HUBBUB_JWT_SECRET: "hunter2" }, /The secret must be at least 32 bytes: 7 bytes/],
  [["--ttl", "5x"], { HUBBUB_JWT_SECRET: SECRET }, /--ttl must be a number with s, m, h or d, from 1s to 366d: 5x/],
  [["--ttl", "60"], { HUBBUB_JWT_SECRET: SECRET }, /--ttl must be .*: 60/],
  [["--ttl", "0s"], { HUBBUB_JWT_SECRET: SECRET }, /--ttl must be .*: 0s/],
  [["--ttl", "367d"], { HUBBUB_JWT_SECRET: SECRET }, /--ttl must be .*: 367d/],
  [["--alg", "RS256"], { HUBBUB_JWT_SECRET: SECRET }, /--alg must be one of HS256, HS384, HS512: RS256/],
  [["--alg", "none"], { HUBBUB_JWT_SECRET: SECRET }, /--alg must be one of HS256, HS384, HS512: none/],
  [["--subscribe", "lobby,a b"], { HUBBUB_JWT_SECRET: SECRET }, /--subscribe takes patterns of .*: a b/],
  [["--publish", "team/x"], { HUBBUB_JWT_SECRET: SECRET }, /--publish takes patterns of .*: team\/x/],
  [["--bogus"], { HUBBUB_JWT_SECRET: SECRET }, /Unknown option '--bogus'/],
  [["stray"], { HUBBUB_JWT_SECRET: SECRET }, /Unexpected argument 'stray'/],
];

for (const [args, env, reason] of BAD) {
  Deno.test(`hubbub token ${args.join(" ") || JSON.stringify(env)} prints what is wrong and the usage, exits 2`, async () => {
    const { code, stdout, stderr } = await runMain(["token", ...args], { env });
    assert.equal(code, 2);
    assert.equal(stdout, "");
    assert.match(stderr, reason);
    assert.match(stderr, /Usage: hubbub token/);
    assert.ok(!stderr.includes("hunter2"), "the secret was printed");
  });
}
