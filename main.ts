/**
 * Hubbub's command line: `hubbub [flags]` runs the server; `hubbub client <url>` runs the CLI client; `hubbub token`
 * prints a signed JWT.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  DEFAULTS,
  type Engine,
  ENGINES,
  type ResolvedOptions,
  resolveOptions,
  type ServerOptions,
} from "./lib/config.ts";
import { createLogger, LOG_FORMATS, LOG_LEVELS, type LogFormat, type Logger, type LogLevel } from "./lib/log.ts";
import { type Mode, MODES } from "./lib/route.ts";
import { serve } from "./lib/server.ts";
import { runClient } from "./lib/client/cli.ts";
import { runToken } from "./lib/auth/token_cli.ts";
import { createJwtVerifier } from "./lib/auth/jwt.ts";
import { BEARER_PROTOCOL_PREFIX, HUBBUB_PROTOCOL, SUBPROTOCOL_NAME } from "./lib/ws/subprotocol.ts";
import type { JwtSettings } from "./lib/worker.ts";
import { defaultWorkers, serveWorkers } from "./lib/workers.ts";
import denoJson from "./deno.json" with { type: "json" };

/** Hubbub's version, from deno.json. */
export const VERSION: string = denoJson.version;

/** The `--help` text. */
export const USAGE = `Hubbub ${VERSION}: a WebSocket hub (echo, broadcast chat room, named rooms).

Usage: hubbub [flags]            run the server
       hubbub client [flags] URL run the CLI client (hubbub client --help)
       hubbub token [flags]      print a signed JWT to try tokens with (hubbub token --help)

Flags:
  -p, --port N                  port to listen on; 0 picks one (default ${DEFAULTS.port}; env PORT)
      --hostname HOST           interface to listen on; 0.0.0.0 to expose (default ${DEFAULTS.hostname})
      --mode echo|broadcast     what / does (default ${DEFAULTS.mode})
      --engine deno|raw         WebSocket engine (default ${DEFAULTS.engine})
      --max-message-bytes N     largest message; larger closes with 1009 (default ${DEFAULTS.maxMessageBytes})
      --max-buffered-bytes N    bytes queued per client before it is closed with 1013 (default ${DEFAULTS.maxBufferedBytes})
      --rate-limit N            messages/s per connection, burst 2N; 0 = off; over it closes with 1008 (default 0)
      --max-connections N       open connections in total; beyond it 503 (default ${DEFAULTS.maxConnections})
      --max-connections-per-ip N  open connections per client IP; beyond it 429 (default ${DEFAULTS.maxConnectionsPerIp})
      --idle-timeout S          seconds of silence before a client is closed (pinged after half); 0 = off (default ${DEFAULTS.idleTimeout})
      --handshake-timeout S     seconds a connection has to send its request and open (default ${DEFAULTS.handshakeTimeout})
      --allowed-origin ORIGIN   allow this Origin (repeatable; * for any); others get 403
      --require-origin          refuse upgrades without an Origin header
      --token TOKEN             require Authorization: Bearer TOKEN or ?token=TOKEN (env HUBBUB_TOKEN)
      --admin-token TOKEN       the credential /dashboard asks for; needed for it with --token or JWTs, and accepted
                                by HTTP publish (env HUBBUB_ADMIN_TOKEN). Without any, /dashboard is localhost-only
      --jwt-secret SECRET       accept JWTs signed with this HMAC secret, HS256/384/512, 32+ bytes (env HUBBUB_JWT_SECRET)
      --jwt-key FILE            accept JWTs signed by these public keys: PEM or JWKS; RS*, PS*, ES*, EdDSA
      --jwt-issuer ISS          JWTs must have this iss
      --jwt-audience AUD        JWTs must have this aud
                                a JWT's hubbub claim limits its rooms; with --token too, either admits
      --subprotocol NAME        a subprotocol the server speaks (repeatable); offers of none get 400. Without it the
                                client's first offer is selected; ${HUBBUB_PROTOCOL} is always understood
      --cert FILE --key FILE    PEM certificate and key: serve wss:// and https://
      --redis URL               one hub across every server on this Redis: redis://[user:pass@]host[:port][/db],
                                rediss:// for TLS (env HUBBUB_REDIS_URL)
      --redis-ca FILE           PEM of a private CA to trust for rediss://
      --redis-prefix NAME       namespace of keys and channels, to share one Redis (default ${DEFAULTS.redisPrefix})
      --redis-buffer-bytes N    messages kept while Redis is down (default ${DEFAULTS.redisBufferBytes})
      --history N               keep each room's last N messages for ?replay= and ?since= recovery; 0 = off
                                (default ${DEFAULTS.historySize})
      --history-ttl S           seconds a message stays in the history (default ${DEFAULTS.historyTtl})
      --history-max-bytes B     bytes of history per room (default ${DEFAULTS.historyMaxBytes})
      --log-level LEVEL         debug|info|warn|error (default ${DEFAULTS.logLevel})
      --log-format FORMAT       text|json (default ${DEFAULTS.logFormat})
  -h, --help                    show this help
  -V, --version                 show the version
`;

/** The server's command line, parsed: its options, how many workers, and the JWT settings workers rebuild. */
interface ParsedArgs {
  readonly options: ServerOptions;
  readonly workers: number;
  readonly jwt?: JwtSettings;
}

/** A command-line mistake: printed with the usage, exit code 2. */
class UsageError extends Error {}

function integer(name: string, value: string | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) > max) {
    throw new UsageError(`--${name} must be a whole number from 0 to ${max}: ${value}`);
  }
  return Number(value);
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) throw new UsageError(`--${name} must be one of ${allowed.join(", ")}: ${value}`);
  return value as T;
}

/** Parses server flags into options; throws `UsageError` on a bad flag or value. */
async function parseServerArgs(args: string[]): Promise<ParsedArgs | "help" | "version"> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: "string", short: "p" },
        hostname: { type: "string" },
        mode: { type: "string" },
        engine: { type: "string" },
        "max-message-bytes": { type: "string" },
        "max-buffered-bytes": { type: "string" },
        "rate-limit": { type: "string" },
        "max-connections": { type: "string" },
        "max-connections-per-ip": { type: "string" },
        "idle-timeout": { type: "string" },
        "handshake-timeout": { type: "string" },
        "allowed-origin": { type: "string", multiple: true },
        "require-origin": { type: "boolean" },
        token: { type: "string" },
        workers: { type: "string" },
        "admin-token": { type: "string" },
        "jwt-secret": { type: "string" },
        "jwt-key": { type: "string" },
        "jwt-issuer": { type: "string" },
        "jwt-audience": { type: "string" },
        subprotocol: { type: "string", multiple: true },
        cert: { type: "string" },
        key: { type: "string" },
        redis: { type: "string" },
        "redis-ca": { type: "string" },
        "redis-prefix": { type: "string" },
        "redis-buffer-bytes": { type: "string" },
        history: { type: "string" },
        "history-ttl": { type: "string" },
        "history-max-bytes": { type: "string" },
        "log-level": { type: "string" },
        "log-format": { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return "help";
  if (values.version) return "version";
  const env = (name: string) =>
    Deno.permissions.querySync({ name: "env", variable: name }).state === "granted" ? Deno.env.get(name) : undefined;
  const portSource = values.port ?? env("PORT");
  const options: ServerOptions = {
    port: integer(
      values.port === undefined && portSource !== undefined ? "port (env PORT)" : "port",
      portSource,
      DEFAULTS.port,
      65535,
    ),
    hostname: values.hostname,
    mode: oneOf<Mode>("mode", values.mode, MODES),
    engine: oneOf<Engine>("engine", values.engine, ENGINES),
    maxMessageBytes: integer("max-message-bytes", values["max-message-bytes"], DEFAULTS.maxMessageBytes),
    maxBufferedBytes: integer("max-buffered-bytes", values["max-buffered-bytes"], DEFAULTS.maxBufferedBytes),
    rateLimit: integer("rate-limit", values["rate-limit"], DEFAULTS.rateLimit),
    maxConnections: integer("max-connections", values["max-connections"], DEFAULTS.maxConnections),
    maxConnectionsPerIp: integer(
      "max-connections-per-ip",
      values["max-connections-per-ip"],
      DEFAULTS.maxConnectionsPerIp,
    ),
    idleTimeout: integer("idle-timeout", values["idle-timeout"], DEFAULTS.idleTimeout, 86_400),
    handshakeTimeout: integer("handshake-timeout", values["handshake-timeout"], DEFAULTS.handshakeTimeout, 3600),
    allowedOrigins: values["allowed-origin"],
    requireOrigin: values["require-origin"],
    token: values.token ?? env("HUBBUB_TOKEN"),
    adminToken: values["admin-token"] ?? env("HUBBUB_ADMIN_TOKEN"),
    subprotocols: values.subprotocol,
    logLevel: oneOf<LogLevel>("log-level", values["log-level"], LOG_LEVELS),
    logFormat: oneOf<LogFormat>("log-format", values["log-format"], LOG_FORMATS),
    redis: values.redis ?? env("HUBBUB_REDIS_URL"),
    redisPrefix: values["redis-prefix"],
    redisBufferBytes: integer("redis-buffer-bytes", values["redis-buffer-bytes"], DEFAULTS.redisBufferBytes),
    historySize: integer("history", values.history, DEFAULTS.historySize, 1_000_000),
    historyTtl: integer("history-ttl", values["history-ttl"], DEFAULTS.historyTtl),
    historyMaxBytes: integer("history-max-bytes", values["history-max-bytes"], DEFAULTS.historyMaxBytes),
  };
  if (values["redis-ca"] !== undefined) {
    try {
      options.redisCa = await Deno.readTextFile(values["redis-ca"]);
    } catch (error) {
      throw new UsageError(`Cannot read --redis-ca: ${(error as Error).message}`);
    }
  }
  if ((values.cert === undefined) !== (values.key === undefined)) {
    throw new UsageError("--cert and --key go together: give both PEM files");
  }
  if (values.cert !== undefined && values.key !== undefined) {
    try {
      options.cert = await Deno.readTextFile(values.cert);
      options.key = await Deno.readTextFile(values.key);
    } catch (error) {
      throw new UsageError(`Cannot read the TLS certificate or key: ${(error as Error).message}`);
    }
  }
  for (const name of values.subprotocol ?? []) {
    if (!SUBPROTOCOL_NAME.test(name) || name.startsWith(BEARER_PROTOCOL_PREFIX)) {
      throw new UsageError(`--subprotocol must be a name like chat.v1 (not ${BEARER_PROTOCOL_PREFIX}*): ${name}`);
    }
  }
  const secret = values["jwt-secret"] ?? env("HUBBUB_JWT_SECRET");
  const keyFile = values["jwt-key"];
  let jwt: JwtSettings | undefined;
  if (secret !== undefined || keyFile !== undefined) {
    let keys;
    try {
      keys = keyFile === undefined ? undefined : await Deno.readTextFile(keyFile);
    } catch (error) {
      throw new UsageError(`Cannot read --jwt-key: ${(error as Error).message}`);
    }
    jwt = { secret, keys, issuer: values["jwt-issuer"], audience: values["jwt-audience"] };
    try {
      options.jwt = await createJwtVerifier(jwt);
    } catch (error) {
      throw new UsageError(`Cannot use the JWT key material: ${(error as Error).message}`);
    }
  } else if (values["jwt-issuer"] !== undefined || values["jwt-audience"] !== undefined) {
    throw new UsageError("--jwt-issuer and --jwt-audience need --jwt-secret or --jwt-key to verify tokens with");
  }
  const workers = values.workers === "auto" ? defaultWorkers() : integer("workers", values.workers ?? "1", 1, 256);
  if (workers < 1) throw new UsageError(`--workers must be auto or a whole number from 1 to 256: ${values.workers}`);
  return { options, workers, jwt };
}

/** Runs the CLI with `args`; resolves to the exit code once the server has stopped (or at once for errors). */
export async function main(args: string[] = Deno.args): Promise<number> {
  if (args[0] === "client") return await runClient(args.slice(1));
  if (args[0] === "token") return await runToken(args.slice(1));
  let parsed;
  try {
    parsed = await parseServerArgs(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`hubbub: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed === "help") {
    console.log(USAGE);
    return 0;
  }
  if (parsed === "version") {
    console.log(`hubbub ${VERSION} (deno ${Deno.version.deno})`);
    return 0;
  }
  if (parsed.workers > 1) return await runWorkers(parsed);
  let server;
  try {
    server = serve(parsed.options);
  } catch (error) {
    console.error(`hubbub: cannot start: ${startError(error, parsed.options.port)}`);
    return 1;
  }
  const { url, wsUrl, options } = server;
  try {
    await server.ready;
  } catch (error) {
    console.error(`hubbub: cannot start: ${(error as Error).message}`);
    await server.shutdown();
    return 1;
  }
  // Listen for signals before printing the URLs: whoever reads them may signal at once.
  onSignals(server.logger, options.shutdownTimeout, () => server.shutdown());
  console.log(banner({ url, wsUrl, options, broker: server.broker?.description }));
  await server.finished;
  return 0;
}

/** Why the server could not start, in one line. */
function startError(error: unknown, port: number | undefined): string {
  return error instanceof Deno.errors.AddrInUse
    ? `port ${port} is already in use: pick another with --port`
    : (error as Error).message;
}

/** Shuts down on SIGINT or SIGTERM, and exits 0 (at the latest a moment after the shutdown timeout). */
function onSignals(logger: Logger, shutdownTimeout: number, shutdown: () => Promise<void>): void {
  const stop = (signal: Deno.Signal) => {
    logger.log("info", "shutting down", { signal });
    // Belt and braces: exit even if a client that stopped reading holds the shutdown up.
    const timer = setTimeout(() => Deno.exit(0), shutdownTimeout + 900);
    Deno.unrefTimer(timer);
    shutdown().then(() => Deno.exit(0));
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => stop(signal));
}

/** `--workers N`: N workers on one port; the main thread sequences and waits for a signal. */
async function runWorkers(parsed: ParsedArgs): Promise<number> {
  const resolved = resolveOptions({ ...parsed.options, jwt: undefined });
  let workers;
  try {
    workers = await serveWorkers({ options: parsed.options, workers: parsed.workers, jwt: parsed.jwt });
  } catch (error) {
    console.error(`hubbub: cannot start: ${startError(error, resolved.port)}`);
    return 1;
  }
  const logger = createLogger({ level: resolved.logLevel, format: resolved.logFormat });
  const stopped = Promise.withResolvers<void>();
  onSignals(logger, resolved.shutdownTimeout, () => workers.shutdown().then(stopped.resolve));
  const tls = resolved.cert !== undefined;
  const host = resolved.hostname === "0.0.0.0" || resolved.hostname === "::" ? "localhost" : resolved.hostname;
  const url = `${tls ? "https" : "http"}://${host}:${workers.port}`;
  const wsUrl = `${tls ? "wss" : "ws"}://${host}:${workers.port}`;
  const broker = resolved.redis === undefined
    ? `${workers.workers} workers on one port, sequenced by the main thread`
    : `${workers.workers} workers, each a node of the Redis hub`;
  console.log(banner({ url, wsUrl, options: { ...resolved, jwt: parsed.options.jwt }, broker }));
  await stopped.promise;
  return 0;
}

/** The start-up lines: where to connect, and what is required. */
function banner(
  server: { url: string; wsUrl: string; options: ResolvedOptions; broker: string | undefined },
): string {
  const { url, wsUrl, options } = server;
  return [
    `Hubbub ${VERSION} listening on ${url} (engine ${options.engine}, mode ${options.mode})`,
    `  ${options.mode === "echo" ? "echo      " : "chat room "} ${wsUrl}/`,
    `  echo       ${wsUrl}/echo`,
    `  rooms      ${wsUrl}/rooms/<name>`,
    `  browser    ${url}/`,
    `  health     ${url}/healthz    metrics ${url}/metrics`,
    `  dashboard  ${url}/dashboard`,
    `  publish    curl -d 'hello' ${url}/rooms/<name>`,
    server.broker ? `  cluster    ${server.broker}` : "",
    options.token || options.jwt
      ? `  a ${options.jwt ? "JWT" : "token"}${
        options.token && options.jwt ? " or the shared token" : ""
      } is required ` +
        "to connect (Authorization: Bearer, ?token= or subprotocol bearer.<token>)"
      : "",
    options.subprotocols.length > 0 ? `  subprotocols ${[...options.subprotocols, HUBBUB_PROTOCOL].join(", ")}` : "",
    "Press Ctrl+C to stop.",
  ].filter((line) => line !== "").join("\n");
}

if (import.meta.main) Deno.exit(await main());
