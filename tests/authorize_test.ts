/**
 * Who may do what, over real handshakes on both engines: JWTs made by code we did not write (Python's hmac for HS256,
 * openssl for RS256 and ES256), every attack a 401 with its reason, room permissions (403 before the upgrade, 1008
 * for a subscribe-only sender), expiry while connected (3000 at exp + leeway), `--token` and JWTs together, the
 * `bearer.<token>` subprotocol, and no token in any log line of the real process at any level.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ANONYMOUS, authorize, credentialOf } from "../lib/auth/authorize.ts";
import { createJwtVerifier, JWT_REFUSAL, type JwtVerifier } from "../lib/auth/jwt.ts";
import { CLOSE_CODE } from "../lib/ws/close_code.ts";
import type { HubbubServer } from "../lib/server.ts";
import {
  assertEmpty,
  captureLog,
  ENGINES,
  engineTest,
  eventually,
  rawRequest,
  type RawResponse,
  startServer,
  TestClient,
  upgradeHead,
} from "./_harness.ts";
import { runMain, startMain } from "./_process.ts";
import { b64url, derToRaw, genpkey, run } from "./_jose.ts";

const decoder = new TextDecoder();
const SECRET = "an authorize-test secret of at least thirty-two bytes";
const ISSUER = "https://auth.example.test";
const AUDIENCE = "hubbub-test";

/**
 * HS256 tokens made entirely by Python's standard library: for each job, the header and claims as JSON, or a crafted
 * signing input, signed with the job's secret.
 */
const PYTHON_HS256 = `
import base64, hashlib, hmac, json, sys
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def token(d):
    data = d.get("input") or b64(json.dumps(d["header"]).encode()) + "." + b64(json.dumps(d["claims"]).encode())
    return data + "." + b64(hmac.new(d["secret"].encode(), data.encode(), hashlib.sha256).digest())
print(json.dumps([token(d) for d in json.load(sys.stdin)]))
`;

type Job = { secret?: string; header?: object } & ({ claims: object } | { input: string });

/** One Python process for a batch of tokens. */
async function python(jobs: Job[]): Promise<string[]> {
  const full = jobs.map((job) => ({ secret: SECRET, header: { alg: "HS256", typ: "JWT" }, ...job }));
  return JSON.parse(decoder.decode(await run("python3", ["-c", PYTHON_HS256], JSON.stringify(full))));
}

const now = () => Math.floor(Date.now() / 1000);
const valid = (extra: object = {}) => ({ iss: ISSUER, aud: AUDIENCE, exp: now() + 600, ...extra });

// openssl keys, made once per run in a temporary directory.
const dir = await Deno.makeTempDir({ prefix: "hubbub-authorize-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

const [rsa, ecA, ecB] = await Promise.all([
  genpkey(dir, "rsa", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"),
  genpkey(dir, "ec-a", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
  genpkey(dir, "ec-b", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
]);

/** An RS256 token signed by openssl. */
async function rs256(claims: object): Promise<string> {
  const input = `${b64url(JSON.stringify({ alg: "RS256", typ: "JWT" }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(await run("openssl", ["dgst", "-sha256", "-sign", rsa.file], input))}`;
}

/** An ES256 token signed by openssl (its DER signature turned into JOSE r||s), with `kid`. */
async function es256(key: { file: string }, kid: string, claims: object): Promise<string> {
  const input = `${b64url(JSON.stringify({ alg: "ES256", kid }))}.${b64url(JSON.stringify(claims))}`;
  const der = await run("openssl", ["dgst", "-sha256", "-sign", key.file], input);
  const raw = derToRaw(der, 32);
  return `${input}.${b64url(raw)}`;
}

/** A JWKS of the two EC keys under kids `a` and `b`, exported by Web Crypto from openssl's PEM. */
async function jwks(): Promise<string> {
  const keys = [];
  for (const [kid, key] of [["a", ecA], ["b", ecB]] as const) {
    const spki = Uint8Array.fromBase64(key.pem.replace(/-----[^-]+-----|\s/g, ""));
    const imported = await crypto.subtle.importKey("spki", spki, { name: "ECDSA", namedCurve: "P-256" }, true, [
      "verify",
    ]);
    keys.push({ ...await crypto.subtle.exportKey("jwk", imported), kid, use: "sig" });
  }
  return JSON.stringify({ keys });
}

function attempt(server: HubbubServer, path: string, extra = ""): Promise<RawResponse> {
  return rawRequest(server.addr.port, upgradeHead(path, extra));
}

function bearer(token: string): string {
  return `Authorization: Bearer ${token}\r\n`;
}

/** Opens a client and proves it works: its own message comes back from its room. */
async function talk(url: string, protocols?: string[], headers?: HeadersInit): Promise<TestClient> {
  const client = new TestClient(url, protocols, headers);
  await client.opened();
  client.socket.send("ping?");
  assert.deepEqual(await client.waitFor(1), ["ping?"]);
  return client;
}

async function verifier(options: { leewaySeconds?: number; keys?: string } = {}): Promise<JwtVerifier> {
  return await createJwtVerifier({ secret: SECRET, issuer: ISSUER, audience: AUDIENCE, ...options });
}

// ---------------------------------------------------------------------------------------------------------------
// authorize(), as HTTP routes call it

Deno.test("credentialOf() reads Authorization: Bearer, else ?token=, else a bearer.<token> offer", () => {
  const of = (headers: Record<string, string>, query = "") =>
    credentialOf({ headers: new Headers(headers), params: new URLSearchParams(query) });
  assert.equal(of({ authorization: "Bearer h" }, "token=q"), "h");
  assert.equal(of({ authorization: "bearer   h " }), "h");
  assert.equal(of({ authorization: "Basic dTpw" }, "token=q"), "q", "another scheme is not a bearer token");
  assert.equal(of({ "sec-websocket-protocol": "chat, bearer.s" }, "token=q"), "q");
  assert.equal(of({ "sec-websocket-protocol": "chat,bearer.s,bearer.t" }), "s");
  assert.equal(of({ "sec-websocket-protocol": "chat" }), null);
  assert.equal(of({}), null);
});

Deno.test("authorize() checks the room for publish and subscribe, and adds the leeway to exp", async () => {
  const jwt = await verifier({ leewaySeconds: 5 });
  const exp = now() + 60;
  const [token] = await python([{ claims: valid({ sub: "ada", exp, hubbub: { subscribe: ["*"], publish: ["a"] } }) }]);
  const request = { headers: new Headers({ authorization: `Bearer ${token}` }), params: new URLSearchParams() };
  const identity = await authorize(request, { token: "", jwt }, { room: "a", action: "publish" });
  assert.ok(!("status" in identity));
  assert.equal(identity.sub, "ada");
  assert.equal(identity.closeAt, (exp + 5) * 1000);
  const refused = await authorize(request, { token: "", jwt }, { room: "b", action: "publish" });
  assert.deepEqual(refused, {
    status: 403,
    reason: "Token does not allow publishing in room: b",
    label: "forbidden",
    headers: { "www-authenticate": 'Bearer realm="hubbub", error="insufficient_scope"' },
  });
  assert.ok(!("status" in await authorize(request, { token: "", jwt }, { room: "b", action: "subscribe" })));
  // Open server: everyone, every room; the shared token: everyone who has it, every room.
  assert.equal(await authorize(request, { token: "" }, { room: "b", action: "publish" }), ANONYMOUS);
  const shared = { headers: new Headers(), params: new URLSearchParams("token=s3cret") };
  assert.equal(await authorize(shared, { token: "s3cret", jwt }, { room: "b", action: "publish" }), ANONYMOUS);
});

// ---------------------------------------------------------------------------------------------------------------
// Over real handshakes

engineTest("JWT: a Python HS256 token connects by header, ?token= and bearer.<token>; the log shows sub only", async (
  engine,
) => {
  const log = captureLog("debug");
  const server = startServer(engine, { jwt: await verifier(), logger: log.logger });
  const [token, wrong] = await python([
    { claims: valid({ sub: "ada" }) },
    { claims: valid({ sub: "eve" }), secret: SECRET + "?" },
  ]);
  const url = `${server.wsUrl}/rooms/lobby`;
  try {
    const clients = [
      await talk(url, undefined, { authorization: `Bearer ${token}` }),
      await talk(`${url}?token=${token}`),
      await talk(url, [`bearer.${token}`, "chat"]),
    ];
    assert.equal(clients[2].socket.protocol, "chat");
    assert.equal(server.hub.members("lobby"), 3);
    for (const client of clients) await client.close();
    const refused = await attempt(server, `/rooms/lobby?token=${wrong}`);
    assert.equal(refused.status, 401);
    // The answer to a bearer.<token> offer selects the other protocol, or none: never the token.
    const answered = await attempt(server, "/rooms/lobby", `Sec-WebSocket-Protocol: bearer.${token}, chat\r\n`);
    assert.equal(answered.headers.get("sec-websocket-protocol"), "chat");
    const alone = await attempt(server, "/rooms/lobby", `Sec-WebSocket-Protocol: bearer.${token}\r\n`);
    assert.equal(alone.status, 101);
    assert.equal(alone.headers.get("sec-websocket-protocol"), undefined);
    await assertEmpty(server);
  } finally {
    await server.shutdown();
  }
  const connected = log.lines.filter((line) => line.includes("client connected"));
  assert.equal(connected.length, 5);
  for (const line of connected) assert.equal(JSON.parse(line).sub, "ada");
  for (const line of log.lines) {
    assert.ok(!line.includes(token) && !line.includes(wrong), `a token leaked into the log: ${line}`);
    assert.ok(!line.includes(token.split(".")[2]), `a signature leaked into the log: ${line}`);
  }
});

engineTest("JWT attacks: each is a 401 with its reason and WWW-Authenticate: Bearer error=invalid_token", async (
  engine,
) => {
  const both = startServer(engine, { jwt: await verifier({ keys: rsa.pem }) });
  const keysOnly = startServer(engine, { jwt: await createJwtVerifier({ keys: rsa.pem }) });
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const claims = b64url(JSON.stringify(valid()));
  const [
    forgedSecret,
    confusedWithSecret,
    expired,
    notYet,
    wrongIssuer,
    wrongAudience,
    badJson,
    tooLarge,
    badClaim,
  ] = await python([
    { claims: valid(), secret: SECRET.replace("a", "A") },
    // The classic confusion: HS256 "signed" with the server's public RSA key as the HMAC secret.
    { claims: valid(), secret: rsa.pem },
    { claims: valid({ exp: now() - 120 }) },
    { claims: valid({ nbf: now() + 120 }) },
    { claims: valid({ iss: "https://evil.example.test" }) },
    { claims: valid({ aud: ["someone-else"] }) },
    { input: `${header}.${b64url("{not json")}` },
    { claims: valid({ padding: "x".repeat(9000) }) },
    { claims: valid({ hubbub: { publsh: ["lobby"] } }) },
  ]);
  const good = await rs256(valid({ sub: "rsa" }));
  const [goodHeader, , goodSignature] = good.split(".");
  const tampered = `${goodHeader}.${b64url(JSON.stringify(valid({ sub: "root" })))}.${goodSignature}`;
  const cases: [server: HubbubServer, token: string, reason: string][] = [
    [both, `${b64url(JSON.stringify({ alg: "none" }))}.${claims}.`, JWT_REFUSAL.AlgNone],
    [both, `${b64url(JSON.stringify({ alg: "None" }))}.${claims}.`, JWT_REFUSAL.AlgNone],
    [both, confusedWithSecret, JWT_REFUSAL.BadSignature],
    [keysOnly, confusedWithSecret, JWT_REFUSAL.AlgNotAccepted],
    [both, forgedSecret, JWT_REFUSAL.BadSignature],
    [both, tampered, JWT_REFUSAL.BadSignature],
    [both, "not-a-token", JWT_REFUSAL.NotCompact],
    [both, `${header}.${claims}.sig!`, JWT_REFUSAL.Base64],
    [both, badJson, JWT_REFUSAL.Json],
    [both, tooLarge, JWT_REFUSAL.TooLarge],
    [both, expired, JWT_REFUSAL.Expired],
    [both, notYet, JWT_REFUSAL.NotYetValid],
    [both, wrongIssuer, JWT_REFUSAL.Issuer],
    [both, wrongAudience, JWT_REFUSAL.Audience],
    [both, badClaim, "hubbub claim may only have the keys subscribe and publish"],
  ];
  try {
    for (const [server, token, reason] of cases) {
      const response = await attempt(server, "/rooms/lobby", bearer(token));
      assert.equal(response.status, 401, `${reason}: got ${response.status} ${response.body}`);
      assert.equal(response.body, reason + "\n");
      assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="hubbub", error="invalid_token"');
      assert.equal(response.headers.get("sec-websocket-accept"), undefined);
    }
    const missing = await attempt(both, "/rooms/lobby");
    assert.equal(missing.status, 401);
    assert.match(missing.body, /^Missing token: send Authorization: Bearer <token>, \?token=<token> or subprotocol/);
    assert.equal(missing.headers.get("www-authenticate"), 'Bearer realm="hubbub"', "RFC 6750: no error code");
    // The same RS256 token untampered connects to both.
    for (const server of [both, keysOnly]) {
      const client = await talk(`${server.wsUrl}/rooms/lobby`, undefined, { authorization: `Bearer ${good}` });
      await client.close();
    }
    assert.equal(both.hub.stats.refused.get("unauthorized"), cases.length);
    assert.equal(both.hub.stats.upgrades, 1);
  } finally {
    for (const server of [both, keysOnly]) {
      await assertEmpty(server);
      await server.shutdown();
    }
  }
});

engineTest("JWT: a JWKS with two keys picks each token's key by kid (openssl ES256)", async (engine) => {
  const server = startServer(engine, { jwt: await createJwtVerifier({ keys: await jwks() }) });
  try {
    for (const [key, kid] of [[ecA, "a"], [ecB, "b"]] as const) {
      const token = await es256(key, kid, { sub: kid, exp: now() + 60 });
      const client = await talk(`${server.wsUrl}/echo?token=${token}`);
      await client.close();
    }
    const wrongKey = await attempt(server, `/echo?token=${await es256(ecA, "b", { sub: "x" })}`);
    assert.deepEqual([wrongKey.status, wrongKey.body], [401, JWT_REFUSAL.BadSignature + "\n"]);
    const unknown = await attempt(server, `/echo?token=${await es256(ecA, "c", { sub: "x" })}`);
    assert.deepEqual([unknown.status, unknown.body], [401, JWT_REFUSAL.UnknownKid + "\n"]);
  } finally {
    await assertEmpty(server);
    await server.shutdown();
  }
});

/** Sends `text` from `client`: resolves "delivered" when it comes back from the room, or the close code. */
async function trySend(client: TestClient, text: string): Promise<"delivered" | number> {
  const before = client.received.length;
  client.socket.send(text);
  await client.waitFor(before + 1);
  if (client.received.at(-1) === text) return "delivered";
  return (await client.closed).code;
}

engineTest("permissions: a table of rooms per token; outside subscribe is 403 before the upgrade", async (engine) => {
  const server = startServer(engine, { jwt: await verifier() });
  const [mixed, noMain, everything, subscribeOnly] = await python([
    { claims: valid({ sub: "mixed", hubbub: { subscribe: ["ticker", "team-*", "/"], publish: ["team-red", "/"] } }) },
    { claims: valid({ sub: "no-main", hubbub: { subscribe: ["*"], publish: ["*"] } }) },
    { claims: valid({ sub: "all" }) },
    { claims: valid({ sub: "reader", hubbub: { subscribe: ["*"] } }) },
  ]);
  const table: [token: string, path: string, expected: 101 | 403, sends?: "delivered" | number][] = [
    [mixed, "/rooms/ticker", 101, CLOSE_CODE.PolicyViolation],
    [mixed, "/rooms/team-red", 101, "delivered"],
    [mixed, "/rooms/team-blue", 101, CLOSE_CODE.PolicyViolation],
    [mixed, "/rooms/teams", 403],
    [mixed, "/rooms/secret", 403],
    [mixed, "/", 101, "delivered"],
    [mixed, "/echo", 101, "delivered"],
    [noMain, "/rooms/anything", 101, "delivered"],
    [noMain, "/", 403],
    [everything, "/", 101, "delivered"],
    [everything, "/rooms/secret", 101, "delivered"],
    [subscribeOnly, "/rooms/secret", 101, CLOSE_CODE.PolicyViolation],
    [subscribeOnly, "/echo", 101, "delivered"],
  ];
  try {
    for (const [token, path, expected, sends] of table) {
      const what = `${path} for ${JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub}`;
      if (expected === 403) {
        const response = await attempt(server, path, bearer(token));
        assert.equal(response.status, 403, what);
        const room = path === "/" ? "/" : path.slice("/rooms/".length);
        assert.equal(response.body, `Token does not allow subscribing to room: ${room}\n`, what);
        continue;
      }
      const client = new TestClient(`${server.wsUrl}${path}`, undefined, { authorization: `Bearer ${token}` });
      await client.opened();
      assert.equal(await trySend(client, `hello ${path}`), sends, what);
      const { code, reason } = await client.close();
      if (sends !== "delivered") assert.deepEqual({ code, reason }, { code: 1008, reason: "not allowed to publish" });
    }
    assert.equal(server.hub.stats.refused.get("forbidden"), 3);
    assert.equal(server.hub.stats.dropped.not_allowed, 3);
  } finally {
    await assertEmpty(server);
    await server.shutdown();
  }
});

engineTest("permissions: a subscribe-only audience gets the ticker, and its sends close it and reach nobody", async (
  engine,
) => {
  const server = startServer(engine, { jwt: await verifier() });
  const [publisher, audience] = await python([
    { claims: valid({ sub: "ticker", hubbub: { subscribe: ["ticker"], publish: ["ticker"] } }) },
    { claims: valid({ sub: "viewer", hubbub: { subscribe: ["ticker"] } }) },
  ]);
  const url = `${server.wsUrl}/rooms/ticker`;
  try {
    const source = await talk(url, undefined, { authorization: `Bearer ${publisher}` });
    const viewers = [new TestClient(`${url}?token=${audience}`), new TestClient(url, [`bearer.${audience}`, "chat"])];
    await Promise.all(viewers.map((viewer) => viewer.opened()));
    source.socket.send("price 1");
    for (const viewer of viewers) assert.deepEqual(await viewer.waitFor(1), ["price 1"]);
    viewers[0].socket.send("spam");
    assert.deepEqual(await viewers[0].closed, { code: CLOSE_CODE.PolicyViolation, reason: "not allowed to publish" });
    source.socket.send("price 2");
    assert.deepEqual(await viewers[1].waitFor(2), ["price 1", "price 2"]);
    assert.deepEqual(await source.waitFor(3), ["ping?", "price 1", "price 2"], "the spam reached nobody");
    assert.equal(server.hub.members("ticker"), 2);
    assert.equal(server.hub.stats.dropped.not_allowed, 1);
    await viewers[1].close();
    await source.close();
  } finally {
    await assertEmpty(server);
    await server.shutdown();
  }
});

engineTest("expiry: a token that expires while connected closes its client with 3000 at exp + leeway", async (
  engine,
) => {
  const leewaySeconds = 1;
  const server = startServer(engine, { jwt: await verifier({ leewaySeconds }) });
  // Whole seconds, as exp is: A's deadline comes 1-2 s from now, B's two seconds later.
  const expA = Math.ceil(Date.now() / 1000);
  const expB = expA + 2;
  const [tokenA, tokenB] = await python([
    { claims: valid({ sub: "a", exp: expA }) },
    { claims: valid({ sub: "b", exp: expB }) },
  ]);
  const url = `${server.wsUrl}/rooms/expiring`;
  try {
    const a = await talk(`${url}?token=${tokenA}`);
    const b = await talk(`${url}?token=${tokenB}`);
    // Same deadline as A, but gone before it: its deadline is cancelled and must not fire on a closed socket.
    const early = await talk(`${url}?token=${tokenA}`);
    await early.close();
    let bOpenWhenAClosed = false;
    let aClosedAt = 0;
    const closedA = a.closed.then((event) => {
      aClosedAt = Date.now();
      bOpenWhenAClosed = b.socket.readyState === WebSocket.OPEN;
      return event;
    });
    assert.deepEqual(await closedA, { code: CLOSE_CODE.Unauthorized, reason: "token expired" });
    const bClosed = await b.closed;
    const bClosedAt = Date.now();
    assert.deepEqual(bClosed, { code: 3000, reason: "token expired" });
    // Timers may round to the millisecond: allow a few of them early, never a whole leeway.
    assert.ok(aClosedAt >= (expA + leewaySeconds) * 1000 - 5, `A closed ${(expA + 1) * 1000 - aClosedAt} ms early`);
    assert.ok(aClosedAt < (expB + leewaySeconds) * 1000, "A closed at its own deadline, before B's");
    assert.ok(bOpenWhenAClosed, "B stayed open past A's deadline");
    assert.ok(bClosedAt >= (expB + leewaySeconds) * 1000 - 5, `B closed ${(expB + 1) * 1000 - bClosedAt} ms early`);
    await eventually("both closes counted", () => server.hub.stats.closes.get(3000) === 2);
  } finally {
    await assertEmpty(server);
    await server.shutdown();
  }
});

engineTest("expiry: every way a connection ends cancels its deadline (no timer left)", async (engine) => {
  const server = startServer(engine, { jwt: await verifier() });
  const [token, reader] = await python([
    { claims: valid({ exp: now() + 3600 }) },
    { claims: valid({ exp: now() + 3600, hubbub: { subscribe: ["*"] } }) },
  ]);
  const url = `${server.wsUrl}/rooms/leaving`;
  try {
    // 1. The client closes.
    await (await talk(`${url}?token=${token}`)).close();
    // 2. The hub evicts it (a subscribe-only sender).
    const evicted = new TestClient(`${url}?token=${reader}`);
    await evicted.opened();
    evicted.socket.send("no");
    assert.equal((await evicted.closed).code, 1008);
    // 3. The TCP connection drops without a close frame.
    assert.equal((await attempt(server, "/rooms/leaving", bearer(token))).status, 101);
    await assertEmpty(server);
    // 4. The server shuts down with the client still connected (in finally).
    await talk(`${url}?token=${token}`);
  } finally {
    await server.shutdown();
  }
  // The sanitizers fail this test if the server's expiry timer outlived the connections.
});

engineTest("--token and JWTs together: either admits; a wrong one of each is refused", async (engine) => {
  const server = startServer(engine, { token: "shared-Token_7", jwt: await verifier() });
  const [token] = await python([{ claims: valid({ sub: "jwt" }) }]);
  try {
    const clients = [
      await talk(`${server.wsUrl}/rooms/both?token=shared-Token_7`),
      await talk(`${server.wsUrl}/rooms/both`, undefined, { authorization: `Bearer ${token}` }),
    ];
    assert.equal(server.hub.members("both"), 2);
    for (const client of clients) await client.close();
    const wrongShared = await attempt(server, "/rooms/both?token=shared-Token_8");
    assert.deepEqual([wrongShared.status, wrongShared.body], [401, JWT_REFUSAL.NotCompact + "\n"]);
    assert.equal((await attempt(server, `/rooms/both?token=${token}x`)).status, 401);
  } finally {
    await assertEmpty(server);
    await server.shutdown();
  }
});

// ---------------------------------------------------------------------------------------------------------------
// The real process

for (const engine of ENGINES) {
  Deno.test({
    name: `[${engine}] the real server with --jwt-key, HUBBUB_JWT_SECRET and --token never prints a token`,
    sanitizeOps: true,
    sanitizeResources: true,
  }, async () => {
    const keyFile = `${dir}/rsa-${engine}.pem`;
    await Deno.writeTextFile(keyFile, rsa.pem);
    const shared = "shared-Secret_42";
    const server = await startMain(
      [
        ...["--engine", engine, "--log-level", "debug", "--token", shared, "--jwt-key", keyFile],
        ...["--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE, "--subprotocol", "chat"],
      ],
      { env: { HUBBUB_JWT_SECRET: SECRET } },
    );
    const [hs256, wrong] = await python([
      { claims: valid({ sub: "ada", hubbub: { subscribe: ["cli"], publish: ["cli"] } }) },
      { claims: valid({ sub: "eve" }), secret: SECRET + "!" },
    ]);
    const rs = await rs256(valid({ sub: "grace" }));
    const url = `ws://127.0.0.1:${server.port}/rooms/cli`;
    const clients = [
      await talk(url, undefined, { authorization: `Bearer ${hs256}` }),
      await talk(`${url}?token=${rs}`),
      await talk(url, ["chat", `bearer.${shared}`]),
    ];
    const refused = await rawRequest(server.port, upgradeHead(`/rooms/cli?token=${wrong}`));
    assert.equal(refused.status, 401);
    const forbidden = await rawRequest(server.port, upgradeHead("/rooms/other", bearer(hs256)));
    assert.equal(forbidden.status, 403);
    for (const client of clients) await client.close();
    server.child.kill("SIGTERM");
    const { code, stdout, stderr } = await server.exited;
    assert.equal(code, 0);
    const output = server.banner + stdout + stderr;
    assert.match(server.banner, /a JWT or the shared token is required/);
    assert.match(server.banner, /subprotocols chat, hubbub\.v1/);
    assert.match(stderr, /client connected .*sub="ada"/);
    assert.match(stderr, /client connected .*sub="grace"/);
    assert.match(stderr, /handshake refused/, "debug logging was on");
    for (const secret of [hs256, wrong, rs, shared, SECRET]) {
      assert.ok(!output.includes(secret), `a token leaked:\n${output}`);
      assert.ok(!output.includes(secret.split(".").at(-1)!), `a signature leaked:\n${output}`);
    }
  });
}

Deno.test("the CLI refuses bad JWT flags with exit 2 and says what is wrong", async () => {
  const cases: [string[], RegExp][] = [
    [["--jwt-secret", "short"], /JWT secret is too short to be safe: 5 bytes/],
    [["--jwt-key", `${dir}/missing.pem`], /Cannot read --jwt-key/],
    [["--jwt-issuer", ISSUER], /--jwt-issuer and --jwt-audience need --jwt-secret or --jwt-key/],
    [["--subprotocol", "chat v1"], /--subprotocol must be a name like chat\.v1 \(not bearer\.\*\): chat v1/],
    [["--subprotocol", "bearer.x"], /--subprotocol must be a name like chat\.v1/],
  ];
  for (const [args, message] of cases) {
    const { code, stderr } = await runMain(args);
    assert.match(stderr, message, args.join(" "));
    assert.equal(code, 2, args.join(" "));
  }
});
