/**
 * Several real Hubbub processes on one real Redis, for the scale-out tests.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Engine } from "../lib/config.ts";
import { RedisClient } from "../lib/broker/redis_client.ts";
import type { RespValue } from "../lib/broker/resp.ts";
import { eventually } from "./_harness.ts";
import { type ServerProcess, startMain } from "./_process.ts";

/** A Hubbub node started from the CLI with `--redis`. */
export interface Node {
  readonly engine: Engine;
  readonly process: ServerProcess;
  readonly port: number;
  readonly url: string;
  readonly wsUrl: string;
  /** Its id in the cluster, from its start-up banner. */
  readonly id: string;
}

/** Starts a node on `engine` against `redisUrl`, with `args`. */
export async function startNode(engine: Engine, redisUrl: string, args: string[] = []): Promise<Node> {
  const process = await startMain([
    "--engine",
    engine,
    "--redis",
    redisUrl,
    "--log-level",
    "warn",
    "--max-connections-per-ip",
    "5000",
    ...args,
  ]);
  // The banner is printed once the broker is connected; its "node <id>" is the node's id in Redis.
  const id = /node ([0-9a-f]{16})/.exec(process.banner)?.[1];
  assert.ok(id, `no node id in the banner: ${process.banner}`);
  const url = `http://127.0.0.1:${process.port}`;
  return { engine, process, port: process.port, url, wsUrl: `ws://127.0.0.1:${process.port}`, id };
}

/** Stops a node with SIGTERM and checks it exits 0; returns its stderr. */
export async function stopNode(node: Node): Promise<string> {
  try {
    node.process.child.kill("SIGTERM");
  } catch {
    // Already gone (a test killed it).
  }
  const { code, stderr } = await node.process.exited;
  assert.ok(code === 0 || code === 137 || code === 143 || code === 130, `node exited with ${code}: ${stderr}`);
  return stderr;
}

/** GETs `path` on `node` and returns status and JSON body. */
export async function getJson(node: Node, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${node.url}${path}`, { signal: AbortSignal.timeout(3000) });
  return { status: response.status, body: await response.json() };
}

/** Waits until `/stats?room=` on `node` reports `members` across the cluster. */
export async function waitForMembers(node: Node, room: string, members: number, timeoutMs = 5000): Promise<void> {
  await eventually(`${members} members of ${room} across the cluster`, async () => {
    const { body } = await getJson(node, `/stats?room=${room}`);
    return body.members === members;
  }, timeoutMs);
}

/** Runs `fn` with a Redis client of the test's own (closed afterwards). */
export async function withRedis<T>(url: string, fn: (client: RedisClient) => Promise<T>): Promise<T> {
  const client = new RedisClient({ url, pingIntervalMs: 0 });
  try {
    await client.whenReady();
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** The text of a RESP reply, for assertions. */
export function asText(value: RespValue): string | undefined {
  return value instanceof Uint8Array ? new TextDecoder().decode(value) : typeof value === "string" ? value : undefined;
}

/** Reads one Prometheus sample from `/metrics` on `node`. */
export async function metric(node: Node, series: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
  const line = text.split("\n").find((line) => line.startsWith(series + " "));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}
