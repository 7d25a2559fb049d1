import assert from "node:assert/strict";
import {
  closeAll,
  engineTest,
  eventually,
  health,
  openClients,
  rawRequest,
  startServer,
  upgradeHead,
} from "./_harness.ts";

/** Prometheus text format 0.0.4, line by line: HELP, TYPE, or a sample `name{labels} value`. */
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const HELP = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/;
const TYPE = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/;
const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})? (-?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|NaN|\+Inf|-Inf))(?: -?\d+)?$/;

/** Parses a whole exposition strictly; throws on any line that breaks the grammar. Returns samples by series. */
function parseExposition(text: string): { samples: Map<string, number>; types: Map<string, string> } {
  assert.ok(text.endsWith("\n"), "the exposition ends with a newline");
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const helped = new Set<string>();
  for (const [index, line] of text.slice(0, -1).split("\n").entries()) {
    const where = `line ${index + 1}: ${JSON.stringify(line)}`;
    let match: RegExpExecArray | null;
    if ((match = HELP.exec(line))) {
      assert.ok(!helped.has(match[1]), `duplicate HELP, ${where}`);
      helped.add(match[1]);
    } else if ((match = TYPE.exec(line))) {
      assert.ok(!types.has(match[1]), `duplicate TYPE, ${where}`);
      assert.ok(helped.has(match[1]), `TYPE before HELP, ${where}`);
      types.set(match[1], match[2]);
    } else if ((match = SAMPLE.exec(line))) {
      assert.ok(METRIC_NAME.test(match[1]));
      assert.ok(types.has(match[1]), `sample before its TYPE, ${where}`);
      const series = match[1] + (match[2] ?? "");
      assert.ok(!samples.has(series), `duplicate series, ${where}`);
      samples.set(series, Number(match[3]));
      if (types.get(match[1]) === "counter") assert.ok(Number(match[3]) >= 0, `negative counter, ${where}`);
    } else {
      assert.fail(`not valid Prometheus text format, ${where}`);
    }
  }
  return { samples, types };
}

async function scrape(url: string) {
  const response = await fetch(`${url}/metrics`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  return parseExposition(await response.text());
}

engineTest("/metrics is valid Prometheus text and its counters move with traffic", async (engine) => {
  const server = startServer(engine, { maxMessageBytes: 1000 });
  const before = await scrape(server.url);
  for (
    const name of [
      "hubbub_connections",
      "hubbub_rooms",
      "hubbub_messages_received_total",
      "hubbub_messages_delivered_total",
      "hubbub_bytes_in_total",
      "hubbub_bytes_out_total",
      "hubbub_process_resident_memory_bytes",
      "hubbub_process_heap_used_bytes",
    ]
  ) assert.ok(before.samples.has(name), name);
  assert.equal(before.types.get("hubbub_connections"), "gauge");
  assert.equal(before.types.get("hubbub_messages_received_total"), "counter");
  assert.ok(before.samples.get("hubbub_process_resident_memory_bytes")! > 0);

  const clients = await openClients(`${server.wsUrl}/rooms/m`, 3);
  clients[0].socket.send("héllo"); // 6 bytes in, 18 out
  await Promise.all(clients.map((client) => client.waitFor(1)));
  const during = await scrape(server.url);
  assert.equal(during.samples.get("hubbub_connections"), 3);
  assert.equal(during.samples.get("hubbub_rooms"), 1);
  assert.equal(during.samples.get("hubbub_messages_received_total"), 1);
  assert.equal(during.samples.get("hubbub_messages_delivered_total"), 3);
  assert.equal(during.samples.get("hubbub_bytes_in_total"), 6);
  assert.equal(during.samples.get("hubbub_bytes_out_total"), 18);
  assert.equal(during.samples.get("hubbub_upgrades_total"), 3);

  // A refusal, a drop and closes show up under their labels.
  await rawRequest(server.addr.port, upgradeHead("/nope"));
  clients[1].socket.send("x".repeat(2000));
  assert.equal((await clients[1].closed).code, 1009);
  await closeAll([clients[0], clients[2]]);
  await eventually("everyone gone", async () => (await health(server)).connections === 0);
  await eventually("closes counted", async () => {
    const after = await scrape(server.url);
    return (after.samples.get('hubbub_closes_total{code="1000"}') ?? 0) === 2;
  });
  const after = await scrape(server.url);
  assert.equal(after.samples.get('hubbub_handshakes_refused_total{reason="not_found"}'), 1);
  assert.equal(after.samples.get('hubbub_messages_dropped_total{reason="too_big"}'), 1);
  assert.equal(after.samples.get('hubbub_messages_dropped_total{reason="slow_consumer"}'), 0);
  assert.equal(after.samples.get("hubbub_connections"), 0);
  await server.shutdown();
});

Deno.test("the exposition parser rejects lines that break the grammar", () => {
  const good = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n";
  parseExposition(good);
  for (
    const bad of [
      "a_total 1\n", // sample without TYPE
      '# HELP a A.\n# TYPE a counter\na{b="c} 1\n', // broken label
      "# HELP a A.\n# TYPE a counter\na one\n", // not a number
      "# HELP a A.\n# TYPE a counter\na 1", // no final newline
      "# HELP a A.\n# TYPE a sometimes\na 1\n", // unknown type
    ]
  ) assert.throws(() => parseExposition(bad), bad);
});

engineTest("a connection dropped without a close frame is counted and logged as 1006 (never 0)", async (engine) => {
  const server = startServer(engine);
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await conn.write(new TextEncoder().encode(upgradeHead("/rooms/drop")));
    await eventually("the client to join", async () => (await health(server)).connections === 1);
    conn.close();
    await eventually("the drop to be counted", () => server.hub.stats.closes.size > 0);
    assert.deepEqual([...server.hub.stats.closes], [[1006, 1]]);
    const { samples } = parseExposition(await (await fetch(`${server.url}/metrics`)).text());
    assert.equal(samples.get('hubbub_closes_total{code="1006"}'), 1);
    assert.equal(samples.get('hubbub_closes_total{code="0"}'), undefined);
  } finally {
    await server.shutdown();
  }
});
