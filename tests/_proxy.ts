/**
 * A TCP proxy in front of a test server whose connections a test can cut: what a client sees when the network
 * drops (no close frame, 1006) while the server stays up.
 *
 * @module
 */

/** Forwards every connection on its own port to `target`; {@linkcode TcpProxy.cut} drops them all. */
export class TcpProxy {
  readonly #listener: Deno.TcpListener;
  readonly #target: { hostname: string; port: number };
  readonly #pairs = new Set<Deno.Conn[]>();
  readonly #pumps = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;

  /** Listens on a free port of 127.0.0.1 and forwards to `target`. */
  constructor(target: { hostname?: string; port: number }) {
    this.#target = { hostname: target.hostname ?? "127.0.0.1", port: target.port };
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The port clients connect to. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** How many connections are being forwarded. */
  get connections(): number {
    return this.#pairs.size;
  }

  /** Closes every forwarded connection, both sides, and keeps listening; returns how many it cut. */
  cut(): number {
    const count = this.#pairs.size;
    for (const pair of this.#pairs) closeAll(pair);
    this.#pairs.clear();
    return count;
  }

  /** Stops listening, cuts every connection and waits until nothing of the proxy is left. */
  async close(): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    this.cut();
    await Promise.all(this.#pumps);
  }

  async #accept(): Promise<void> {
    for (;;) {
      let client: Deno.Conn;
      try {
        client = await this.#listener.accept();
      } catch {
        return; // closed
      }
      const forwarding = this.#forward(client);
      this.#pumps.add(forwarding);
      forwarding.finally(() => this.#pumps.delete(forwarding));
    }
  }

  async #forward(client: Deno.Conn): Promise<void> {
    let server: Deno.Conn;
    try {
      server = await Deno.connect(this.#target);
    } catch {
      // The server is down (a restart): the client sees its connection fail, as it would.
      closeAll([client]);
      return;
    }
    const pair = [client, server];
    this.#pairs.add(pair);
    await Promise.all([pump(client, server, pair), pump(server, client, pair)]);
    this.#pairs.delete(pair);
  }
}

/** Copies `from` to `to` until either ends; then both are closed. */
async function pump(from: Deno.Conn, to: Deno.Conn, pair: Deno.Conn[]): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await from.read(buffer);
      if (n === null) break;
      for (let offset = 0; offset < n;) offset += await to.write(buffer.subarray(offset, n));
    }
  } catch {
    // Cut, or reset by either side.
  }
  closeAll(pair);
}

function closeAll(conns: Deno.Conn[]): void {
  for (const conn of conns) {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}
