/**
 * Subprotocol negotiation: the parser and the choice, then over real handshakes on both engines with both spellings
 * of an offer (`a,b` trips Deno's own parser), Node's `ws` (what Postman's desktop client is built on), headless
 * Chromium (also offering a `bearer.<token>` credential, since a browser cannot set headers), and our own client.
 *
 * @module
 */

import assert from "node:assert/strict";
import { connectWebSocket } from "../lib/client/ws_client.ts";
import { createJwtVerifier, signJwt } from "../lib/auth/jwt.ts";
import type { ServerOptions } from "../lib/config.ts";
import type { HubbubServer } from "../lib/server.ts";
import { HUBBUB_PROTOCOL, negotiateSubprotocol, parseSubprotocolOffer } from "../lib/ws/subprotocol.ts";
import { Browser, chromiumPath } from "./_cdp.ts";
import { assertEmpty, ENGINES, engineTest, rawRequest, startServer, TestClient, upgradeHead } from "./_harness.ts";

// ---------------------------------------------------------------------------------------------------------------
// The parser and the choice

Deno.test("parseSubprotocolOffer() splits on commas with or without whitespace and skips empty elements", () => {
  for (const header of ["a,b", "a, b", "a ,b", " a\t,\tb ", "a,,b", ",a, ,b,"]) {
    assert.deepEqual(parseSubprotocolOffer(header), ["a", "b"], JSON.stringify(header));
  }
  assert.deepEqual(parseSubprotocolOffer(""), []);
  assert.deepEqual(parseSubprotocolOffer(null), []);
  assert.deepEqual(parseSubprotocolOffer("chat.v1"), ["chat.v1"]);
});

Deno.test("parseSubprotocolOffer() refuses an offer that is not a token, without echoing it", () => {
  for (const header of ["chat v1", "a;b", 'a,"b"', "a,b/c", "ü", "a,(b)"]) {
    const refusal = parseSubprotocolOffer(header);
    assert.ok(!Array.isArray(refusal), JSON.stringify(header));
    assert.equal(refusal.status, 400);
    assert.equal(refusal.label, "bad_subprotocol");
    assert.ok(!refusal.reason.includes(header), "the offer is not echoed");
  }
});

Deno.test("negotiateSubprotocol() picks the client's first offer when nothing is configured", () => {
  assert.equal(negotiateSubprotocol("chat,superchat", []), "chat");
  assert.equal(negotiateSubprotocol("superchat, chat", []), "superchat");
  assert.equal(negotiateSubprotocol(null, []), undefined);
  assert.equal(negotiateSubprotocol("", []), undefined);
});

Deno.test("negotiateSubprotocol() picks the first offer the server speaks, hubbub.v1 always among them", () => {
  assert.equal(negotiateSubprotocol("chat,superchat", ["superchat", "chat"]), "chat", "the client's order decides");
  assert.equal(negotiateSubprotocol("mqtt, superchat", ["superchat"]), "superchat");
  assert.equal(negotiateSubprotocol(`mqtt, ${HUBBUB_PROTOCOL}`, ["chat"]), HUBBUB_PROTOCOL);
  assert.equal(negotiateSubprotocol(null, ["chat"]), undefined, "no offer: connects without a subprotocol");
  assert.deepEqual(negotiateSubprotocol("mqtt,stomp", ["chat", "superchat"]), {
    status: 400,
    reason: "No supported subprotocol offered: this server speaks chat, superchat, hubbub.v1",
    label: "bad_subprotocol",
  });
});

Deno.test("negotiateSubprotocol() never selects a bearer.<token> offer", () => {
  assert.equal(negotiateSubprotocol("bearer.abc.def.ghi, chat", []), "chat");
  assert.equal(negotiateSubprotocol("chat, bearer.abc", ["chat"]), "chat");
  assert.equal(negotiateSubprotocol("bearer.abc", []), undefined);
  assert.equal(negotiateSubprotocol("bearer.abc", ["chat"]), undefined, "a credential alone is no offer");
  const refusal = negotiateSubprotocol("bearer.abc, mqtt", ["chat"]);
  assert.equal(typeof refusal === "object" && refusal.status, 400);
  assert.ok(typeof refusal === "object" && !refusal.reason.includes("abc"));
});

// ---------------------------------------------------------------------------------------------------------------
// Real handshakes

function offer(server: HubbubServer, path: string, protocols?: string) {
  const extra = protocols === undefined ? "" : `Sec-WebSocket-Protocol: ${protocols}\r\n`;
  return rawRequest(server.addr.port, upgradeHead(path, extra));
}

engineTest("handshake: a,b and a, b select the first offer when no subprotocol is configured", async (engine) => {
  const server = startServer(engine);
  try {
    for (const header of ["chat,superchat", "chat, superchat", "chat ,\tsuperchat"]) {
      const response = await offer(server, "/rooms/sub", header);
      assert.equal(response.status, 101, `${header}: ${response.body}`);
      assert.equal(response.headers.get("sec-websocket-protocol"), "chat", header);
    }
    const none = await offer(server, "/rooms/sub");
    assert.equal(none.status, 101);
    assert.equal(none.headers.get("sec-websocket-protocol"), undefined, "no offer, no header");
    const bad = await offer(server, "/rooms/sub", "chat v2");
    assert.equal(bad.status, 400);
    assert.match(bad.body, /^Invalid Sec-WebSocket-Protocol/);
    assert.equal(server.hub.stats.refused.get("bad_subprotocol"), 1);
  } finally {
    await assertEmpty(server);
    await server.shutdown();
  }
});

engineTest(
  "handshake: --subprotocol picks the first supported offer, or 400 listing what is spoken",
  async (engine) => {
    const server = startServer(engine, { subprotocols: ["superchat", "graphql-ws"] });
    try {
      for (const header of ["chat,superchat", "chat, superchat"]) {
        const response = await offer(server, "/echo", header);
        assert.equal(response.status, 101, `${header}: ${response.body}`);
        assert.equal(response.headers.get("sec-websocket-protocol"), "superchat", header);
      }
      const envelope = await offer(server, "/echo", `mqtt,${HUBBUB_PROTOCOL}`);
      assert.equal(envelope.headers.get("sec-websocket-protocol"), HUBBUB_PROTOCOL);
      const refused = await offer(server, "/echo", "chat,mqtt");
      assert.equal(refused.status, 400);
      assert.equal(
        refused.body,
        "No supported subprotocol offered: this server speaks superchat, graphql-ws, hubbub.v1\n",
      );
      assert.equal(refused.headers.get("sec-websocket-accept"), undefined);
      assert.equal((await offer(server, "/echo")).status, 101, "a client offering nothing still connects");
    } finally {
      await assertEmpty(server);
      await server.shutdown();
    }
  },
);

engineTest("our client's --subprotocol gets the server's choice", async (engine) => {
  const server = startServer(engine, { subprotocols: ["chat.v1"] });
  try {
    const socket = await connectWebSocket(`${server.wsUrl}/echo`, { protocols: ["chat.v2", "chat.v1"] });
    assert.equal(socket.protocol, "chat.v1");
    socket.close(1000, "");
    await socket.closed;
    await assert.rejects(
      connectWebSocket(`${server.wsUrl}/echo`, { protocols: ["chat.v2"] }),
      /HTTP 400: No supported subprotocol offered: this server speaks chat\.v1, hubbub\.v1/,
    );
  } finally {
    await assertEmpty(server);
    await server.shutdown();
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Node's ws, installed for the tests only into the git-ignored .bench/

const ROOT = new URL("..", import.meta.url).pathname;
const NODE_PREFIX = `${ROOT}.bench/node`;
const WS_MODULE = `${NODE_PREFIX}/node_modules/ws`;
const INSTALL_COMMAND = "npm install --prefix .bench/node ws@8";
let installed: Promise<string> | undefined;

/** The path of Node's `ws` module, installing it on first use; fails (never skips) with the command to run. */
function nodeWs(): Promise<string> {
  installed ??= (async () => {
    const present = await Deno.stat(`${WS_MODULE}/package.json`).then(() => true, () => false);
    if (present) return WS_MODULE;
    const output = await new Deno.Command("npm", {
      args: ["install", "--prefix", NODE_PREFIX, "--no-audit", "--no-fund", "ws@8"],
      stdout: "piped",
      stderr: "piped",
    }).output().catch((error) => ({ success: false, stderr: new TextEncoder().encode(String(error)) }));
    assert.ok(
      output.success,
      `Node's ws is not installed and npm could not install it: run \`${INSTALL_COMMAND}\` in the repository ` +
        `(.ci/run does). ${new TextDecoder().decode(output.stderr).slice(0, 500)}`,
    );
    return WS_MODULE;
  })();
  return installed;
}

const NODE_CLIENT = `
const WebSocket = require(process.argv[1]);
const ws = new WebSocket(process.argv[2], JSON.parse(process.argv[3]));
const out = {};
const done = () => { console.log(JSON.stringify(out)); process.exit(0); };
ws.on("open", () => { out.protocol = ws.protocol; ws.send("hello from node"); });
ws.on("message", (data) => { out.echo = data.toString(); ws.close(1000, "bye"); });
ws.on("error", (error) => { out.error = error.message; done(); });
ws.on("close", (code) => { out.code = code; done(); });
`;

async function runNodeWs(url: string, protocols: string[]): Promise<Record<string, unknown>> {
  const module = await nodeWs();
  const output = await new Deno.Command("node", {
    args: ["-e", NODE_CLIENT, module, url, JSON.stringify(protocols)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return JSON.parse(stdout);
}

engineTest('Node\'s ws offering ["chat","superchat"] (sent as chat,superchat) connects and talks', async (engine) => {
  const open = startServer(engine);
  const configured = startServer(engine, { subprotocols: ["superchat"] });
  const strict = startServer(engine, { subprotocols: ["mqtt"] });
  try {
    assert.deepEqual(await runNodeWs(`${open.wsUrl}/echo`, ["chat", "superchat"]), {
      protocol: "chat",
      echo: "hello from node",
      code: 1000,
    });
    assert.deepEqual(await runNodeWs(`${configured.wsUrl}/echo`, ["chat", "superchat"]), {
      protocol: "superchat",
      echo: "hello from node",
      code: 1000,
    });
    const refused = await runNodeWs(`${strict.wsUrl}/echo`, ["chat", "superchat"]);
    assert.equal(refused.error, "Unexpected server response: 400");
  } finally {
    for (const server of [open, configured, strict]) {
      await assertEmpty(server);
      await server.shutdown();
    }
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Chromium: a browser cannot set headers, so a token travels as a subprotocol offer

const SECRET = "a browser test secret of thirty-two bytes or more";

/** Opens a WebSocket in the page with `protocols`, sends one message, and reports the protocol and the echo. */
const OPEN_IN_PAGE = `(url, protocols) => new Promise((resolve) => {
  const socket = new WebSocket(url, protocols);
  socket.onopen = () => {
    const protocol = socket.protocol;
    socket.onmessage = (event) => { resolve({ protocol, echo: event.data }); socket.close(); };
    socket.send("hello from chromium");
  };
  socket.onclose = (event) => resolve({ closed: event.code });
})`;

for (const engine of ENGINES) {
  Deno.test({
    name: `[${engine}] Chromium: new WebSocket(url, ["chat"]) gets chat; a bearer.<token> offer authenticates`,
    sanitizeOps: true,
    sanitizeResources: true,
  }, async () => {
    const path = chromiumPath();
    assert.ok(path, "Chromium not found: run `apt-get install -y chromium` (or set CHROMIUM=/path). Never skipped.");
    const options: ServerOptions = { jwt: await createJwtVerifier({ secret: SECRET }) };
    const open = startServer(engine);
    const guarded = startServer(engine, options);
    const token = await signJwt({
      secret: SECRET,
      claims: {
        sub: "browser",
        exp: Math.floor(Date.now() / 1000) + 600,
        hubbub: { subscribe: ["lobby"], publish: ["lobby"] },
      },
    });
    let browser: Browser | undefined;
    try {
      browser = await Browser.launch({ path });
      const page = await browser.newPage(`${open.url}/`);
      const openIn = (url: string, protocols: string[]) =>
        page.evaluate(`(${OPEN_IN_PAGE})(${JSON.stringify(url)}, ${JSON.stringify(protocols)})`);
      assert.deepEqual(await openIn(`${open.wsUrl}/echo`, ["chat"]), { protocol: "chat", echo: "hello from chromium" });
      // The other protocol is selected, never the token; the room echoes to its only member.
      assert.deepEqual(
        await openIn(`${guarded.wsUrl}/rooms/lobby`, [`bearer.${token}`, "chat"]),
        { protocol: "chat", echo: "hello from chromium" },
      );
      // Without the token: 401, which a browser reports as 1006.
      assert.deepEqual(await openIn(`${guarded.wsUrl}/rooms/lobby`, ["chat"]), { closed: 1006 });
      // A token alone: the server answers with no subprotocol (it never echoes a credential), and Chromium, having
      // offered one, fails the connection. A browser must offer a real protocol next to its token.
      assert.deepEqual(await openIn(`${guarded.wsUrl}/rooms/lobby`, [`bearer.${token}`]), { closed: 1006 });
      assert.equal(guarded.hub.stats.upgrades, 2, "the token alone was accepted by the server");
      assert.equal(guarded.hub.stats.refused.get("unauthorized"), 1);
      await page.close();
    } finally {
      await browser?.close();
      for (const server of [open, guarded]) {
        await assertEmpty(server);
        await server.shutdown();
      }
    }
  });
}

engineTest("a Deno client offering a bearer.<token> next to its protocol is admitted by it", async (engine) => {
  const server = startServer(engine, { jwt: await createJwtVerifier({ secret: SECRET }) });
  try {
    const token = await signJwt({ secret: SECRET, claims: { sub: "deno" } });
    const client = new TestClient(`${server.wsUrl}/rooms/x`, ["chat", `bearer.${token}`]);
    await client.opened();
    assert.equal(client.socket.protocol, "chat");
    await client.close();
  } finally {
    await assertEmpty(server);
    await server.shutdown();
  }
});
