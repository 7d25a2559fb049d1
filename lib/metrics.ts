/**
 * The Prometheus text exposition (format 0.0.4) of a server's counters.
 *
 * @module
 */

import type { RoomLog } from "./broker/history.ts";
import type { Hub } from "./hub/hub.ts";
import { DROP_REASONS } from "./hub/stats.ts";

/** `Content-Type` of {@linkcode renderMetrics}' output. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

/**
 * Renders every counter as Prometheus text: `# HELP` and `# TYPE` lines, then samples.
 *
 * @example
 * ```ts
 * import { Hub } from "./hub/hub.ts";
 * import { renderMetrics } from "./metrics.ts";
 * import assert from "node:assert/strict";
 * const text = renderMetrics({ hub: new Hub(), memory: { rss: 1, heapUsed: 1, heapTotal: 1, external: 0 } });
 * assert.match(text, /^hubbub_connections 0$/m);
 * ```
 */
export function renderMetrics(
  options: {
    /** Where the counts come from: a hub, or the sum of a process's workers. */
    hub: Pick<Hub, "connections" | "roomCount" | "stats">;
    memory: { rss: number; heapUsed: number; heapTotal: number; external: number };
    /** This node's history, for its gauges (with a broker the history lives there: these read 0). */
    log?: Pick<RoomLog, "messages" | "bytes">;
  },
): string {
  const { hub, memory, log } = options;
  const stats = hub.stats;
  const out: string[] = [];
  const metric = (name: string, type: "counter" | "gauge", help: string, samples: [string, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) out.push(`${name}${labels} ${value}`);
  };
  const labelled = (key: string, entries: Iterable<[string | number, number]>): [string, number][] =>
    [...entries].map(([label, value]) => [`{${key}="${escapeLabel(String(label))}"}`, value]);

  metric("hubbub_connections", "gauge", "Open WebSocket connections in the hub.", [["", hub.connections]]);
  metric("hubbub_rooms", "gauge", "Rooms with at least one member.", [["", hub.roomCount]]);
  metric("hubbub_upgrades_total", "counter", "WebSocket handshakes accepted.", [["", stats.upgrades]]);
  metric(
    "hubbub_upgrades_aborted_total",
    "counter",
    "Accepted upgrades whose client left before the socket opened.",
    [["", stats.upgradesAborted]],
  );
  metric(
    "hubbub_accept_errors_total",
    "counter",
    "Connections the listener failed to accept, by reason; the server keeps accepting.",
    labelled("reason", stats.acceptErrors),
  );
  metric("hubbub_messages_received_total", "counter", "Messages received from clients.", [[
    "",
    stats.messagesReceived,
  ]]);
  metric("hubbub_messages_delivered_total", "counter", "Messages handed to clients' sockets.", [[
    "",
    stats.messagesDelivered,
  ]]);
  metric("hubbub_bytes_in_total", "counter", "Payload bytes received from clients.", [["", stats.bytesIn]]);
  metric("hubbub_bytes_out_total", "counter", "Payload bytes handed to clients' sockets.", [["", stats.bytesOut]]);
  metric(
    "hubbub_messages_dropped_total",
    "counter",
    "Messages dropped (and their senders or receivers closed), by reason.",
    labelled("reason", DROP_REASONS.map((reason) => [reason, stats.dropped[reason]])),
  );
  metric("hubbub_closes_total", "counter", "Connections closed, by close code.", labelled("code", stats.closes));
  metric(
    "hubbub_handshakes_refused_total",
    "counter",
    "Handshakes refused before the upgrade, by reason.",
    labelled("reason", stats.refused),
  );
  metric("hubbub_history_messages", "gauge", "Messages kept in this node's memory for replay and recovery.", [[
    "",
    log?.messages ?? 0,
  ]]);
  metric("hubbub_history_bytes", "gauge", "Bytes of messages kept in this node's memory for replay and recovery.", [[
    "",
    log?.bytes ?? 0,
  ]]);
  metric(
    "hubbub_recoveries_total",
    "counter",
    "Reconnections with ?since=, by whether every missed message was delivered.",
    [['{result="recovered"}', stats.recoveries.recovered], ['{result="lost"}', stats.recoveries.lost]],
  );
  metric("hubbub_process_resident_memory_bytes", "gauge", "Resident set size of the process.", [["", memory.rss]]);
  metric("hubbub_process_heap_used_bytes", "gauge", "V8 heap in use.", [["", memory.heapUsed]]);
  metric("hubbub_process_heap_total_bytes", "gauge", "V8 heap reserved.", [["", memory.heapTotal]]);
  metric("hubbub_process_external_memory_bytes", "gauge", "Memory held outside the V8 heap (buffers).", [[
    "",
    memory.external,
  ]]);
  return out.join("\n") + "\n";
}
