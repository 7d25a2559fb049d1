/**
 * A real `redis-server` for tests: started on a free port of 127.0.0.1 in a temporary directory, with nothing
 * persisted, optionally with a password and a TLS port (a throwaway certificate from `openssl`). It can be stopped,
 * killed with any signal and restarted on the same ports; {@linkcode RedisServer.stop} leaves no process or file.
 *
 * @module
 */

import { selfSignedCertificate, type TestCertificate } from "./_tls.ts";

/** Options for {@linkcode startRedis}. */
export interface RedisServerOptions {
  /** Sets `requirepass`: clients must AUTH with this password. */
  password?: string;
  /** Also listens with TLS on a second port, with a self-signed certificate for 127.0.0.1 and localhost. */
  tls?: boolean;
}

const STARTUP_TIMEOUT_MS = 10_000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A free TCP port on 127.0.0.1 (the kernel's pick; released before the server takes it). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** One PING over a raw socket; true if the server answered (PONG, or NOAUTH when it wants a password). */
async function answersPing(port: number): Promise<boolean> {
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(encoder.encode("PING\r\n"));
    const buffer = new Uint8Array(64);
    const n = await conn.read(buffer);
    const reply = n === null ? "" : decoder.decode(buffer.subarray(0, n));
    return reply.startsWith("+PONG") || reply.startsWith("-NOAUTH");
  } catch {
    return false;
  } finally {
    conn?.close();
  }
}

/** A running test `redis-server`. */
export class RedisServer {
  /** The plain TCP port. */
  readonly port: number;
  /** The TLS port, when started with `tls`. */
  readonly tlsPort: number | undefined;
  /** The certificate the TLS port presents (trust it as a CA), when started with `tls`. */
  readonly certificate: TestCertificate | undefined;
  readonly #dir: string;
  readonly #args: string[];
  #child: Deno.ChildProcess | undefined;

  private constructor(
    dir: string,
    port: number,
    tlsPort: number | undefined,
    certificate: TestCertificate | undefined,
    args: string[],
  ) {
    this.#dir = dir;
    this.port = port;
    this.tlsPort = tlsPort;
    this.certificate = certificate;
    this.#args = args;
  }

  /** `redis://127.0.0.1:port`, with the password and database given. */
  url(options: { password?: string; username?: string; db?: number; tls?: boolean } = {}): string {
    const auth = options.password === undefined
      ? ""
      : `${encodeURIComponent(options.username ?? "")}:${encodeURIComponent(options.password)}@`;
    const port = options.tls ? this.tlsPort : this.port;
    return `${options.tls ? "rediss" : "redis"}://${auth}127.0.0.1:${port}${options.db ? `/${options.db}` : ""}`;
  }

  /** Starts a server; resolves once it answers PING. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const dir = await Deno.makeTempDir({ prefix: "hubbub-redis-" });
    try {
      const port = freePort();
      const args = [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--logfile",
        `${dir}/redis.log`,
      ]; // deno-fmt-ignore
      if (options.password !== undefined) args.push("--requirepass", options.password);
      let tlsPort: number | undefined;
      let certificate: TestCertificate | undefined;
      if (options.tls) {
        certificate = await selfSignedCertificate();
        await Deno.writeTextFile(`${dir}/cert.pem`, certificate.cert);
        await Deno.writeTextFile(`${dir}/key.pem`, certificate.key);
        tlsPort = freePort();
        args.push(
          "--tls-port",
          String(tlsPort),
          "--tls-cert-file",
          `${dir}/cert.pem`,
          "--tls-key-file",
          `${dir}/key.pem`,
        );
        args.push("--tls-auth-clients", "no");
      }
      const server = new RedisServer(dir, port, tlsPort, certificate, args);
      await server.restart();
      return server;
    } catch (error) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw error;
    }
  }

  /** Starts the server process again on the same ports (after {@linkcode kill}); resolves once it answers PING. */
  async restart(): Promise<void> {
    if (this.#child !== undefined) throw new Error("redis-server is still running; kill() it first");
    const child = new Deno.Command("redis-server", { args: this.#args, stdin: "null", stdout: "null", stderr: "null" })
      .spawn();
    this.#child = child;
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (!(await answersPing(this.port))) {
      if (exited || Date.now() > deadline) {
        if (!exited) child.kill("SIGKILL");
        await status;
        this.#child = undefined;
        const log = await Deno.readTextFile(`${this.#dir}/redis.log`).catch(() => "(no log)");
        throw new Error(`redis-server did not start on port ${this.port}: ${log.slice(-2000)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Sends `signal` to the server and waits for it to exit (SIGKILL: a crash, no goodbye to clients). */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill(signal);
    } catch {
      // Already exited.
    }
    await child.status;
  }

  /** Freezes the server (SIGSTOP): connections stay open but nothing is answered, like a network partition. */
  pause(): void {
    this.#child?.kill("SIGSTOP");
  }

  /** Thaws a server frozen by {@linkcode pause} (SIGCONT). */
  resume(): void {
    this.#child?.kill("SIGCONT");
  }

  /** Stops the server and removes its directory. */
  async stop(): Promise<void> {
    this.resume();
    await this.kill("SIGTERM");
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  /** The server's log so far, for failure messages. */
  log(): Promise<string> {
    return Deno.readTextFile(`${this.#dir}/redis.log`).catch(() => "");
  }
}

/** Starts a test server (see {@linkcode RedisServer.start}). */
export function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  return RedisServer.start(options);
}
