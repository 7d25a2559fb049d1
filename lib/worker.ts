/**
 * The entry of one `--workers` worker: it parses the same command line as the main thread, serves the shared port
 * with SO_REUSEPORT, and talks to the main thread's sequencer (or to Redis, with `--redis`). Messages from the main
 * thread: `start` (the arguments, the port, and the sequencer's port) and `shutdown`; to it: `listening`, `failed`,
 * `stopped`.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { WorkerBroker } from "./broker/workers.ts";
import type { ServerOptions } from "./config.ts";
import { type HubbubServer, serve } from "./server.ts";

/** What the main thread sends a worker to start it. */
export interface WorkerStart {
  readonly t: "start";
  /** The server's options, as parsed from the command line (only what structured cloning carries). */
  readonly options: ServerOptions;
  /** The port to serve (0 for the first worker when the user asked for any). */
  readonly port: number;
  /** The sequencer's end of a channel, unless `--redis` makes Redis the broker. */
  readonly sequencer: MessagePort | undefined;
  /** JWT settings, re-created here (a verifier does not cross threads). */
  readonly jwt: JwtSettings | undefined;
}

/** How a worker builds its JWT verifier. */
export interface JwtSettings {
  readonly secret?: string;
  readonly keys?: string;
  readonly issuer?: string;
  readonly audience?: string;
}

/** How often a worker tells the sequencer its connection count and counters (for `/healthz` and `/metrics`). */
const REPORT_MS = 250;

let server: HubbubServer | undefined;
let reporter: ReturnType<typeof setInterval> | undefined;

self.onmessage = async (event: MessageEvent<WorkerStart | { t: "shutdown" }>) => {
  const message = event.data;
  if (message.t === "shutdown") {
    clearInterval(reporter);
    await server?.shutdown();
    self.postMessage({ t: "stopped" });
    self.close();
    return;
  }
  try {
    const broker = message.sequencer === undefined ? undefined : new WorkerBroker(message.sequencer);
    let jwt;
    if (message.jwt !== undefined) {
      const { createJwtVerifier } = await import("./auth/jwt.ts");
      jwt = await createJwtVerifier(message.jwt);
    }
    server = serve({ ...message.options, port: message.port, reusePort: true, broker, jwt });
    await server.ready;
    if (broker !== undefined) {
      const hub = server.hub;
      reporter = setInterval(() => broker.report(hub.connections, hub.stats), REPORT_MS);
    }
    self.postMessage({ t: "listening", port: server.addr.port });
  } catch (error) {
    self.postMessage({ t: "failed", error: (error as Error).message });
    await server?.shutdown();
    self.close();
  }
};
