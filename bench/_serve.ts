/**
 * Fallback entry for `deno task bench` when `main.ts` does not load (e.g. a module it imports is missing from the
 * working tree): starts Hubbub through the same `serve()` call `main.ts` makes, with the flags the bench passes.
 * `bench.ts` says so loudly when it uses this; `main.ts` is always tried first.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { Engine } from "../lib/config.ts";
import type { LogLevel } from "../lib/log.ts";
import { serve } from "../lib/server.ts";

const { values } = parseArgs({
  args: Deno.args,
  strict: true,
  options: {
    port: { type: "string" },
    hostname: { type: "string" },
    engine: { type: "string" },
    "log-level": { type: "string" },
    "max-connections": { type: "string" },
    "max-connections-per-ip": { type: "string" },
    "max-buffered-bytes": { type: "string" },
  },
});

const number = (value: string | undefined) => value === undefined ? undefined : Number(value);
let server;
try {
  server = serve({
    port: number(values.port),
    hostname: values.hostname,
    engine: values.engine as Engine | undefined,
    logLevel: values["log-level"] as LogLevel | undefined,
    maxConnections: number(values["max-connections"]),
    maxConnectionsPerIp: number(values["max-connections-per-ip"]),
    maxBufferedBytes: number(values["max-buffered-bytes"]),
  });
} catch (error) {
  console.error(`hubbub: cannot start: ${(error as Error).message}`);
  Deno.exit(1);
}
console.log(`Hubbub (bench/_serve.ts) listening on ${server.url} (engine ${server.options.engine})`);
for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => Deno.exit(0));
await server.finished;
