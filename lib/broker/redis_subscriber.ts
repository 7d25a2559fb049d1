/**
 * Redis pub/sub on a connection of its own (a subscribed connection takes no other commands). It remembers the
 * channels it was asked for and subscribes them again on every new connection, before it reports "ready": a broker
 * that sees "down" then "ready" knows messages may have been missed in between, and fills the gap from its streams.
 *
 * @module
 */

import type { RespValue } from "./resp.ts";
import { RespPush } from "./resp.ts";
import { RedisClient, type RedisClientOptions, type RedisState } from "./redis_client.ts";
import type { RedisConnection } from "./redis_connection.ts";

/** Options for {@linkcode RedisSubscriber}: those of {@linkcode RedisClient}, plus where messages go. */
export interface RedisSubscriberOptions extends Omit<RedisClientOptions, "onPush"> {
  /**
   * Receives each message published to a subscribed channel, in the order Redis sent them; `payload` is a copy the
   * callback owns. Exceptions it throws are reported, not propagated. Messages can arrive while the subscriber is
   * still "connecting" (once a channel is subscribed again, before "ready").
   */
  onMessage: (channel: string, payload: Uint8Array) => void;
}

const MESSAGE = new TextEncoder().encode("message");
const decoder = new TextDecoder();

function isMessageKind(kind: RespValue): boolean {
  if (!(kind instanceof Uint8Array) || kind.length !== MESSAGE.length) return false;
  for (let i = 0; i < MESSAGE.length; i++) if (kind[i] !== MESSAGE[i]) return false;
  return true;
}

/**
 * Subscribes to Redis channels and hands their messages to `onMessage`. Reference counting is the caller's
 * business: {@linkcode subscribe} and {@linkcode unsubscribe} may be repeated harmlessly.
 */
export class RedisSubscriber {
  readonly #client: RedisClient;
  readonly #channels = new Set<string>();
  readonly #onMessage: (channel: string, payload: Uint8Array) => void;

  /** Starts connecting at once; throws on a bad URL or option. */
  constructor(options: RedisSubscriberOptions) {
    if (typeof options.onMessage !== "function") throw new TypeError("RedisSubscriber needs an onMessage callback");
    this.#onMessage = options.onMessage;
    const onConnect = options.onConnect;
    this.#client = new RedisClient({
      ...options,
      onPush: (value) => this.#push(value),
      onConnect: async (connection) => {
        await this.#resubscribe(connection);
        await onConnect?.(connection);
      },
    });
  }

  /** `host:port` of the server. */
  get address(): string {
    return this.#client.address;
  }

  /** The current state: "ready" means every wanted channel is subscribed. */
  get state(): RedisState {
    return this.#client.state;
  }

  /** The channels wanted, subscribed while ready. */
  get channels(): ReadonlySet<string> {
    return this.#channels;
  }

  /**
   * Wants `channel`; resolves once Redis confirms the subscription. When not ready it rejects at once with a
   * {@linkcode RedisConnectionError}, but the channel stays wanted and is subscribed before the next "ready".
   */
  async subscribe(channel: string): Promise<void> {
    if (typeof channel !== "string") throw new TypeError(`A channel must be a string: ${typeof channel}`);
    this.#channels.add(channel);
    await this.#client.command(["SUBSCRIBE", channel]);
  }

  /**
   * Stops wanting `channel` (messages for it are no longer delivered from now on); resolves once Redis confirms,
   * or at once when not ready or not subscribed.
   */
  async unsubscribe(channel: string): Promise<void> {
    if (!this.#channels.delete(channel) || this.#client.state !== "ready") return;
    await this.#client.command(["UNSUBSCRIBE", channel]).catch(() => {
      // Connection lost meanwhile: the next connection will not subscribe it.
    });
  }

  /** Resolves when ready (every wanted channel subscribed); rejects if closed first. */
  whenReady(): Promise<void> {
    return this.#client.whenReady();
  }

  /** Closes the connection and stops reconnecting; resolves once every socket and timer is gone. */
  close(): Promise<void> {
    return this.#client.close();
  }

  /** Claims pub/sub deliveries (`message`, channel, payload); everything else is a reply to a command. */
  #push(value: RespValue): boolean {
    const items = value instanceof RespPush ? value.items : value;
    if (!Array.isArray(items) || items.length !== 3 || !isMessageKind(items[0])) return false;
    const [, channel, payload] = items;
    if (!(channel instanceof Uint8Array) || !(payload instanceof Uint8Array)) return false;
    const name = decoder.decode(channel);
    if (this.#channels.has(name)) this.#onMessage(name, payload);
    return true;
  }

  /** Subscribes every wanted channel on a new connection, repeating until channels stop changing meanwhile. */
  async #resubscribe(connection: RedisConnection): Promise<void> {
    const subscribed = new Set<string>();
    for (;;) {
      const add = [...this.#channels].filter((channel) => !subscribed.has(channel));
      const remove = [...subscribed].filter((channel) => !this.#channels.has(channel));
      if (add.length === 0 && remove.length === 0) return;
      for (const channel of add) subscribed.add(channel);
      for (const channel of remove) subscribed.delete(channel);
      // One command per channel, so each gets exactly one reply; all of them leave in one write.
      await Promise.all([
        ...add.map((channel) => connection.command(["SUBSCRIBE", channel])),
        ...remove.map((channel) => connection.command(["UNSUBSCRIBE", channel])),
      ]);
    }
  }
}
