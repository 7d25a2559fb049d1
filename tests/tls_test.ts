/**
 * TLS over real sockets, with a throwaway self-signed certificate made by `openssl` at test time: `https://` and
 * `wss://` work for a client that trusts it, fail the TLS handshake for one that does not, and the server keeps
 * serving after clients that speak plain HTTP to it or hang up mid-handshake.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CLOSE_CODE } from "../lib/ws/close_code.ts";
import type { HubbubServer } from "../lib/server.ts";
import {
  clientFrame,
  engineTest,
  eventually,
  rawRequest,
  readUntilClose,
  startServer,
  upgradeHead,
} from "./_harness.ts";
import { selfSignedCertificate, tlsUpgrade, writeCertificate } from "./_tls.ts";

const decoder = new TextDecoder();

/** `/healthz` over https with a client that trusts `cert`. */
async function trustedHealth(server: HubbubServer, cert: string): Promise<{ connections: number; rooms: number }> {
  const client = Deno.createHttpClient({ caCerts: [cert] });
  try {
    const response = await fetch(`${server.url}/healthz`, { client });
    return await response.json();
  } finally {
    client.close();
  }
}

async function assertEmpty(server: HubbubServer, cert: string): Promise<void> {
  await eventually("healthz to show 0 connections and 0 rooms", async () => {
    const state = await trustedHealth(server, cert);
    return state.connections === 0 && state.rooms === 0;
  });
}

/** Reads one unmasked server frame (small enough for a 7- or 16-bit length) and returns its opcode and text. */
async function readFrame(conn: Deno.Conn): Promise<{ opcode: number; text: string }> {
  let bytes = new Uint8Array(0);
  const buffer = new Uint8Array(65536);
  while (true) {
    if (bytes.length >= 2) {
      const short = bytes[1] & 0x7f;
      const header = short === 126 ? 4 : 2;
      const length = short === 126 ? (bytes[2] << 8) | bytes[3] : short;
      if (bytes.length >= header + length) {
        return { opcode: bytes[0] & 0x0f, text: decoder.decode(bytes.subarray(header, header + length)) };
      }
    }
    const n = await conn.read(buffer);
    if (n === null) throw new Error("Connection ended before a whole frame arrived");
    const joined = new Uint8Array(bytes.length + n);
    joined.set(bytes);
    joined.set(buffer.subarray(0, n), bytes.length);
    bytes = joined;
  }
}

engineTest(
  "TLS: https /healthz works for a client that trusts the certificate, fails for one that does not",
  async (engine) => {
    const { cert, key } = await selfSignedCertificate();
    const server = startServer(engine, { cert, key });
    try {
      assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      assert.match(server.wsUrl, /^wss:\/\/127\.0\.0\.1:\d+$/);
      assert.deepEqual(await trustedHealth(server, cert), { status: "ok", connections: 0, rooms: 0 });
      // The system roots do not know a self-signed certificate.
      await assert.rejects(fetch(`${server.url}/healthz`), TypeError);
      // Still serving after the refused handshake.
      assert.deepEqual(await trustedHealth(server, cert), { status: "ok", connections: 0, rooms: 0 });
    } finally {
      await server.shutdown();
    }
  },
);

engineTest(
  "TLS: wss:// rooms and limits work through a trusting client; an untrusting one fails the handshake",
  async (engine) => {
    const { cert, key } = await selfSignedCertificate();
    const server = startServer(engine, { cert, key, maxMessageBytes: 1024 });
    const conns: Deno.Conn[] = [];
    try {
      // By IP (the certificate's IP SAN) and by name (its DNS SAN).
      const alice = await tlsUpgrade(server.addr.port, "/rooms/tls", { caCerts: [cert] });
      conns.push(alice.conn);
      const bob = await tlsUpgrade(server.addr.port, "/rooms/tls", { caCerts: [cert], hostname: "localhost" });
      conns.push(bob.conn);
      assert.match(alice.head, /^HTTP\/1\.1 101 /);
      assert.match(bob.head, /^HTTP\/1\.1 101 /);
      await eventually("2 members", () => server.hub.members("tls") === 2);

      await alice.conn.write(clientFrame(0x1, "over TLS"));
      assert.deepEqual(await readFrame(bob.conn), { opcode: 0x1, text: "over TLS" });
      assert.deepEqual(await readFrame(alice.conn), { opcode: 0x1, text: "over TLS" });

      // Without the certificate in its roots, a client fails the TLS handshake itself: no HTTP ever happens.
      await assert.rejects(tlsUpgrade(server.addr.port, "/rooms/tls"), /UnknownIssuer|certificate/);

      // Limits hold over TLS: a message over maxMessageBytes closes the sender with 1009.
      await bob.conn.write(clientFrame(0x2, new Uint8Array(1025)));
      assert.equal(await readUntilClose(bob.conn), CLOSE_CODE.MessageTooBig);
      await alice.conn.write(clientFrame(0x1, "still here"));
      assert.deepEqual(await readFrame(alice.conn), { opcode: 0x1, text: "still here" });
      await alice.conn.write(clientFrame(0x8, new Uint8Array([0x03, 0xe8])));
      assert.equal(await readUntilClose(alice.conn), CLOSE_CODE.Normal);
    } finally {
      for (const conn of conns) conn.close();
    }
    await assertEmpty(server, cert);
    await server.shutdown();
  },
);

engineTest(
  "TLS: Deno's WebSocket client connects when told to trust the certificate (--cert), not otherwise",
  async (engine) => {
    const { cert, key } = await selfSignedCertificate();
    const files = await writeCertificate({ cert, key });
    const server = startServer(engine, { cert, key });
    // In-process, Deno's WebSocket only trusts the system roots (no caCerts option); a child process can be told
    // `--cert FILE` (or DENO_CERT=FILE).
    const script = `
    const socket = new WebSocket(Deno.args[0]);
    socket.onopen = () => socket.send("hello from a child");
    socket.onmessage = (event) => { console.log("received " + event.data); socket.close(1000); };
    socket.onerror = (event) => console.log("error " + event.message);
    socket.onclose = (event) => console.log("closed " + event.code);
  `;
    const run = async (extra: string[]) => {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["eval", ...extra, script, `${server.wsUrl}/rooms/child`],
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return decoder.decode(output.stdout).trim().split("\n");
    };
    const watcher = await tlsUpgrade(server.addr.port, "/rooms/child", { caCerts: [cert] });
    try {
      await eventually("the watcher in the room", () => server.hub.members("child") === 1);
      assert.deepEqual(await run(["--cert", files.certFile]), ["received hello from a child", "closed 1000"]);
      // A member of the room saw the child's message arrive over TLS too.
      assert.deepEqual(await readFrame(watcher.conn), { opcode: 0x1, text: "hello from a child" });

      const untrusted = await run([]);
      assert.match(untrusted[0], /^error .*invalid peer certificate: UnknownIssuer/);
      assert.equal(untrusted.at(-1), "closed 0", "Deno's WebSocket reports a failed handshake as close code 0");
    } finally {
      watcher.conn.close();
      await files.remove();
    }
    await assertEmpty(server, cert);
    await server.shutdown();
  },
);

engineTest("TLS: plain HTTP and a half-done TLS handshake on the TLS port leave the server serving", async (engine) => {
  const { cert, key } = await selfSignedCertificate();
  const server = startServer(engine, { cert, key });
  try {
    // Plain text where TLS is expected: no HTTP response comes back, the connection just ends.
    const plain = await rawRequest(server.addr.port, upgradeHead("/echo"), 2000);
    assert.equal(plain.status, 0, `no HTTP answer to plain text on a TLS port, got ${plain.status}`);
    // A TLS ClientHello's first bytes, then a hang-up.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await conn.write(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
    conn.close();

    const client = await tlsUpgrade(server.addr.port, "/echo", { caCerts: [cert] });
    try {
      assert.match(client.head, /^HTTP\/1\.1 101 /);
      await client.conn.write(clientFrame(0x1, "ok"));
      assert.deepEqual(await readFrame(client.conn), { opcode: 0x1, text: "ok" });
    } finally {
      client.conn.close();
    }
    await assertEmpty(server, cert);
  } finally {
    await server.shutdown();
  }
});
