import assert from "node:assert/strict";
import { REDIS_CLIENT_DEFAULTS, RedisClient, RedisScript, type RedisState } from "../lib/broker/redis_client.ts";
import { RedisConnection, RedisConnectionError, RedisReplyError } from "../lib/broker/redis_connection.ts";
import { RedisSubscriber } from "../lib/broker/redis_subscriber.ts";
import { describeRedisUrl, parseRedisUrl, redisAddress } from "../lib/broker/redis_url.ts";
import { respText } from "../lib/broker/resp.ts";
import { type RedisServer, type RedisServerOptions, startRedis } from "./_redis.ts";

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);

/** A test against a fresh real redis-server, stopped afterwards, with Deno's leak sanitizers on. */
function redisTest(name: string, fn: (server: RedisServer) => Promise<void>, options: RedisServerOptions = {}): void {
  Deno.test({
    name,
    sanitizeOps: true,
    sanitizeResources: true,
    fn: async () => {
      const server = await startRedis(options);
      try {
        await fn(server);
      } finally {
        await server.stop();
      }
    },
  });
}

/** Polls `predicate` every 10 ms until it holds; fails naming `what` after `timeoutMs`. */
async function waitFor(predicate: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Whether `promise` has settled once a macrotask has run (a fail-fast rejection has; a waiting command has not). */
async function settledNow(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  await new Promise((resolve) => setTimeout(resolve, 0));
  return settled;
}

/** The value of one field of `INFO <section>`. */
async function info(connection: RedisConnection | RedisClient, section: string, field: string): Promise<string> {
  const text = respText(await connection.command(["INFO", section]));
  const match = new RegExp(`^${field}:(.*)\r?$`, "m").exec(text);
  assert.ok(match, `INFO ${section} has no ${field}`);
  return match[1].trim();
}

// --- URLs ---

Deno.test("parseRedisUrl() reads host, port, credentials, database and TLS", () => {
  assert.deepEqual({ ...parseRedisUrl("redis://localhost") }, {
    tls: false,
    hostname: "localhost",
    port: 6379,
    username: undefined,
    password: undefined,
    db: 0,
  });
  assert.deepEqual({ ...parseRedisUrl("rediss://:pw@10.0.0.1:7000/15") }, {
    tls: true,
    hostname: "10.0.0.1",
    port: 7000,
    username: undefined,
    password: "pw",
    db: 15,
  });
  const url = parseRedisUrl("redis://h%C3%BCb:p%40ss%3Aw%2Frd%25@[::1]:6380/");
  assert.equal(url.username, "hüb");
  assert.equal(url.password, "p@ss:w/rd%");
  assert.equal(url.hostname, "::1");
  assert.equal(url.db, 0);
  assert.equal(redisAddress(url), "[::1]:6380");
  assert.equal(describeRedisUrl(url), "redis://[::1]:6380");
  assert.equal(describeRedisUrl(parseRedisUrl("rediss://u:secret@example.com/4")), "rediss://example.com:6379/4");
});

Deno.test("parseRedisUrl() errors say what is wrong and never show the password", () => {
  const secret = "hunter2";
  const cases: [string, RegExp][] = [
    [`http://:${secret}@host`, /must start with redis:\/\/ or rediss:\/\/: http:\/\/\*\*\*@host/],
    [`redis://:${secret}@`, /not a URL|no host/],
    [`redis://:${secret}@host/16`, /database must be a number from 0 to 15: 16/],
    [`redis://:${secret}@host/x`, /database must be a number from 0 to 15: x/],
    [`redis://:${secret}@host/1/2`, /database must be a number from 0 to 15: 1\/2/],
    [`redis://:${secret}@host?password=${secret}`, /takes no query or fragment.*: redis:\/\/\*\*\*@host$/],
    [`redis://:${secret}@host#${secret}`, /takes no query or fragment/],
    [`redis://:${secret}@host:99999`, /not a URL/],
    [`redis://:${secret}%zz@host`, /password has an invalid percent-encoding/],
    [`redis://user@host`, /user name but no password/],
    [`redis://u:${secret}/x@host`, /not a URL|must|no host|database/],
    [`not a url ${secret}@`, /not a URL/],
  ];
  for (const [url, pattern] of cases) {
    assert.throws(() => parseRedisUrl(url), (error: unknown) => {
      assert.ok(error instanceof TypeError, `${url}: ${error}`);
      assert.match(error.message, pattern);
      assert.ok(!error.message.includes(secret), `the password leaked: ${error.message}`);
      return true;
    });
  }
});

// --- One connection ---

redisTest("RedisConnection pipelines every command issued in one turn into one write", async (server) => {
  const connection = await RedisConnection.connect({ url: server.url() });
  try {
    const readsBefore = Number(await info(connection, "stats", "total_reads_processed"));
    const writesBefore = connection.writes;
    // 200 commands and an INFO in one turn: one write from us, one read for Redis (its own counter says so).
    const increments = Array.from({ length: 200 }, () => connection.command(["INCR", "n"]));
    const readsAfter = info(connection, "stats", "total_reads_processed");
    assert.deepEqual(await Promise.all(increments), Array.from({ length: 200 }, (_, i) => i + 1));
    assert.equal(connection.writes - writesBefore, 1);
    assert.equal(Number(await readsAfter) - readsBefore, 1);

    // Awaiting each command in turn is 50 writes: the counter does see separate writes.
    for (let i = 0; i < 50; i++) await connection.command(["INCR", "n"]);
    assert.equal(connection.writes - writesBefore, 51);
  } finally {
    await connection.close();
  }
});

redisTest("RedisConnection round-trips all 256 byte values and a 3 MiB value", async (server) => {
  const connection = await RedisConnection.connect({ url: server.url() });
  try {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    assert.equal(await connection.command(["SET", all, all]), "OK");
    assert.deepEqual(await connection.command(["GET", all]), all);
    assert.equal(await connection.command(["STRLEN", all]), 256);

    const large = new Uint8Array(3 * 1024 * 1024);
    for (let i = 0; i < large.length; i += 65536) crypto.getRandomValues(large.subarray(i, i + 65536));
    const [set, got] = await Promise.all([
      connection.command(["SET", "big", large]),
      connection.command(["GET", "big"]),
    ]);
    assert.equal(set, "OK");
    assert.deepEqual(got, large);
    assert.equal(await connection.command(["GET", "missing"]), null);
  } finally {
    await connection.close();
  }
});

redisTest("RedisConnection rejects an error reply with RedisReplyError and carries on", async (server) => {
  const connection = await RedisConnection.connect({ url: server.url() });
  try {
    await connection.command(["SET", "s", "text"]);
    const results = await Promise.allSettled([
      connection.command(["INCR", "s"]),
      connection.command(["LPUSH", "s", "x"]),
      connection.command(["NOSUCHCOMMAND", "secret-argument"]),
      connection.command(["GET", "s"]),
    ]);
    const [incr, push, unknown, get] = results;
    assert.ok(incr.status === "rejected" && incr.reason instanceof RedisReplyError);
    assert.equal(incr.reason.code, "ERR");
    assert.equal(incr.reason.command, "INCR");
    assert.ok(push.status === "rejected" && push.reason.code === "WRONGTYPE");
    assert.match(push.reason.message, /^Redis refused LPUSH: WRONGTYPE/);
    assert.ok(unknown.status === "rejected" && unknown.reason instanceof RedisReplyError);
    assert.deepEqual(get, { status: "fulfilled", value: bytes("text") });
  } finally {
    await connection.close();
  }
});

redisTest("RedisConnection selects the URL's database", async (server) => {
  const three = await RedisConnection.connect({ url: server.url({ db: 3 }), clientName: "hubbub-test" });
  const zero = await RedisConnection.connect({ url: server.url() });
  try {
    await three.command(["SET", "where", "three"]);
    assert.deepEqual(await three.command(["GET", "where"]), bytes("three"));
    assert.equal(await zero.command(["GET", "where"]), null);
    const client = respText(await three.command(["CLIENT", "INFO"]));
    assert.match(client, / db=3 /);
    assert.match(client, / name=hubbub-test /);
  } finally {
    await Promise.all([three.close(), zero.close()]);
  }
});

redisTest("RedisConnection refuses commands beyond maxQueuedBytes and keeps the rest", async (server) => {
  const connection = await RedisConnection.connect({ url: server.url(), maxQueuedBytes: 4096 });
  try {
    const fits = connection.command(["SET", "a", "x".repeat(3000)]);
    const over = connection.command(["SET", "b", "x".repeat(3000)]);
    await assert.rejects(over, /SET not sent: Redis at 127\.0\.0\.1:\d+ is not keeping up.*maxQueuedBytes: 4096/);
    assert.equal(await fits, "OK");
    assert.equal(await connection.command(["EXISTS", "b"]), 0);
  } finally {
    await connection.close();
  }
});

redisTest("RedisConnection rejects every waiting command when the connection is lost or closed", async (server) => {
  const connection = await RedisConnection.connect({ url: server.url() });
  const blocked = connection.command(["BLPOP", "never", "0"]);
  assert.equal(await settledNow(blocked), false);
  await server.kill("SIGKILL");
  const error = await blocked.then(() => undefined, (e) => e);
  assert.ok(error instanceof RedisConnectionError, String(error));
  assert.equal(error.sent, true);
  assert.match(error.message, /^BLPOP got no reply: lost the connection to Redis at 127\.0\.0\.1:\d+/);
  assert.ok((await connection.closed) instanceof Error);
  const late = await connection.command(["PING"]).then(() => undefined, (e) => e);
  assert.ok(late instanceof RedisConnectionError && late.sent === false);
  await connection.close();

  await server.restart();
  const again = await RedisConnection.connect({ url: server.url() });
  const waiting = again.command(["BLPOP", "never", "0"]);
  assert.equal(await settledNow(waiting), false);
  const unsent = again.command(["PING"]);
  const closing = again.close();
  await assert.rejects(waiting, /BLPOP got no reply: the connection to Redis at 127\.0\.0\.1:\d+ was closed/);
  await assert.rejects(unsent, (error) => error instanceof RedisConnectionError && !error.sent);
  await closing;
  assert.equal(await again.closed, undefined);
});

// --- Connecting ---

redisTest("AUTH with requirepass: the right password works, a wrong one fails without showing it", async (server) => {
  const good = await RedisConnection.connect({ url: server.url({ password: "s3cret pass" }) });
  const withUser = await RedisConnection.connect({ url: server.url({ username: "default", password: "s3cret pass" }) });
  try {
    assert.equal(await good.command(["PING"]), "PONG");
    assert.equal(await withUser.command(["ACL", "WHOAMI"]).then(respText), "default");
    // An ACL user whose password needs percent-encoding in the URL.
    await good.command(["ACL", "SETUSER", "hub", "on", ">p@ss:w/rd", "~*", "+@all"]);
  } finally {
    await Promise.all([good.close(), withUser.close()]);
  }
  const hub = await RedisConnection.connect({ url: server.url({ username: "hub", password: "p@ss:w/rd" }) });
  assert.equal(await hub.command(["ACL", "WHOAMI"]).then(respText), "hub");
  await hub.close();

  for (
    const [url, pattern] of [
      [
        server.url({ password: "wrong-Pa55" }),
        /^Could not connect to Redis at 127\.0\.0\.1:\d+: Redis refused AUTH: WRONGPASS/,
      ],
      [server.url({ username: "hub", password: "wrong-Pa55" }), /Redis refused AUTH: WRONGPASS/],
      [server.url(), /^Could not connect to Redis at 127\.0\.0\.1:\d+: Redis refused PING: NOAUTH/],
    ] as const
  ) {
    const error = await RedisConnection.connect({ url }).then(() => undefined, (e) => e);
    assert.ok(error instanceof RedisConnectionError, String(error));
    assert.match(error.message, pattern);
    assert.ok(!error.message.includes("wrong-Pa55"), `the password leaked: ${error.message}`);
  }
}, { password: "s3cret pass" });

Deno.test({
  name: "RedisConnection.connect() names host:port only when the server is unreachable or silent",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    // A port nobody listens on: refused at once.
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closedPort = (closed.addr as Deno.NetAddr).port;
    closed.close();
    const refused = await RedisConnection.connect({ url: `redis://:hunter2@127.0.0.1:${closedPort}` })
      .then(() => undefined, (e) => e);
    assert.ok(refused instanceof RedisConnectionError);
    assert.match(refused.message, new RegExp(`^Could not connect to Redis at 127\\.0\\.0\\.1:${closedPort}: `));
    assert.ok(!refused.message.includes("hunter2"));

    // A listener that accepts and never answers: the PING gets no reply, and the timeout ends the attempt.
    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (silent.addr as Deno.NetAddr).port;
    const accepted: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of silent) accepted.push(conn);
    })();
    try {
      for (const scheme of ["redis", "rediss"]) {
        const error = await RedisConnection.connect({
          url: `${scheme}://:hunter2@127.0.0.1:${port}`,
          connectTimeoutMs: 200,
        })
          .then(() => undefined, (e) => e);
        assert.ok(error instanceof RedisConnectionError, String(error));
        assert.equal(error.message, `Could not connect to Redis at 127.0.0.1:${port}: no answer within 200 ms`);
      }
      // The caller's signal aborts an attempt the same way.
      const abort = new AbortController();
      const attempt = RedisConnection.connect({ url: `redis://127.0.0.1:${port}`, signal: abort.signal });
      setTimeout(() => abort.abort(), 20);
      await assert.rejects(
        attempt,
        new RegExp(`^RedisConnectionError: Could not connect to Redis at 127\\.0\\.0\\.1:${port}: aborted$`),
      );
    } finally {
      silent.close();
      await accepting;
      for (const conn of accepted) conn.close();
    }
  },
});

redisTest("rediss:// connects with a private CA and refuses an untrusted certificate", async (server) => {
  const url = server.url({ tls: true, db: 2 });
  const connection = await RedisConnection.connect({ url, caCerts: [server.certificate!.cert] });
  try {
    assert.equal(await connection.command(["SET", "k", "over tls"]), "OK");
    assert.deepEqual(await connection.command(["GET", "k"]), bytes("over tls"));
    assert.match(respText(await connection.command(["CLIENT", "INFO"])), / db=2 /);
  } finally {
    await connection.close();
  }
  const error = await RedisConnection.connect({ url }).then(() => undefined, (e) => e);
  assert.ok(error instanceof RedisConnectionError, String(error));
  assert.match(
    error.message,
    new RegExp(`^Could not connect to Redis at 127\\.0\\.0\\.1:${server.tlsPort}: .*certificate`, "i"),
  );
}, { tls: true });

// --- Reconnecting client ---

redisTest("RedisClient fails fast while down and reconnects after a restart on the same port", async (server) => {
  const states: RedisState[] = [];
  const client = new RedisClient({ url: server.url(), onState: (state) => states.push(state) });
  try {
    await client.whenReady();
    assert.equal(await client.command(["SET", "k", "v"]), "OK");
    await server.kill("SIGKILL");
    await waitFor(() => client.state !== "ready", "the client to notice the crash");
    const failed = client.command(["GET", "k"]);
    assert.equal(await settledNow(failed), true, "a command while down must fail at once");
    const error = await failed.then(() => undefined, (e) => e);
    assert.ok(error instanceof RedisConnectionError && error.sent === false, String(error));
    assert.match(error.message, /^GET not sent: Redis at 127\.0\.0\.1:\d+ is (down|connecting)$/);

    await server.restart();
    await client.whenReady();
    assert.equal(await client.command(["GET", "k"]), null); // nothing persisted: a new server
    assert.deepEqual(states.slice(0, 3), ["ready", "down", "connecting"]);
    assert.equal(states.at(-1), "ready");
  } finally {
    await client.close();
  }
  assert.equal(client.state, "down");
  await assert.rejects(client.command(["PING"]), /PING not sent: the client was closed/);
  await assert.rejects(client.whenReady(), /closed/);
});

redisTest("RedisClient backs off doubling from minBackoffMs up to maxBackoffMs, with jitter", async (server) => {
  const events: [RedisState, number][] = [];
  const client = new RedisClient({
    url: server.url(),
    minBackoffMs: 25,
    maxBackoffMs: 400,
    onState: (state) => events.push([state, performance.now()]),
  });
  try {
    await client.whenReady();
    await server.kill("SIGKILL");
    await waitFor(() => events.filter(([state]) => state === "connecting").length >= 9, "nine attempts");
  } finally {
    await client.close();
  }
  // Each wait runs from a "down" to the next "connecting"; nominal steps 25, 50, 100, 200, 400, 400, 400, 400 ms,
  // each shortened by up to half at random. Lower bounds are exact (timers never fire early); the rest are ratios,
  // with room for a loaded machine to delay any timer.
  const waits: number[] = [];
  for (let i = 1; i < events.length; i++) {
    if (events[i][0] === "connecting" && events[i - 1][0] === "down") waits.push(events[i][1] - events[i - 1][1]);
  }
  const steps = [25, 50, 100, 200, 400, 400, 400, 400];
  const shown = waits.map(Math.round).join(", ");
  assert.ok(waits.length >= steps.length, `waits: ${shown}`);
  steps.forEach((step, i) => assert.ok(waits[i] >= step / 2 - 1, `wait ${i} under ${step / 2} ms: ${shown}`));
  // Starts small: the first wait is at most 25 ms, the fifth at least 200.
  assert.ok(waits[4] / waits[0] > 2, `the waits did not grow: ${shown}`);
  // Capped: uncapped, the eighth wait would be at least 1600 ms, 4× the fifth at most.
  assert.ok(waits[7] / waits[4] < 4, `the waits were not capped: ${shown}`);
  assert.deepEqual(REDIS_CLIENT_DEFAULTS, { minBackoffMs: 100, maxBackoffMs: 2000, pingIntervalMs: 5000 });
});

redisTest("RedisClient notices a frozen server through its PING health check", async (server) => {
  const client = new RedisClient({ url: server.url(), pingIntervalMs: 100 });
  try {
    await client.whenReady();
    const before = client.writes;
    await new Promise((resolve) => setTimeout(resolve, 350));
    assert.ok(client.writes > before, "an idle client sends PINGs");
    assert.equal(client.state, "ready");
    server.pause();
    await waitFor(() => client.state !== "ready", "the health check to give up");
    server.resume();
    await client.whenReady();
    assert.equal(await client.command(["PING"]), "PONG");
  } finally {
    server.resume();
    await client.close();
  }
});

redisTest(
  "RedisClient.eval() runs EVALSHA, falls back to EVAL after SCRIPT FLUSH, reloads after a restart",
  async (server) => {
    const script = await RedisScript.create("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])");
    const client = new RedisClient({ url: server.url() });
    try {
      await client.whenReady();
      assert.equal(respText(await client.command(["SCRIPT", "LOAD", script.source])), script.sha);
      await client.command(["SCRIPT", "FLUSH"]);
      // Pipelined calls all get NOSCRIPT, then run through EVAL in their order.
      const results = await Promise.all([1, 2, 3].map((i) => client.eval(script, ["last", "count"], [i])));
      assert.deepEqual(results, [1, 2, 3]);
      assert.deepEqual(await client.command(["GET", "last"]), bytes("3"));
      assert.deepEqual(await client.command(["SCRIPT", "EXISTS", script.sha]), [1]);
      await assert.rejects(
        client.eval(script, ["last"], []),
        (error) => error instanceof RedisReplyError && /Redis refused EVALSHA/.test(error.message),
      );

      // Redis forgets scripts when it restarts; the client loads them again before it is ready.
      await server.kill("SIGKILL");
      await server.restart();
      await waitFor(() => client.state === "ready", "the reconnect");
      assert.deepEqual(await client.command(["SCRIPT", "EXISTS", script.sha]), [1]);
      assert.equal(await client.eval(script, ["last", "count"], ["x"]), 1);
      // The new server ran the script through EVALSHA only: no NOSCRIPT, no EVAL.
      const stats = respText(await client.command(["INFO", "commandstats"]));
      assert.match(stats, /^cmdstat_evalsha:calls=1,.*failed_calls=0/m);
      assert.doesNotMatch(stats, /^cmdstat_eval:/m);
    } finally {
      await client.close();
    }
  },
);

// --- Pub/sub ---

/** Collects messages and waits for them. */
class Inbox {
  readonly messages: [string, Uint8Array][] = [];
  readonly onMessage = (channel: string, payload: Uint8Array): void => {
    this.messages.push([channel, payload]);
  };
  next(count: number): Promise<void> {
    return waitFor(() => this.messages.length >= count, `${count} messages`);
  }
}

redisTest(
  "RedisSubscriber delivers messages of subscribed channels, binary-safe, until unsubscribed",
  async (server) => {
    const inbox = new Inbox();
    const subscriber = new RedisSubscriber({ url: server.url(), onMessage: inbox.onMessage });
    const client = new RedisClient({ url: server.url() });
    try {
      await Promise.all([subscriber.whenReady(), client.whenReady()]);
      await subscriber.subscribe("room:a");
      await subscriber.subscribe("room:a"); // repeated: harmless
      await subscriber.subscribe("room:é");
      assert.deepEqual(await client.command(["PUBSUB", "NUMSUB", "room:a", "room:é"]), [
        bytes("room:a"),
        1,
        bytes("room:é"),
        1,
      ]);
      const all = Uint8Array.from({ length: 256 }, (_, i) => i);
      assert.equal(await client.command(["PUBLISH", "room:a", all]), 1);
      assert.equal(await client.command(["PUBLISH", "room:é", "hé"]), 1);
      assert.equal(await client.command(["PUBLISH", "room:b", "not subscribed"]), 0);
      await inbox.next(2);
      assert.deepEqual(inbox.messages, [["room:a", all], ["room:é", bytes("hé")]]);

      await subscriber.unsubscribe("room:a");
      await subscriber.unsubscribe("room:a"); // repeated: harmless
      await subscriber.unsubscribe("never-subscribed");
      assert.equal(await client.command(["PUBLISH", "room:a", "gone"]), 0);
      assert.deepEqual([...subscriber.channels], ["room:é"]);
      // The subscribed connection still answers its health-check PINGs and takes more subscriptions.
      await subscriber.subscribe("room:c");
      await client.command(["PUBLISH", "room:c", "c"]);
      await inbox.next(3);
      assert.deepEqual(inbox.messages[2], ["room:c", bytes("c")]);
    } finally {
      await Promise.all([subscriber.close(), client.close()]);
    }
  },
);

redisTest("RedisSubscriber subscribes again after Redis is killed and restarted on the same port", async (server) => {
  const inbox = new Inbox();
  const states: RedisState[] = [];
  const subscriber = new RedisSubscriber({
    url: server.url(),
    onMessage: inbox.onMessage,
    onState: (state) => states.push(state),
  });
  const client = new RedisClient({ url: server.url() });
  try {
    await Promise.all([subscriber.whenReady(), client.whenReady()]);
    await Promise.all([subscriber.subscribe("a"), subscriber.subscribe("b")]);
    await client.command(["PUBLISH", "a", "before"]);
    await inbox.next(1);

    await server.kill("SIGKILL");
    await waitFor(() => subscriber.state !== "ready", "the subscriber to notice");
    // Wanted while down: fails now, subscribed with the next connection.
    await assert.rejects(subscriber.subscribe("c"), RedisConnectionError);
    await server.restart();
    await subscriber.whenReady();
    await client.whenReady();
    assert.deepEqual(states.slice(0, 2), ["ready", "down"]);
    assert.equal(states.at(-1), "ready");
    assert.deepEqual(await client.command(["PUBSUB", "NUMSUB", "a", "b", "c"]), [
      bytes("a"),
      1,
      bytes("b"),
      1,
      bytes("c"),
      1,
    ]);
    for (const channel of ["a", "b", "c"]) await client.command(["PUBLISH", channel, `after ${channel}`]);
    await inbox.next(4);
    assert.deepEqual(inbox.messages.slice(1).map(([channel, payload]) => [channel, respText(payload)]), [
      ["a", "after a"],
      ["b", "after b"],
      ["c", "after c"],
    ]);
  } finally {
    await Promise.all([subscriber.close(), client.close()]);
  }
});

redisTest("RedisSubscriber reconnects and subscribes again after CLIENT KILL", async (server) => {
  const inbox = new Inbox();
  const states: RedisState[] = [];
  const subscriber = new RedisSubscriber({
    url: server.url(),
    onMessage: inbox.onMessage,
    onState: (state) => states.push(state),
    clientName: "hubbub-sub",
  });
  const client = new RedisClient({ url: server.url() });
  try {
    await Promise.all([subscriber.whenReady(), client.whenReady()]);
    await subscriber.subscribe("room");
    assert.equal(await client.command(["CLIENT", "KILL", "TYPE", "pubsub"]), 1);
    await waitFor(() => states.includes("down"), "the subscriber to notice");
    await subscriber.whenReady();
    await client.command(["PUBLISH", "room", "again"]);
    await inbox.next(1);
    assert.equal(respText(inbox.messages[0][1]), "again");
    assert.deepEqual(states.slice(0, 3), ["ready", "down", "connecting"]);
    assert.match(respText(await client.command(["CLIENT", "LIST", "TYPE", "pubsub"])), /name=hubbub-sub .*sub=1/);
  } finally {
    await Promise.all([subscriber.close(), client.close()]);
  }
});

redisTest("RedisSubscriber over TLS with a password", async (server) => {
  const inbox = new Inbox();
  const caCerts = [server.certificate!.cert];
  const url = server.url({ tls: true, password: "pw" });
  const subscriber = new RedisSubscriber({ url, caCerts, onMessage: inbox.onMessage });
  const client = new RedisClient({ url, caCerts });
  try {
    await Promise.all([subscriber.whenReady(), client.whenReady()]);
    await subscriber.subscribe("secure");
    await client.command(["PUBLISH", "secure", "hello"]);
    await inbox.next(1);
    assert.deepEqual(inbox.messages, [["secure", bytes("hello")]]);
  } finally {
    await Promise.all([subscriber.close(), client.close()]);
  }
}, { tls: true, password: "pw" });

Deno.test("RedisClient refuses bad options at construction", () => {
  assert.throws(() => new RedisClient({ url: "http://x" }), /must start with redis:\/\//);
  assert.throws(
    () => new RedisClient({ minBackoffMs: 5000 }),
    /minBackoffMs must not exceed maxBackoffMs: 5000 > 2000/,
  );
  assert.throws(() => new RedisClient({ pingIntervalMs: -1 }), /pingIntervalMs must be a whole number: -1/);
  assert.throws(() => new RedisSubscriber({} as never), /needs an onMessage callback/);
  assert.throws(() => new RedisClient({ connectTimeoutMs: 0 }), /connectTimeoutMs must be a positive integer: 0/);
  assert.throws(() => new RedisClient({ clientName: "has space" }), /clientName must be 1 to 64/);
  assert.throws(() => new RedisClient({ parser: { maxDepth: 0 } }), /maxDepth must be a positive integer: 0/);
});
