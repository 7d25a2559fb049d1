import assert from "node:assert/strict";
import { createJwtVerifier, signJwt } from "../lib/auth/jwt.ts";
import { closeAll, engineTest, eventually, openClients, startServer, TestClient } from "./_harness.ts";

const SECRET = "a secret of at least thirty-two bytes!";

/** A token for `sub`, free to join any room. */
function tokenFor(sub: string): Promise<string> {
  return signJwt({ secret: SECRET, claims: { sub } });
}

/** The presence frames (join/leave) an envelope client received, as "type sub". */
function presenceFrames(client: TestClient): string[] {
  return client.received.map((m) => JSON.parse(m as string)).filter((f) => f.type === "join" || f.type === "leave")
    .map((f) => `${f.type} ${f.sub}`);
}

engineTest(
  "presence: two tabs of one user and an anonymous client; join and leave once per user, not per tab",
  async (engine) => {
    const server = startServer(engine, { jwt: await createJwtVerifier({ secret: SECRET }), token: "shared" });
    const url = `${server.wsUrl}/rooms/team`;
    const watcher = new TestClient(`${url}?token=${await tokenFor("watcher")}&presence=1`, ["hubbub.v1"]);
    await watcher.opened();
    // The watcher first, so that it sees every join after its own.
    await eventually("the watcher's own join", () => presenceFrames(watcher).includes("join watcher"));
    const plain = new TestClient(`${url}?token=${await tokenFor("plain")}`);
    try {
      await plain.opened();
      const alice = await tokenFor("alice");
      const tab1 = new TestClient(`${url}?token=${alice}`);
      await tab1.opened();
      const tab2 = new TestClient(`${url}?token=${alice}`);
      await tab2.opened();
      const [anonymous] = await openClients(`${url}?token=shared`, 1);
      const response = await fetch(`${server.url}/rooms/team/presence?token=shared`);
      assert.deepEqual(await response.json(), {
        room: "team",
        members: 5,
        users: [{ sub: "alice", connections: 2 }, { sub: "plain", connections: 1 }, { sub: "watcher", connections: 1 }],
      });
      await tab1.close();
      tab2.socket.send("still here");
      await eventually("the message", () => plain.received.includes("still here"));
      await tab2.close();
      await eventually("alice's leave", () => presenceFrames(watcher).includes("leave alice"));
      // One join and one leave for alice, whatever her tabs did; the plain client never gets presence frames.
      assert.deepEqual(presenceFrames(watcher), ["join watcher", "join plain", "join alice", "leave alice"]);
      assert.deepEqual(plain.received, ["still here"]);
      await closeAll([anonymous]);
    } finally {
      await closeAll([watcher, plain]);
      await server.shutdown();
    }
  },
);

engineTest("GET /rooms/<name>/presence is guarded like the room", async (engine) => {
  const server = startServer(engine, { token: "s3cret" });
  try {
    let response = await fetch(`${server.url}/rooms/x/presence`);
    assert.equal(response.status, 401);
    await response.body?.cancel();
    response = await fetch(`${server.url}/rooms/x/presence`, { headers: { authorization: "Bearer s3cret" } });
    assert.deepEqual(await response.json(), { room: "x", members: 0, users: [] });
  } finally {
    await server.shutdown();
  }
});
