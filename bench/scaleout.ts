/**
 * `deno task bench:scaleout`: what scaling out costs and brings, measured with `wsload` against real processes in one
 * run, rounds interleaved, medians. Scenarios (run `--help` for flags):
 *
 * - `redis`: broadcast to 1,000 subscribers (4 publishers × 4 in flight, 64 B) on one raw node without Redis, against
 *   two raw nodes on one Redis with the subscribers split 500/500 (publishers on node A; a second wsload holds node B's
 *   subscribers, passively). Deliveries/s, p50/p99, server CPU per delivery per node, Redis CPU.
 * - `redis100`: p99 at 100 subscribers on one raw node, without Redis and through Redis.
 * - `nobroker`: today's tree against `--baseline REV` (a git revision, checked out into .bench/) without Redis, both
 *   engines, broadcast to 100 and 1,000: the single-process path must keep its speed.
 * - `history`: broadcast to 100 and 1,000 on the raw engine with `--history 1000` against without.
 * - `envelope`: server CPU per delivery to `hubbub.v1` envelope clients against plain ones (Deno clients: wsload
 *   cannot offer a subprotocol; CPU per delivery compares servers even when the clients are the bottleneck).
 * - `storm`: 1,000 clients reconnect at once with `?since=`, each recovering 100 messages: time until all have them.
 * - `workers`: broadcast to 1,000 on `--workers 2` against `--workers 1` (raw) and Bun (when `.bench/peers` has it).
 *
 * @module
 */

import { parseArgs } from "node:util";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const BENCH = `${ROOT}/.bench`;
const WSLOAD_SOURCE = new URL("../../shared/tools/wsload/wsload.c", import.meta.url).pathname;
const BUN = `${BENCH}/peers/node_modules/.bin/bun`;
const BUN_SERVER = new URL("../../shared/tools/peers/bun_server.ts", import.meta.url).pathname;
const SCENARIOS = ["redis", "redis100", "nobroker", "history", "envelope", "storm", "workers"] as const;
type Scenario = typeof SCENARIOS[number];
const LIMITS = ["--max-connections", "100000", "--max-connections-per-ip", "100000", "--log-level", "error"];

const USAGE = `deno task bench:scaleout [flags]

Flags:
  --only LIST        scenarios, comma-separated: ${SCENARIOS.join(",")} (default all)
  --rounds N         interleaved rounds, medians shown (default 3)
  --duration S       measured seconds per run after 1 s of warm-up (default 5)
  --baseline REV     git revision for the nobroker scenario (default: the commit before the broker, 0fc0d22)
  -h, --help
`;

// ------------------------------------------------------------------------------------------------- processes

const children = new Set<Deno.ChildProcess>();

function spawn(command: string, args: string[], options: { cwd?: string } = {}): Deno.ChildProcess {
  const child = new Deno.Command(command, { args, cwd: options.cwd, stdout: "piped", stderr: "piped", stdin: "null" })
    .spawn();
  children.add(child);
  child.status.finally(() => children.delete(child));
  return child;
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch {
    // already gone
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, 3000);
  await child.status;
  clearTimeout(timer);
  await child.stdout.cancel().catch(() => {});
  await child.stderr.cancel().catch(() => {});
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function waitListening(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Hub {
  readonly child: Deno.ChildProcess;
  readonly port: number;
}

/** Starts `main.ts` of `tree` with `args` on a free port. */
async function startHub(args: string[], tree = ROOT): Promise<Hub> {
  const port = freePort();
  const child = spawn(
    Deno.execPath(),
    [
      "run",
      "--allow-all",
      "--unstable-net",
      `${tree}/main.ts`,
      "--hostname",
      "127.0.0.1",
      "--port",
      String(port),
      ...LIMITS,
      ...args,
    ],
    { cwd: tree },
  );
  await waitListening(port);
  return { child, port };
}

async function startRedis(): Promise<{ child: Deno.ChildProcess; port: number; dir: string }> {
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "hubbub-bench-redis-" });
  const child = spawn("redis-server", [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dir,
  ]);
  await waitListening(port);
  return { child, port, dir };
}

// ----------------------------------------------------------------------------------------------------- wsload

interface Load {
  rate: number;
  delivery_rate?: number;
  lat_us: { p50: number; p99: number };
  lost?: number;
  duplicates?: number;
  reordered?: number;
  server_cpu_pct?: number;
  client_cpu_pct?: number;
  duration_s: number;
}

async function wsloadPath(): Promise<string> {
  const path = Deno.env.get("WSLOAD") ?? `${BENCH}/wsload`;
  try {
    await Deno.stat(path);
  } catch {
    await Deno.mkdir(BENCH, { recursive: true });
    const gcc = await new Deno.Command("gcc", { args: ["-O2", "-o", path, WSLOAD_SOURCE] }).output();
    if (!gcc.success) throw new Error(`cannot build wsload: ${new TextDecoder().decode(gcc.stderr)}`);
  }
  return path;
}

async function wsload(args: string[], pid: number | undefined): Promise<Load> {
  const child = spawn(await wsloadPath(), [...args, "-Q", ...(pid ? ["--server-pid", String(pid)] : [])]);
  const [status, out] = await Promise.all([child.status, new Response(child.stdout).text()]);
  await child.stderr.cancel().catch(() => {});
  const line = out.trim().split("\n").reverse().find((text) => text.startsWith("{"));
  if (!line) throw new Error(`wsload ${args.join(" ")} printed no result (exit ${status.code})`);
  return JSON.parse(line);
}

function broadcastArgs(options: Options, subs: number, pubs: number, window: number, size: number, url: string) {
  return [
    "broadcast",
    "-n",
    String(subs),
    "-p",
    String(pubs),
    "-w",
    String(window),
    "-s",
    String(size),
    "-d",
    String(options.duration),
    "--warmup",
    "1",
    url,
  ];
}

// ---------------------------------------------------------------------------------------------------- report

interface Options {
  rounds: number;
  duration: number;
  baseline: string;
}

const results = new Map<string, number[]>();

function record(key: string, value: number): void {
  if (!Number.isFinite(value)) return;
  results.set(key, [...(results.get(key) ?? []), value]);
}

function median(key: string): number {
  const values = [...(results.get(key) ?? [])].sort((a, b) => a - b);
  if (values.length === 0) return NaN;
  const middle = values.length >> 1;
  return values.length % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

function fmt(value: number, unit = ""): string {
  if (!Number.isFinite(value)) return "n/a";
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M${unit}`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k${unit}`;
  return `${value.toFixed(value < 10 ? 2 : 1)}${unit}`;
}

// ------------------------------------------------------------------------------------------------- scenarios

async function redisScenario(options: Options): Promise<void> {
  const redis = await startRedis();
  try {
    for (let round = 0; round < options.rounds; round++) {
      // One node, no Redis.
      {
        const hub = await startHub(["--engine", "raw"]);
        const load = await wsload(broadcastArgs(options, 1000, 4, 4, 64, `ws://127.0.0.1:${hub.port}/`), hub.child.pid);
        record("redis.one.rate", load.delivery_rate!);
        record("redis.one.p50", load.lat_us.p50 / 1000);
        record("redis.one.p99", load.lat_us.p99 / 1000);
        record("redis.one.cpu_us", (load.server_cpu_pct! / 100) * 1e6 / load.delivery_rate!);
        record("redis.one.lost", (load.lost ?? 0) + (load.duplicates ?? 0) + (load.reordered ?? 0));
        await stop(hub.child);
      }
      // Two nodes on Redis, subscribers split.
      {
        const url = `redis://127.0.0.1:${redis.port}`;
        const a = await startHub(["--engine", "raw", "--redis", url, "--redis-prefix", `bench${round}`]);
        const b = await startHub(["--engine", "raw", "--redis", url, "--redis-prefix", `bench${round}`]);
        const redisBefore = cpuSeconds(redis.child.pid);
        const started = performance.now();
        const [onA, onB] = await Promise.all([
          wsload(broadcastArgs(options, 500, 4, 4, 64, `ws://127.0.0.1:${a.port}/`), a.child.pid),
          wsload(broadcastArgs(options, 500, 0, 4, 64, `ws://127.0.0.1:${b.port}/`), b.child.pid),
        ]);
        const seconds = (performance.now() - started) / 1000;
        record("redis.two.rate", onA.delivery_rate! + onB.delivery_rate!);
        record("redis.two.p50", Math.max(onA.lat_us.p50, onB.lat_us.p50) / 1000);
        record("redis.two.p99", Math.max(onA.lat_us.p99, onB.lat_us.p99) / 1000);
        record("redis.two.cpu_us_a", (onA.server_cpu_pct! / 100) * 1e6 / onA.delivery_rate!);
        record("redis.two.cpu_us_b", (onB.server_cpu_pct! / 100) * 1e6 / onB.delivery_rate!);
        record("redis.two.redis_cpu_pct", (cpuSeconds(redis.child.pid) - redisBefore) / seconds * 100);
        record("redis.two.lost", (onA.lost ?? 0) + (onA.duplicates ?? 0) + (onA.reordered ?? 0));
        await Promise.all([stop(a.child), stop(b.child)]);
      }
    }
  } finally {
    await stop(redis.child);
    await Deno.remove(redis.dir, { recursive: true });
  }
  console.log(`
### Broadcast to 1,000 subscribers: one node, and two nodes on one Redis (subscribers split 500/500)

| setup | deliveries/s | ratio | p50 | p99 | server CPU per delivery | Redis CPU | lost+dup+reordered |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| 1 raw node, no Redis | ${fmt(median("redis.one.rate"))} | 1.00 | ${fmt(median("redis.one.p50"), " ms")} | ${
    fmt(median("redis.one.p99"), " ms")
  } | ${fmt(median("redis.one.cpu_us"), " µs")} | – | ${median("redis.one.lost")} |
| 2 raw nodes + Redis | ${fmt(median("redis.two.rate"))} | **${
    (median("redis.two.rate") / median("redis.one.rate")).toFixed(2)
  }** | ${fmt(median("redis.two.p50"), " ms")} | ${fmt(median("redis.two.p99"), " ms")} | A ${
    fmt(median("redis.two.cpu_us_a"), " µs")
  }, B ${fmt(median("redis.two.cpu_us_b"), " µs")} | ${fmt(median("redis.two.redis_cpu_pct"), "%")} | ${
    median("redis.two.lost")
  } |
`);
}

async function redis100Scenario(options: Options): Promise<void> {
  const redis = await startRedis();
  try {
    for (let round = 0; round < options.rounds; round++) {
      for (const through of [false, true]) {
        const args = ["--engine", "raw", ...(through ? ["--redis", `redis://127.0.0.1:${redis.port}`] : [])];
        const hub = await startHub(args);
        const load = await wsload(broadcastArgs(options, 100, 1, 16, 32, `ws://127.0.0.1:${hub.port}/`), hub.child.pid);
        const key = through ? "r100.redis" : "r100.local";
        record(`${key}.rate`, load.delivery_rate!);
        record(`${key}.p50`, load.lat_us.p50 / 1000);
        record(`${key}.p99`, load.lat_us.p99 / 1000);
        await stop(hub.child);
      }
    }
  } finally {
    await stop(redis.child);
    await Deno.remove(redis.dir, { recursive: true });
  }
  console.log(`
### Broadcast to 100 subscribers on one raw node: without Redis and through Redis

| path | deliveries/s | p50 | p99 |
| --- | ---: | ---: | ---: |
| direct | ${fmt(median("r100.local.rate"))} | ${fmt(median("r100.local.p50"), " ms")} | ${
    fmt(median("r100.local.p99"), " ms")
  } |
| through Redis | ${fmt(median("r100.redis.rate"))} | ${fmt(median("r100.redis.p50"), " ms")} | ${
    fmt(median("r100.redis.p99"), " ms")
  } |
| p99 added by Redis | | | **${fmt(median("r100.redis.p99") - median("r100.local.p99"), " ms")}** |
`);
}

async function baselineTree(rev: string): Promise<string> {
  const dir = `${BENCH}/baseline-${rev}`;
  try {
    await Deno.stat(`${dir}/main.ts`);
    return dir;
  } catch {
    const add = await new Deno.Command("git", { args: ["worktree", "add", "--detach", dir, rev], cwd: ROOT }).output();
    if (!add.success) throw new Error(`cannot check out ${rev}: ${new TextDecoder().decode(add.stderr)}`);
    return dir;
  }
}

async function comparedScenario(
  options: Options,
  title: string,
  variants: { key: string; label: string; args: string[]; tree?: string; versus?: string }[],
  subscribers: number[],
): Promise<void> {
  for (let round = 0; round < options.rounds; round++) {
    for (const subs of subscribers) {
      // Rotate the order each round, so drifting noise hits every variant alike.
      const order = variants.map((_, i) => variants[(i + round) % variants.length]);
      for (const variant of order) {
        const hub = await startHub(variant.args, variant.tree);
        const [pubs, window, size] = subs >= 1000 ? [4, 4, 64] : [1, 16, 32];
        const load = await wsload(
          broadcastArgs(options, subs, pubs, window, size, `ws://127.0.0.1:${hub.port}/`),
          hub.child.pid,
        );
        record(`${variant.key}.${subs}`, load.delivery_rate!);
        record(`${variant.key}.${subs}.p99`, load.lat_us.p99 / 1000);
        await stop(hub.child);
      }
    }
  }
  console.log(`\n### ${title}\n\n| server | ${subscribers.map((n) => `to ${n} (deliveries/s) | ratio`).join(" | ")} |`);
  console.log(`| --- | ${subscribers.map(() => "---: | ---:").join(" | ")} |`);
  for (const variant of variants) {
    const cells = subscribers.map((n) =>
      `${fmt(median(`${variant.key}.${n}`))} | ${
        (median(`${variant.key}.${n}`) / median(`${variant.versus ?? variants[0].key}.${n}`)).toFixed(2)
      }`
    );
    console.log(`| ${variant.label} | ${cells.join(" | ")} |`);
  }
}

async function workersScenario(options: Options): Promise<void> {
  let bun = false;
  try {
    await Deno.stat(BUN);
    bun = true;
  } catch {
    // n/a
  }
  for (let round = 0; round < options.rounds; round++) {
    const variants = ["w1", "w2", ...(bun ? ["bun"] : [])];
    for (let i = 0; i < variants.length; i++) {
      const variant = variants[(i + round) % variants.length];
      let child: Deno.ChildProcess;
      let port: number;
      if (variant === "bun") {
        port = freePort();
        child = spawn(BUN, [BUN_SERVER, "broadcast", String(port)]);
        await waitListening(port);
      } else {
        ({ child, port } = await startHub(["--engine", "raw", "--workers", variant === "w2" ? "2" : "1"]));
      }
      const load = await wsload(broadcastArgs(options, 1000, 4, 4, 64, `ws://127.0.0.1:${port}/`), child.pid);
      record(`workers.${variant}`, load.delivery_rate!);
      record(`workers.${variant}.p99`, load.lat_us.p99 / 1000);
      record(`workers.${variant}.client_cpu`, load.client_cpu_pct ?? NaN);
      record(`workers.${variant}.server_cpu`, load.server_cpu_pct ?? NaN);
      record(`workers.${variant}.lost`, (load.lost ?? 0) + (load.duplicates ?? 0) + (load.reordered ?? 0));
      await stop(child);
    }
  }
  const row = (key: string, label: string) =>
    `| ${label} | ${fmt(median(`workers.${key}`))} | ${
      (median(`workers.${key}`) / median("workers.w1")).toFixed(2)
    } | ${fmt(median(`workers.${key}.p99`), " ms")} | ${fmt(median(`workers.${key}.server_cpu`), "%")} | ${
      fmt(median(`workers.${key}.client_cpu`), "%")
    } | ${median(`workers.${key}.lost`)} |`;
  console.log(`
### Broadcast to 1,000 subscribers (4 publishers × 4, 64 B): workers and Bun

| server | deliveries/s | ÷ 1 worker | p99 | server CPU | wsload CPU | lost+dup+reordered |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
${row("w1", "raw, 1 worker")}
${row("w2", "raw, --workers 2")}
${bun ? row("bun", "Bun 1.4.5 (uWebSockets)") : "| Bun | n/a (not installed in .bench/peers) | | | | | |"}
`);
}

/** Opens `count` WebSockets to `url` (with `protocols`), waits for all to open, counting what each receives. */
async function openMany(url: string, count: number, protocols?: string[]) {
  const sockets: WebSocket[] = [];
  const received = new Array<number>(count).fill(0);
  await Promise.all(Array.from({ length: count }, (_, i) =>
    new Promise<void>((resolve, reject) => {
      const socket = new WebSocket(url, protocols);
      sockets.push(socket);
      socket.onmessage = () => received[i]++;
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error(`cannot connect to ${url}`));
    })));
  const close = async () => {
    await Promise.all(sockets.map((socket) =>
      new Promise<void>((resolve) => {
        if (socket.readyState === WebSocket.CLOSED) return resolve();
        socket.onclose = () => resolve();
        socket.close();
      })
    ));
  };
  return { sockets, received, close };
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return true;
}

async function envelopeScenario(options: Options): Promise<void> {
  const subscribers = 200;
  const messages = 2000;
  for (let round = 0; round < options.rounds; round++) {
    for (const envelope of [false, true]) {
      const hub = await startHub(["--engine", "raw", "--history", "1000"]);
      const url = `ws://127.0.0.1:${hub.port}/rooms/env`;
      const clients = await openMany(url, subscribers, envelope ? ["hubbub.v1"] : undefined);
      const publisher = await openMany(url, 1);
      const before = cpuSeconds(hub.child.pid);
      const started = performance.now();
      for (let i = 0; i < messages; i++) {
        publisher.sockets[0].send(`message ${i} ${"x".repeat(40)}`);
        if (i % 100 === 99) await until(() => publisher.received[0] > i, 10_000);
      }
      await until(() => clients.received.every((n) => n >= messages), 60_000);
      const seconds = (performance.now() - started) / 1000;
      const cpu = cpuSeconds(hub.child.pid) - before;
      const key = envelope ? "env.on" : "env.off";
      record(`${key}.cpu_us`, cpu * 1e6 / (subscribers + 1) / messages);
      record(`${key}.rate`, (subscribers + 1) * messages / seconds);
      await clients.close();
      await publisher.close();
      await stop(hub.child);
    }
  }
  console.log(`
### Envelope clients: server CPU per delivery (raw engine, 200 subscribers, 2,000 messages of ~50 B, Deno clients)

| clients | server CPU per delivery | deliveries/s (client-bound) |
| --- | ---: | ---: |
| plain | ${fmt(median("env.off.cpu_us"), " µs")} | ${fmt(median("env.off.rate"))} |
| \`hubbub.v1\` envelope | ${fmt(median("env.on.cpu_us"), " µs")} | ${fmt(median("env.on.rate"))} |
| envelope ÷ plain | **${(median("env.on.cpu_us") / median("env.off.cpu_us")).toFixed(2)}×** | |
`);
}

async function stormScenario(options: Options): Promise<void> {
  const clients = 1000;
  for (let round = 0; round < options.rounds; round++) {
    const hub = await startHub(["--engine", "raw", "--history", "1000"]);
    const url = `ws://127.0.0.1:${hub.port}/rooms/storm`;
    const publisher = await openMany(url, 1, ["hubbub.v1"]);
    let epoch = "";
    publisher.sockets[0].onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "joined") epoch = frame.epoch;
      if (frame.type === "message") publisher.received[0]++;
    };
    await until(() => epoch !== "", 5000);
    for (let i = 0; i < 100; i++) publisher.sockets[0].send(`m${i}`);
    await until(() => publisher.received[0] >= 100, 10_000);
    const started = performance.now();
    const storm = await openMany(`${url}?since=0${epoch ? `&epoch=${epoch}` : ""}`, clients);
    const done = await until(() => storm.received.every((n) => n >= 100), 60_000);
    const elapsed = performance.now() - started;
    record("storm.ms", done ? elapsed : NaN);
    await storm.close();
    await publisher.close();
    await stop(hub.child);
  }
  console.log(`
### Reconnect storm: 1,000 clients recover 100 messages each at once (raw engine, one node)

| | time until every client has all 100 |
| --- | ---: |
| 1,000 × \`?since=0\` | ${fmt(median("storm.ms"), " ms")} |
`);
}

// ------------------------------------------------------------------------------------------------------ main

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      only: { type: "string" },
      rounds: { type: "string" },
      duration: { type: "string" },
      baseline: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const only = (values.only?.split(",") ?? [...SCENARIOS]) as Scenario[];
  const options: Options = {
    rounds: Number(values.rounds ?? 3),
    duration: Number(values.duration ?? 5),
    baseline: values.baseline ?? "0fc0d22",
  };
  const cleanUp = () => {
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
    }
  };
  Deno.addSignalListener("SIGINT", () => {
    cleanUp();
    Deno.exit(130);
  });
  console.log(
    `# bench:scaleout, ${
      new Date().toISOString()
    }, deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, ${options.rounds} rounds × ${options.duration} s, medians`,
  );
  try {
    if (only.includes("redis")) await redisScenario(options);
    if (only.includes("redis100")) await redis100Scenario(options);
    if (only.includes("nobroker")) {
      const tree = await baselineTree(options.baseline);
      await comparedScenario(options, `Without Redis: today's tree against ${options.baseline} (before the broker)`, [
        { key: "base.raw", label: `raw @ ${options.baseline}`, args: ["--engine", "raw"], tree },
        { key: "head.raw", label: "raw @ today", args: ["--engine", "raw"], versus: "base.raw" },
        {
          key: "base.deno",
          label: `deno @ ${options.baseline}`,
          args: ["--engine", "deno"],
          tree,
          versus: "base.deno",
        },
        { key: "head.deno", label: "deno @ today", args: ["--engine", "deno"], versus: "base.deno" },
      ], [100, 1000]);
    }
    if (only.includes("history")) {
      await comparedScenario(options, "History: raw engine with --history 1000 against without", [
        { key: "hist.off", label: "raw, no history", args: ["--engine", "raw"] },
        { key: "hist.on", label: "raw, --history 1000", args: ["--engine", "raw", "--history", "1000"] },
      ], [100, 1000]);
    }
    if (only.includes("envelope")) await envelopeScenario(options);
    if (only.includes("storm")) await stormScenario(options);
    if (only.includes("workers")) await workersScenario(options);
  } finally {
    cleanUp();
  }
}
