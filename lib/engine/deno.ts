/**
 * The default engine: `Deno.upgradeWebSocket` sockets wrapped into {@linkcode Peer}s. The only file that calls
 * `Deno.upgradeWebSocket`, and the one that owns its quirks (see ENGINE_NOTES): `send` before open throws, `send`
 * after close is dropped, `close` can fire twice, a socket that never reads cannot be force-closed.
 *
 * @module
 */

import { CLOSE_CODE, MAX_CLOSE_REASON_BYTES } from "../ws/close_code.ts";
import type { Upgrade, UpgradeRequest } from "../handler.ts";
import type { Connection, Hub } from "../hub/hub.ts";
import type { Logger } from "../log.ts";
import { type Message, nextPeerId, type Peer } from "../hub/peer.ts";
import { truncateUtf8 } from "../ws/utf8.ts";

/** A `Deno.upgradeWebSocket` socket as a {@linkcode Peer}. */
export class DenoPeer implements Peer {
  /** Process-unique id. */
  readonly id: number = nextPeerId();
  readonly #socket: WebSocket;

  /** Wraps `socket`; sets `binaryType` so binary arrives as `ArrayBuffer`, never `Blob`. */
  constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.binaryType = "arraybuffer";
  }

  /** Bytes Deno has queued and not yet written; reads 0 once the socket is no longer open. */
  get bufferedAmount(): number {
    return this.#socket.bufferedAmount;
  }

  /** Sends `data` unchanged when open; dropped otherwise (the hub has already let go of a closing peer). */
  send(data: Message): void {
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(data);
  }

  /** Starts the closing handshake; the reason is cut to 123 UTF-8 bytes; a no-op once closing. */
  close(code: number, reason: string): void {
    const state = this.#socket.readyState;
    if (state === WebSocket.CLOSING || state === WebSocket.CLOSED) return;
    this.#socket.close(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
  }
}

/** What {@linkcode createDenoUpgrade} needs. */
export interface DenoUpgradeOptions {
  /** The hub each socket joins on open. */
  hub: Hub;
  /** Seconds of silence before Deno closes with 1001 (it pings after half of them); 0 is off. */
  idleTimeout: number;
  /**
   * Seconds an accepted upgrade has to open. Deno reports nothing for a client that resets right after its request:
   * the socket stays CONNECTING for ever, so without this its connection slot would never be freed.
   */
  handshakeTimeout: number;
  /** Where connects and disconnects are logged. */
  logger: Logger;
  /** Every open socket, so shutdown can close them and wait. */
  sockets: Set<WebSocket>;
}

/**
 * Returns the {@linkcode Upgrade} for the deno engine. The selected subprotocol is never passed to Deno as its
 * `protocol` option, which splits the offer only on `", "` and throws on `a,b`: the header is set on Deno's 101
 * response instead (its headers are mutable), and `socket.protocol` stays `""` on the server.
 */
export function createDenoUpgrade(options: DenoUpgradeOptions): Upgrade {
  const { hub, idleTimeout, logger, sockets } = options;
  const openWithinMs = options.handshakeTimeout * 1000;
  return ({ request, endpoint, release, ip, path, protocol, sub, opened }: UpgradeRequest) => {
    const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout });
    if (protocol !== undefined) response.headers.set("sec-websocket-protocol", protocol);
    const peer = new DenoPeer(socket);
    let connection: Connection | undefined;
    let closed = false;
    let abandoned = false;
    sockets.add(socket);
    // The slot is freed exactly once on every path: here if the socket never opens, else on close (release() is
    // idempotent, and an abandoned socket that opens late is closed at once without joining the hub).
    const openTimer = setTimeout(() => {
      abandoned = true;
      sockets.delete(socket);
      release();
      hub.stats.upgradesAborted++;
      logger.log("info", "upgrade abandoned: the socket never opened", { peer: peer.id, ip, path });
    }, openWithinMs);
    socket.onopen = () => {
      clearTimeout(openTimer);
      if (abandoned) {
        socket.close(CLOSE_CODE.TryAgainLater, "handshake timed out");
        return;
      }
      connection = hub.connect(peer, endpoint);
      opened?.(connection);
      logger.log("info", "client connected", { peer: peer.id, ip, path, sub, protocol });
    };
    socket.onmessage = (event: MessageEvent<Message>) => {
      connection?.receive(event.data);
    };
    socket.onclose = (event: CloseEvent) => {
      clearTimeout(openTimer);
      // Deno can report close twice (1001 then 1005 on idle timeout): the first one counts.
      if (closed || abandoned) return;
      closed = true;
      sockets.delete(socket);
      connection?.disconnect();
      release();
      // Deno reports a connection dropped without a close frame as 0; RFC 6455 §7.4.1 names that 1006.
      const code = event.code === 0 ? CLOSE_CODE.Abnormal : event.code;
      hub.stats.countClose(code);
      logger.log("info", "client disconnected", { peer: peer.id, code, reason: event.reason || undefined });
    };
    socket.onerror = (event) => {
      // A close event always follows an error on an open socket; this only records why.
      logger.log("debug", "socket error", { peer: peer.id, error: (event as ErrorEvent).message });
    };
    return response;
  };
}
