/**
 * The reference server for `deno task bench`: a bare `Deno.serve` + `Deno.upgradeWebSocket` loop, as plain as
 * possible, with no hub, no limits and no checks. `/echo` sends every message back to its sender; `/` sends every
 * message to every open connection, the sender included. Hubbub is measured against this.
 *
 * Usage: `deno run --allow-net bench/bare.ts [--port N] [--hostname HOST]` (port 0, the default, picks a free one).
 * Prints `bare listening on http://HOST:PORT` once it accepts connections.
 *
 * @module
 */

function flag(name: string, fallback: string): string {
  const at = Deno.args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < Deno.args.length ? Deno.args[at + 1] : fallback;
}

const sockets = new Set<WebSocket>();

const server = Deno.serve({
  port: Number(flag("port", "0")),
  hostname: flag("hostname", "127.0.0.1"),
  onListen({ hostname, port }) {
    console.log(`bare listening on http://${hostname}:${port}`);
  },
}, (request) => {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") return new Response("bare bench server\n");
  const { socket, response } = Deno.upgradeWebSocket(request);
  if (new URL(request.url).pathname === "/echo") {
    socket.onmessage = (event) => socket.send(event.data);
  } else {
    socket.onopen = () => sockets.add(socket);
    socket.onclose = () => sockets.delete(socket);
    socket.onmessage = (event) => {
      for (const peer of sockets) peer.send(event.data);
    };
  }
  return response;
});

for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => Deno.exit(0));
await server.finished;
