/**
 * The client page in a real headless Chromium, driven over CDP: two tabs join a room, chat, send binary, and
 * disconnect. Screenshots go to `out/screenshots/`; `docs/screenshot.png` is written when missing or when
 * `UPDATE_SCREENSHOT=1` (every run would otherwise dirty the tree: the page shows times and a random port).
 *
 * Needs Chromium; without it the test fails on purpose, so CI can never pass by silently skipping it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SILENT_LOGGER } from "../lib/log.ts";
import { serve } from "../lib/server.ts";
import { ENGINES } from "./_harness.ts";
import { Browser, chromiumPath, type Page } from "./_cdp.ts";

const ROOM = "browser-test";
const SCREENSHOTS = new URL("../out/screenshots/", import.meta.url).pathname;
const DOCS_SCREENSHOT = new URL("../docs/screenshot.png", import.meta.url).pathname;
/** The README screenshot must stay small enough to keep the repository light. */
const DOCS_SCREENSHOT_MAX_BYTES = 150_000;

/** What a log entry shows, as read from the DOM. */
interface Entry {
  dir: string;
  arrow: string;
  size: string;
  body: string;
  kind?: string;
  event?: string;
  code?: string;
  clean?: string;
}

/** Evaluates to the first `#log` entry matching `dir` and `predicate` (JS over `li` and `body`), as an Entry. */
function entryExpression(dir: string, predicate: string): string {
  return `(() => {
    const li = [...document.querySelectorAll('#log li[data-dir="${dir}"]')].find((li) => {
      const body = li.querySelector(".body").textContent;
      return ${predicate};
    });
    return li && {
      dir: li.dataset.dir, arrow: li.querySelector(".dir").textContent, size: li.querySelector(".size").textContent,
      body: li.querySelector(".body").textContent, kind: li.dataset.kind, event: li.dataset.event,
      code: li.dataset.code, clean: li.dataset.clean,
    };
  })()`;
}

/** Waits for a log entry in `dir` whose body is exactly `text`. */
function waitForEntry(page: Page, dir: "in" | "out", text: string): Promise<Entry> {
  return page.waitFor<Entry>(entryExpression(dir, `body === ${JSON.stringify(text)}`));
}

/** Waits for the page's member count to read `count`. */
function waitForMembers(page: Page, count: number): Promise<string> {
  return page.waitFor<string>(
    `document.querySelector("#members").textContent === "${count}" && document.querySelector("#members").textContent`,
  );
}

/** Focuses `selector` in the page. */
async function focus(page: Page, selector: string): Promise<void> {
  await page.evaluate(`document.querySelector(${JSON.stringify(selector)}).focus()`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

for (const engine of ENGINES) {
  Deno.test({
    name: `[${engine}] browser page: two Chromium tabs join a room, chat, send binary and disconnect`,
    sanitizeOps: true,
    sanitizeResources: true,
  }, async (t) => {
    const path = chromiumPath();
    assert.ok(
      path,
      "Chromium not found: run `apt-get install -y chromium` (or set CHROMIUM=/path/to/chromium). " +
        "This test drives a real browser and never skips.",
    );
    const server = serve({ port: 0, hostname: "127.0.0.1", engine, logger: SILENT_LOGGER });
    await server.ready;
    let browser: Browser | undefined;
    try {
      browser = await Browser.launch({ path });
      const wsBase = server.url.replace(/^http/, "ws");

      await t.step("the URL field holds the page's own ws: endpoint and keeps only ?token=", async () => {
        const page = await browser!.newPage(`${server.url}/rooms/${ROOM}?token=s3cret&theme=x`);
        assert.equal(
          await page.evaluate(`document.querySelector("#url").value`),
          `${wsBase}/rooms/${ROOM}?token=s3cret`,
        );
        assert.equal(await page.evaluate(`document.querySelector("#room").value`), ROOM);
        await page.goto(`${server.url}/echo`);
        assert.equal(await page.evaluate(`document.querySelector("#url").value`), `${wsBase}/echo`);
        assert.equal(await page.evaluate(`document.querySelector("#members").textContent`), "–", "/echo has no room");
        // An https: page must get wss:, which a plain-HTTP test server cannot show; call the page's own function.
        const secure = await page.evaluate(
          `hubbub.socketUrlFor({ protocol: "https:", host: "hub.example:8443", pathname: "/", search: "?a=1&token=t%20k" })`,
        );
        assert.equal(secure, "wss://hub.example:8443/?token=t+k");
        await page.close();
      });

      await t.step("invalid room names and invalid hex are refused with a clear message", async () => {
        const page = await browser!.newPage(`${server.url}/`);
        await page.evaluate(
          `document.querySelector("#room").value = "no spaces"; document.querySelector("#join").click()`,
        );
        const roomError = await page.evaluate<string>(`document.querySelector("#room-error").textContent`);
        assert.match(roomError, /^Room names are 1-64 of A-Z a-z 0-9 \. _ -, got: no spaces$/);
        assert.equal(await page.evaluate(`document.querySelector("#room").getAttribute("aria-invalid")`), "true");
        assert.equal(await page.evaluate(`document.querySelector("#status").dataset.state`), "closed", "no connect");

        // Keyboard: Enter on Connect; the button then disables itself, so focus must move on, not drop to <body>.
        await focus(page, "#connect");
        await page.pressEnter();
        await page.waitFor(`document.querySelector("#status").dataset.state === "open"`);
        assert.equal(await page.evaluate(`document.activeElement.id`), "message");
        await page.evaluate(`document.querySelector("#binary").click()`);
        await focus(page, "#message");
        await page.insertText("de ad zz");
        await page.pressEnter();
        assert.equal(
          await page.evaluate(`document.querySelector("#message-error").textContent`),
          "Hex may only contain 0-9, a-f and spaces, found: z",
        );
        await page.evaluate(
          `document.querySelector("#message").value = "abc"; document.querySelector("#send").click()`,
        );
        assert.equal(
          await page.evaluate(`document.querySelector("#message-error").textContent`),
          "Hex needs two digits per byte, digit count is odd: 3",
        );
        assert.equal(await page.evaluate(`document.querySelectorAll('#log li[data-dir="out"]').length`), 0);
        await page.close();
      });

      await t.step("two tabs chat in a room: ↑ and ↓, member count, binary as hex, close code", async () => {
        // Tab A starts on the main room and uses the room picker by keyboard; tab B opens the room's own URL.
        const a = await browser!.newPage(`${server.url}/`);
        await a.setViewport(900, 700);
        await focus(a, "#room");
        await a.insertText(ROOM);
        await a.pressEnter();
        await a.waitFor(`document.querySelector("#status").dataset.state === "open"`);
        assert.equal(await a.evaluate(`document.querySelector("#url").value`), `${wsBase}/rooms/${ROOM}`);
        assert.equal(await a.evaluate(`location.pathname`), `/rooms/${ROOM}`, "Join updates the address bar");

        const b = await browser!.newPage(`${server.url}/rooms/${ROOM}`);
        await focus(b, "#url");
        await b.pressEnter(); // Enter in the URL field submits the connection form.
        await b.waitFor(`document.querySelector("#status").dataset.state === "open"`);
        assert.equal(await waitForMembers(b, 2), "2");
        assert.deepEqual(await (await fetch(`${server.url}/stats?room=${ROOM}`)).json(), { room: ROOM, members: 2 });

        // A types and presses Enter: B sees it once as ↓, A sees its own ↑ and, as a room member, the echo ↓.
        const hello = "hello from A ✓";
        await focus(a, "#message");
        await a.insertText(hello);
        await a.pressEnter();
        const received = await waitForEntry(b, "in", hello);
        assert.deepEqual(
          { arrow: received.arrow, size: received.size, kind: received.kind },
          { arrow: "↓", size: "16 B", kind: "text" }, // 13 ASCII bytes + 3 for "✓".
        );
        assert.equal((await waitForEntry(a, "out", hello)).arrow, "↑");
        assert.equal((await waitForEntry(a, "in", hello)).arrow, "↓");
        assert.equal(await a.evaluate(`document.querySelector("#message").value`), "", "the composer is cleared");

        // B answers with the mouse path: value set, Send clicked.
        const reply = `{"from":"B","text":"hi A <b>not bold</b>"}`;
        await b.evaluate(`document.querySelector("#message").value = ${JSON.stringify(reply)};
        document.querySelector("#send").click()`);
        assert.equal((await waitForEntry(a, "in", reply)).body, reply);
        assert.equal(
          await a.evaluate(`document.querySelector("#log b")`),
          null,
          "message text is never parsed as HTML",
        );

        // Binary: A sends hex, B shows the same bytes as hex.
        await a.evaluate(`document.querySelector("#binary").click()`);
        await focus(a, "#message");
        await a.insertText("DE AD be ef 00 ff");
        await a.pressEnter();
        const binary = await waitForEntry(b, "in", "de ad be ef 00 ff");
        assert.deepEqual({ size: binary.size, kind: binary.kind }, { size: "6 B", kind: "binary" });
        assert.equal((await waitForEntry(a, "out", "de ad be ef 00 ff")).kind, "binary");
        await a.evaluate(`document.querySelector("#binary").click()`);

        // A learned of B through its periodic /stats refresh (every 3 s while connected).
        assert.equal(await waitForMembers(a, 2), "2");

        await a.evaluate(`document.activeElement.blur()`);
        await a.screenshot(`${SCREENSHOTS}room-light-900.png`);
        if (Deno.env.get("UPDATE_SCREENSHOT") === "1" || !(await exists(DOCS_SCREENSHOT))) {
          const png = await a.screenshot(DOCS_SCREENSHOT);
          assert.ok(png.length < DOCS_SCREENSHOT_MAX_BYTES, `docs/screenshot.png is too big: ${png.length} bytes`);
        }
        await a.setColorScheme("dark");
        await a.screenshot(`${SCREENSHOTS}room-dark-900.png`);
        await a.setViewport(400, 760);
        await a.screenshot(`${SCREENSHOTS}room-dark-400.png`);
        await a.setColorScheme("light");
        await a.screenshot(`${SCREENSHOTS}room-light-400.png`);
        assert.equal(
          await a.evaluate(`document.documentElement.scrollWidth <= window.innerWidth`),
          true,
          "nothing overflows sideways at 400 px",
        );

        // Disconnect: the page closes with 1000 and Deno's server echoes that code back in its Close frame, so the
        // browser reports 1000, clean (it would report 1005 only had the page called close() without a code).
        await a.evaluate(`document.querySelector("#disconnect").click()`);
        const closed = await a.waitFor<Entry>(entryExpression("event", `li.dataset.event === "close"`));
        assert.deepEqual({ code: closed.code, clean: closed.clean }, { code: "1000", clean: "true" });
        assert.match(closed.body, /^Closed: code 1000 \(normal closure\)/);
        assert.equal(await a.evaluate(`document.querySelector("#status").dataset.state`), "closed");
        assert.equal(await a.evaluate(`document.querySelector("#send").disabled`), true);

        // Server shutdown reaches B as 1001 going away.
        await server.shutdown();
        const away = await b.waitFor<Entry>(entryExpression("event", `li.dataset.event === "close"`));
        assert.equal(away.code, "1001");
        assert.match(away.body, /^Closed: code 1001 \(going away: server shutting down\)/);

        await a.evaluate(`document.querySelector("#clear").click()`);
        assert.equal(await a.evaluate(`document.querySelectorAll("#log li").length`), 0);
        await a.close();
        await b.close();
      });
    } finally {
      await browser?.close();
      await server.shutdown();
    }
  });
}
