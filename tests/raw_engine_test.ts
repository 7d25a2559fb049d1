import assert from "node:assert/strict";
import {
  clientFrame,
  closeAll,
  engineTest,
  eventually,
  health,
  openClients,
  rawRequest,
  rawSocket,
  readServerFrames,
  ServerFrameReader,
  startServer,
  upgradeHead,
} from "./_harness.ts";

const RAW = ["raw"] as const;

/** Reads server frames from `conn` until EOF or `timeoutMs`; returns [opcode, payload] pairs. */
async function readFrames(conn: Deno.Conn, timeoutMs = 5000): Promise<[number, Uint8Array][]> {
  const { frames } = await readServerFrames(conn, { timeoutMs, untilClose: false });
  return frames.map((frame) => [frame.opcode, frame.payload]);
}

/** Every complete frame in `data`, as [opcode, payload] pairs. */
function parseFrames(data: Uint8Array): [number, Uint8Array][] {
  return new ServerFrameReader().push(data).map((frame) => [frame.opcode, frame.payload]);
}

const closeCode = (payload: Uint8Array) => (payload[0] << 8) | payload[1];

engineTest("a server-initiated close is sent once; the client's answer ends the connection", async (engine) => {
  const server = startServer(engine);
  const conn = await rawSocket(server.addr.port, "/rooms/close");
  await eventually("the peer to join", async () => (await health(server)).connections === 1);
  const stopping = server.shutdown();
  // Answer the close frame as a browser does, then read whatever else the server sends until it hangs up.
  const first = await readFramesUntilClose(conn);
  assert.equal(closeCode(first), 1001);
  await conn.write(clientFrame(0x8, new Uint8Array([0x03, 0xe9])));
  const after = await readFrames(conn, 3000);
  assert.deepEqual(after, [], "no second close frame, and the server ends the TCP connection");
  conn.close();
  await stopping;
}, { engines: RAW });

async function readFramesUntilClose(conn: Deno.Conn): Promise<Uint8Array> {
  const { frames } = await readServerFrames(conn);
  const close = frames.find((frame) => frame.opcode === 0x8);
  if (!close) throw new Error("EOF before a close frame");
  return close.payload;
}

engineTest("a frame sent in the same packet as the handshake is not lost", async (engine) => {
  const server = startServer(engine, { mode: "echo" });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  const head = new TextEncoder().encode(upgradeHead("/echo"));
  const frame = clientFrame(0x1, "early bird");
  const both = new Uint8Array(head.length + frame.length);
  both.set(head);
  both.set(frame, head.length);
  await conn.write(both);
  const buffer = new Uint8Array(4096);
  let text = "";
  while (!text.includes("early bird")) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  assert.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.ok(text.endsWith("early bird"));
  conn.close();
  await eventually("the peer to leave", async () => (await health(server)).connections === 0);
  await server.shutdown();
});

engineTest("partial writes: a reader that takes 7 bytes at a time still gets every byte in order", async (engine) => {
  const server = startServer(engine, { maxBufferedBytes: 64 * 1024 * 1024 });
  const [publisher] = await openClients(`${server.wsUrl}/rooms/trickle`, 1);
  const conn = await rawSocket(server.addr.port, "/rooms/trickle");
  await eventually("both to join", async () => (await health(server)).connections === 2);
  // 8 MiB total: far more than the socket buffers hold, so the server's writes come back short.
  const messages = 8;
  for (let i = 0; i < messages; i++) {
    const payload = new Uint8Array(1024 * 1024);
    for (let j = 0; j < payload.length; j++) payload[j] = (i * 31 + j) & 0xff;
    publisher.socket.send(payload);
  }
  await new Promise((resolve) => setTimeout(resolve, 300)); // let the server queue up against the slow reader
  const received = new Uint8Array(messages * (1024 * 1024 + 10));
  let filled = 0;
  const small = new Uint8Array(7);
  let reads = 0;
  while (parseFrames(received.subarray(0, filled)).length < messages) {
    // Tiny reads at first, then large ones so the test stays quick.
    const n = await conn.read(reads++ < 2000 ? small : received.subarray(filled, filled + 65536));
    if (n === null) break;
    if (reads <= 2000) received.set(small.subarray(0, n), filled);
    filled += n;
  }
  const frames = parseFrames(received.subarray(0, filled));
  assert.equal(frames.length, messages);
  frames.forEach(([opcode, payload], i) => {
    assert.equal(opcode, 0x2);
    assert.equal(payload.length, 1024 * 1024);
    for (let j = 0; j < payload.length; j += 4099) assert.equal(payload[j], (i * 31 + j) & 0xff);
  });
  conn.close();
  await closeAll([publisher]);
  await server.shutdown();
});

engineTest("a slow consumer over the cap is cut off at once, not left CLOSING", async (engine) => {
  // The raw engine counts framed-but-unwritten bytes, so the cap must exceed what one event-loop turn can queue for
  // a healthy reader: here bursts of 4 × 32 KiB against a 512 KiB cap.
  const cap = 512 * 1024;
  const server = startServer(engine, { maxBufferedBytes: cap });
  const [publisher, healthy] = await openClients(`${server.wsUrl}/rooms/slow`, 2);
  const stalled = await rawSocket(server.addr.port, "/rooms/slow");
  await eventually("three members", async () => (await health(server)).connections === 3);
  const chunk = "y".repeat(32 * 1024);
  const count = 200; // 6.4 MB through the room
  for (let i = 0; i < count; i++) {
    publisher.socket.send(`${i}:${chunk}`);
    if (i % 4 === 3) await healthy.waitFor(i + 1);
  }
  const got = await healthy.waitFor(count);
  assert.equal(got.length, count);
  got.forEach((message, i) => assert.ok((message as string).startsWith(`${i}:`)));
  assert.equal(server.hub.stats.dropped.slow_consumer, 1);
  assert.deepEqual(await health(server), { status: "ok", connections: 2, rooms: 1 });
  // The raw engine closed the TCP connection: reading drains what the kernel held, then hits EOF or a reset.
  const readStarted = Date.now();
  const frames = await readFrames(stalled, 5000);
  assert.ok(Date.now() - readStarted < 4000, "the server closed the connection (EOF), the read did not time out");
  const bytes = frames.reduce((sum, [, payload]) => sum + payload.length, 0);
  assert.ok(bytes <= cap + 2 * 33 * 1024 + 4 * 1024 * 1024, `received ${bytes} bytes`);
  stalled.close();
  await closeAll([publisher, healthy]);
  await server.shutdown();
}, { engines: RAW });

engineTest("maxMessageBytes is enforced on the frame header, before the payload arrives", async (engine) => {
  const server = startServer(engine, { maxMessageBytes: 1024 });
  const conn = await rawSocket(server.addr.port, "/rooms/big");
  // Only the header of a 2 MB masked binary frame: 0x82, 127, 8-byte length, 4-byte mask key.
  const header = new Uint8Array(14);
  header[0] = 0x82;
  header[1] = 0x80 | 127;
  new DataView(header.buffer).setBigUint64(2, 2_000_000n);
  await conn.write(header);
  const frames = await readFrames(conn, 3000);
  assert.equal(frames.length, 1);
  assert.equal(frames[0][0], 0x8);
  assert.equal(closeCode(frames[0][1]), 1009);
  assert.equal(server.hub.stats.dropped.too_big, 1);
  conn.close();
  await eventually("the peer to leave", async () => (await health(server)).connections === 0);
  await server.shutdown();
}, { engines: RAW });

engineTest("idle timeout: a silent peer gets a ping, and 1001 if it never answers", async (engine) => {
  const server = startServer(engine, { idleTimeout: 1 });
  const conn = await rawSocket(server.addr.port, "/rooms/idle");
  const [bystander] = await openClients(`${server.wsUrl}/rooms/idle`, 1);
  const started = Date.now();
  const frames = await readFrames(conn, 4000);
  const opcodes = frames.map(([opcode]) => opcode);
  assert.ok(opcodes.includes(0x9), `a ping was sent: ${opcodes}`);
  const close = frames.find(([opcode]) => opcode === 0x8);
  assert.ok(close, "a close frame followed");
  assert.equal(closeCode(close[1]), 1001);
  assert.ok(Date.now() - started < 4000);
  conn.close();
  await eventually("the silent peer to leave", async () => (await health(server)).connections <= 1);
  await closeAll([bystander]);
  await server.shutdown();
}, { engines: RAW });

engineTest(
  "plain HTTP on the raw port: Connection: close, HEAD without body, 431 on an oversized head",
  async (engine) => {
    const server = startServer(engine);
    const ok = await rawRequest(server.addr.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("connection"), "close");
    assert.deepEqual(JSON.parse(ok.body), { status: "ok", connections: 0, rooms: 0 });
    const head = await rawRequest(server.addr.port, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    const big = await rawRequest(server.addr.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    assert.equal(big.status, 431);
    const upgrade10 = await rawRequest(server.addr.port, upgradeHead("/", "", { version: "1.0" }));
    assert.equal(upgrade10.status, 400);
    assert.match(upgrade10.body, /HTTP\/1\.1/);
    await server.shutdown();
  },
  { engines: RAW },
);

/** Reads server frames from `conn` until `count` data frames arrived; returns them as [opcode, payload copies]. */
async function readDataFrames(conn: Deno.Conn, count: number, timeoutMs = 10_000): Promise<[number, Uint8Array][]> {
  const reader = new ServerFrameReader();
  const frames: [number, Uint8Array][] = [];
  const buffer = new Uint8Array(64 * 1024);
  const deadline = Date.now() + timeoutMs;
  while (frames.length < count && Date.now() < deadline) {
    const n = await conn.read(buffer);
    if (n === null) break;
    for (const frame of reader.push(buffer.subarray(0, n))) {
      if (frame.opcode === 0x1 || frame.opcode === 0x2) frames.push([frame.opcode, frame.payload.slice()]);
    }
  }
  return frames;
}

engineTest("a fan-out to more sockets than one turn writes reaches every one, every message once and in order", async (
  engine,
) => {
  // 300 members: the raw engine writes them in several slices per pass, across turns of the event loop.
  const members = 300;
  const messages = 40;
  const server = startServer(engine, { maxConnectionsPerIp: 1000 });
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < members; i += 50) {
    conns.push(...await Promise.all(Array.from({ length: 50 }, () => rawSocket(server.addr.port, "/rooms/wide"))));
  }
  const [publisher] = await openClients(`${server.wsUrl}/rooms/wide`, 1);
  await eventually("every member to join", async () => (await health(server)).connections === members + 1);
  for (let i = 0; i < messages; i++) {
    publisher.socket.send(`message ${i} ${"é".repeat(i % 5)}`);
    if (i % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const received = await Promise.all(conns.map((conn) => readDataFrames(conn, messages)));
  const decoder = new TextDecoder();
  for (const [member, frames] of received.entries()) {
    assert.deepEqual(
      frames.map(([, payload]) => decoder.decode(payload)),
      Array.from({ length: messages }, (_, i) => `message ${i} ${"é".repeat(i % 5)}`),
      `member ${member}`,
    );
  }
  for (const conn of conns) conn.close();
  await closeAll([publisher]);
  await server.shutdown();
}, { engines: RAW });

engineTest(
  "rooms whose messages interleave get theirs byte for byte, in order, at every frame size",
  async (engine) => {
    // Frames of several rooms interleave in the raw engine's frame log, so a member's frames are not adjacent there:
    // they are copied into its own buffer, or queued apart when large. Sizes cross every boundary: 7-bit, 16-bit and
    // 64-bit lengths, the copy limit (8 KiB), a frame of its own (over 16 KiB), and enough bytes to fill many segments.
    const server = startServer(engine, { maxBufferedBytes: 64 * 1024 * 1024 });
    const rooms = ["a", "b", "c"];
    const receivers = await Promise.all(rooms.map((room) => rawSocket(server.addr.port, `/rooms/${room}`)));
    const publishers = await Promise.all(rooms.map((room) => openClients(`${server.wsUrl}/rooms/${room}`, 1)));
    await eventually("everyone to join", async () => (await health(server)).connections === 6);
    const sizes = [0, 1, 125, 126, 200, 5000, 8191, 8193, 12_000, 16_500, 70_000];
    const expected = new Map<string, [number, Uint8Array][]>(rooms.map((room) => [room, []]));
    let sent = 0;
    for (let round = 0; round < 6; round++) {
      for (const size of sizes) {
        for (const [r, room] of rooms.entries()) {
          const seed = sent++;
          if ((seed + r) % 3 === 0) {
            const payload = new Uint8Array(size).map((_, j) => (seed * 7 + j * 13) & 0xff);
            publishers[r][0].socket.send(payload);
            expected.get(room)!.push([0x2, payload]);
          } else {
            // ASCII or not, so that text is framed from its received bytes at every length.
            const unit = (seed + r) % 3 === 1 ? "x" : "é";
            const text = `${seed}:` + unit.repeat(Math.max(0, Math.floor(size / unit.length) - 8));
            publishers[r][0].socket.send(text);
            expected.get(room)!.push([0x1, new TextEncoder().encode(text)]);
          }
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    for (const [r, room] of rooms.entries()) {
      const want = expected.get(room)!;
      const got = await readDataFrames(receivers[r], want.length, 20_000);
      assert.equal(got.length, want.length, `room ${room}`);
      got.forEach(([opcode, payload], i) => {
        assert.equal(opcode, want[i][0], `room ${room} message ${i}`);
        assert.deepEqual(payload, want[i][1], `room ${room} message ${i} (${want[i][1].length} bytes)`);
      });
    }
    for (const conn of receivers) conn.close();
    await closeAll(publishers.flat());
    await server.shutdown();
  },
);
