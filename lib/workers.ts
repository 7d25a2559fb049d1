/**
 * `--workers N`: one process, N Deno workers on the same port, one hub. The kernel spreads connections over the
 * workers (SO_REUSEPORT), and the main thread's {@linkcode WorkerSequencer} gives every room message one order and keeps
 * the history; with `--redis`, each worker is a node of the Redis hub instead, and Redis sequences.
 *
 * @module
 */

import { WorkerSequencer } from "./broker/workers.ts";
import type { ServerOptions } from "./config.ts";
import type { JwtSettings, WorkerStart } from "./worker.ts";

/** What {@linkcode serveWorkers} needs. */
export interface WorkersOptions {
  /** The server's options (every worker gets them; connection caps are split between workers). */
  readonly options: ServerOptions;
  /** How many workers. */
  readonly workers: number;
  /** The JWT settings, for each worker to build its own verifier. */
  readonly jwt?: JwtSettings;
}

/** A running set of workers. */
export interface WorkersServer {
  /** The port every worker serves. */
  readonly port: number;
  /** How many workers serve it. */
  readonly workers: number;
  /** Stops every worker (each closes its clients with 1001) and the sequencer; resolves within the shutdown timeout. */
  shutdown(): Promise<void>;
}

/** How often the sequencer's history drops expired messages of idle rooms. */
const HISTORY_SWEEP_MS = 5000;
/** Time a worker gets to start (load the code, bind, reach Redis). */
const START_TIMEOUT_MS = 15_000;

/** The number of workers for `auto`: the machine's cores. */
export function defaultWorkers(): number {
  return Math.max(1, navigator.hardwareConcurrency || 1);
}

/**
 * Starts the workers: the first binds the port (port 0 picks one), the others join it; rejects with the first worker's
 * error (the port is taken, Redis is unreachable…) after stopping whatever started.
 */
export async function serveWorkers(config: WorkersOptions): Promise<WorkersServer> {
  const { options, workers } = config;
  const sequencer = options.redis === undefined
    ? new WorkerSequencer({
      size: options.historySize,
      ttlSeconds: options.historyTtl,
      maxBytes: options.historyMaxBytes,
    })
    : undefined;
  const sweeper = sequencer !== undefined && (options.historySize ?? 0) > 0
    ? setInterval(() => sequencer.log.sweep(), HISTORY_SWEEP_MS)
    : undefined;
  // Each worker takes its share of the caps, so that the process as a whole keeps them.
  const share = (value: number | undefined) => value === undefined ? undefined : Math.ceil(value / workers);
  const perWorker: ServerOptions = {
    ...options,
    jwt: undefined,
    logger: undefined,
    maxConnections: share(options.maxConnections),
    maxConnectionsPerIp: share(options.maxConnectionsPerIp),
  };
  const started: Worker[] = [];
  const stop = async () => {
    clearInterval(sweeper);
    await Promise.all(started.map((worker) => stopWorker(worker, options.shutdownTimeout ?? 1500)));
    sequencer?.close();
  };
  let port = options.port ?? 0;
  try {
    for (let i = 0; i < workers; i++) {
      const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
      started.push(worker);
      let sequencerPort: MessagePort | undefined;
      if (sequencer !== undefined) {
        const channel = new MessageChannel();
        sequencer.add(channel.port1);
        sequencerPort = channel.port2;
      }
      const start: WorkerStart = { t: "start", options: perWorker, port, sequencer: sequencerPort, jwt: config.jwt };
      worker.postMessage(start, sequencerPort === undefined ? [] : [sequencerPort]);
      port = await listening(worker);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, workers, shutdown: stop };
}

/** Waits for a worker's `listening` (its port) or `failed` (its error). */
function listening(worker: Worker): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("a worker did not start in time")), START_TIMEOUT_MS);
    worker.onmessage = (event: MessageEvent<{ t: string; port?: number; error?: string }>) => {
      clearTimeout(timer);
      if (event.data.t === "listening") resolve(event.data.port!);
      else reject(new Error(event.data.error ?? "a worker failed to start"));
    };
    worker.onerror = (event) => {
      clearTimeout(timer);
      event.preventDefault();
      reject(new Error(`a worker crashed while starting: ${event.message}`));
    };
  });
}

/** Asks a worker to shut down (its clients get 1001) and waits for it, then terminates it whatever happened. */
async function stopWorker(worker: Worker, timeoutMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await new Promise<void>((resolve) => {
    worker.onmessage = (event: MessageEvent<{ t: string }>) => {
      if (event.data.t === "stopped") resolve();
    };
    worker.onerror = () => resolve();
    timer = setTimeout(resolve, timeoutMs + 500);
    try {
      worker.postMessage({ t: "shutdown" });
    } catch {
      resolve();
    }
  });
  clearTimeout(timer);
  worker.terminate();
}
