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
import { ENGINES, TestClient } from "./_harness.ts";
import { Browser, chromiumPath, type Page, sleep } from "./_cdp.ts";
import { TcpProxy } from "./_proxy.ts";

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

/** Resolves once the page has rendered two more frames: layout, resize observers and scroll events have run. */
async function frames(page: Page): Promise<void> {
  await page.evaluate(`new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))`);
}

/** Where the log is scrolled: `gap` is the distance from its bottom; `jump` whether "New messages ↓" shows. */
interface LogState {
  top: number;
  gap: number;
  scrollable: boolean;
  jump: boolean;
  jumpText: string;
}

function logState(page: Page): Promise<LogState> {
  return page.evaluate<LogState>(`(() => {
    const log = document.querySelector("#log");
    const jump = document.querySelector("#jump");
    return {
      top: log.scrollTop, gap: log.scrollHeight - log.scrollTop - log.clientHeight,
      scrollable: log.scrollHeight > log.clientHeight, jump: !!jump && !jump.hidden && jump.offsetParent !== null,
      jumpText: jump?.textContent ?? "",
    };
  })()`);
}

/** Clicks Connect and waits for the page to show the socket open. */
async function connectPage(page: Page): Promise<void> {
  await page.evaluate(`document.querySelector("#connect").click()`);
  await page.waitFor(`document.querySelector("#status").dataset.state === "open"`);
}

/** Connects and waits for the refusal hint; returns the close code and the hint. */
async function refusal(page: Page): Promise<{ code: string; hint: string }> {
  const before = await page.evaluate<number>(`document.querySelectorAll('#log li[data-event="refused"]').length`);
  await page.evaluate(`document.querySelector("#connect").click()`);
  return await page.waitFor(`(() => {
    const hints = document.querySelectorAll('#log li[data-event="refused"]');
    const closes = document.querySelectorAll('#log li[data-event="close"]');
    return hints.length > ${before} && {
      code: closes[closes.length - 1].dataset.code, hint: hints[hints.length - 1].querySelector(".body").textContent,
    };
  })()`);
}

/**
 * The WCAG contrast ratio of `selector`'s text against its background as the reader sees them: the element's own
 * colours composited with its (and its ancestors') opacity over the nearest opaque background behind it.
 */
function contrastOf(page: Page, selector: string): Promise<number> {
  return page.evaluate<number>(`(() => {
    const parse = (css) => {
      const [r, g, b, a = 1] = css.match(/[\\d.]+/g).map(Number);
      return { r, g, b, a };
    };
    const over = (top, bottom, alpha = top.a) => ({
      r: top.r * alpha + bottom.r * (1 - alpha), g: top.g * alpha + bottom.g * (1 - alpha),
      b: top.b * alpha + bottom.b * (1 - alpha), a: 1,
    });
    const luminance = ({ r, g, b }) => {
      const lin = (v) => (v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    };
    const button = document.querySelector(${JSON.stringify(selector)});
    let backdrop = { r: 255, g: 255, b: 255, a: 1 };
    for (let node = button.parentElement; node; node = node.parentElement) {
      const bg = parse(getComputedStyle(node).backgroundColor);
      if (bg.a > 0) {
        backdrop = over(bg, backdrop);
        break;
      }
    }
    let opacity = 1;
    for (let node = button; node; node = node.parentElement) opacity *= Number(getComputedStyle(node).opacity);
    const style = getComputedStyle(button);
    const face = over(parse(style.backgroundColor), backdrop);
    const text = over(parse(style.color), face);
    const [a, b] = [luminance(over(text, backdrop, opacity)), luminance(over(face, backdrop, opacity))];
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  })()`);
}

Deno.test({
  name: "browser page: the log follows or stays put, long text is cut, Enter on empty, refusal hints, dark contrast",
  sanitizeOps: true,
  sanitizeResources: true,
}, async (t) => {
  const path = chromiumPath();
  assert.ok(path, "Chromium not found: run `apt-get install -y chromium` (or set CHROMIUM=/path/to/chromium)");
  const options = { port: 0, hostname: "127.0.0.1", logger: SILENT_LOGGER } as const;
  // Room for a 1 MiB text plus its frame.
  const server = serve({ ...options, maxMessageBytes: 2 * 1024 * 1024 });
  const guarded = serve({ ...options, token: "s3cret-token" });
  const picky = serve({ ...options, allowedOrigins: ["https://elsewhere.example"] });
  await Promise.all([server.ready, guarded.ready, picky.ready]);
  const wsBase = server.url.replace(/^http/, "ws");
  let browser: Browser | undefined;
  let sender: WebSocket | undefined;
  try {
    browser = await Browser.launch({ path });

    await t.step(
      "the log follows new messages after the window narrows, stays put scrolled up, and jumps",
      async () => {
        const page = await browser!.newPage(`${server.url}/rooms/scroll`);
        await page.setViewport(900, 700);
        await connectPage(page);
        sender = new WebSocket(`${wsBase}/rooms/scroll`);
        await new Promise((resolve) => sender!.onopen = resolve);
        let sent = 0;
        const say = async (count: number) => {
          for (const end = sent + count; sent < end; sent++) {
            sender!.send(`line ${sent}: ${"words that wrap ".repeat(12)}`);
          }
          await page.waitFor(`document.querySelectorAll('#log li[data-dir="in"]').length === ${sent}`);
          await frames(page);
        };
        await say(40);
        let state = await logState(page);
        assert.ok(state.scrollable && state.gap <= 1, `at the bottom at 900 px: ${JSON.stringify(state)}`);

        // Narrower: every line wraps more, the content grows under the reader; the next message must still show.
        await page.setViewport(400, 700);
        await frames(page);
        await say(1);
        state = await logState(page);
        assert.ok(state.gap <= 1 && !state.jump, `follows after narrowing to 400 px: ${JSON.stringify(state)}`);
        await page.setViewport(1200, 500);
        await frames(page);
        await say(1);
        state = await logState(page);
        assert.ok(state.gap <= 1 && !state.jump, `follows after widening to 1200 px: ${JSON.stringify(state)}`);

        // The reader scrolls up with the mouse wheel: new messages leave the view alone and offer a way down.
        const box = await page.evaluate<{ x: number; y: number }>(`(() => {
        const r = document.querySelector("#log").getBoundingClientRect();
        return { x: r.x + r.width / 2, y: r.y + r.height / 2 };
      })()`);
        const bottom = (await logState(page)).top;
        await page.send("Input.dispatchMouseEvent", { type: "mouseWheel", ...box, deltaX: 0, deltaY: -600 });
        await page.waitFor(`document.querySelector("#log").scrollTop < ${bottom - 300}`);
        await frames(page);
        const reading = (await logState(page)).top;
        assert.equal((await logState(page)).jump, false, "no button before anything new arrives");
        await say(3);
        state = await logState(page);
        assert.ok(Math.abs(state.top - reading) <= 1, `stays put: ${reading} → ${state.top}`);
        assert.deepEqual({ jump: state.jump, text: state.jumpText }, { jump: true, text: "New messages ↓" });
        await page.evaluate(`document.querySelector("#jump").click()`);
        await frames(page);
        state = await logState(page);
        assert.ok(state.gap <= 1 && !state.jump, `the button jumps to the bottom and hides: ${JSON.stringify(state)}`);
        await say(1);
        assert.ok((await logState(page)).gap <= 1, "and the log follows again");

        const closed = new Promise((resolve) => sender!.onclose = resolve);
        sender.close();
        await closed;
        await page.close();
      },
    );

    await t.step("a 1 MiB text is cut at 4,096 bytes with its size, and can be expanded and copied", async () => {
      const page = await browser!.newPage(`${server.url}/echo`);
      await page.send("Emulation.setFocusEmulationEnabled", { enabled: true });
      await browser!.send("Browser.grantPermissions", {
        origin: server.url,
        permissions: ["clipboardReadWrite", "clipboardSanitizedWrite"],
      });
      await connectPage(page);
      // 1 + 2 × 524,287 + 1 = 1,048,576 bytes; 4,096 bytes would end inside a "ü", so 4,095 are shown.
      const text = `"a" + "ü".repeat(524287) + "b"`;
      await page.evaluate(
        `document.querySelector("#message").value = ${text}; document.querySelector("#send").click()`,
      );
      const entry = (dir: string) => `document.querySelector('#log li[data-dir="${dir}"]')`;
      const shown = await page.waitFor<Record<string, unknown>>(`(() => {
        const li = ${entry("in")};
        return li && {
          size: li.querySelector(".size").textContent, cut: li.dataset.cut, more: li.querySelector(".more")?.textContent,
          shown: li.querySelector(".text")?.textContent === "a" + "ü".repeat(2047), characters: li.textContent.length,
          out: ${entry("out")}.querySelector(".text")?.textContent.length,
        };
      })()`);
      assert.deepEqual(shown, {
        size: "1048576 B",
        cut: "true",
        more: "Showing the first 4,095 of 1,048,576 bytes.Show allCopy",
        shown: true,
        characters: shown.characters,
        out: 2048,
      });
      assert.ok((shown.characters as number) < 2200, `no wall of text: ${shown.characters} characters`);
      assert.equal(await page.evaluate(`hubbub.cutText("😀".repeat(2000)).length`), 2048, "4-byte characters");

      const expand = `${entry("in")}.querySelector(".expand")`;
      const length = `${entry("in")}.querySelector(".text").textContent.length`;
      await page.evaluate(`${expand}.click()`);
      assert.deepEqual(
        await page.evaluate(`[${length}, ${expand}.getAttribute("aria-expanded"), ${expand}.textContent]`),
        [524289, "true", "Show less"],
      );
      await page.evaluate(`${expand}.click()`);
      assert.deepEqual(await page.evaluate(`[${length}, ${expand}.textContent]`), [2048, "Show all"]);

      await page.evaluate(`${entry("in")}.querySelector(".copy").click()`);
      await page.waitFor(`${entry("in")}.querySelector(".copy").textContent === "Copied"`);
      assert.equal(await page.evaluate(`navigator.clipboard.readText().then((copied) => copied === ${text})`), true);
      await page.close();
    });

    await t.step("Enter on an empty composer sends nothing; the Send button sends an empty message", async () => {
      const page = await browser!.newPage(`${server.url}/echo`);
      await connectPage(page);
      await focus(page, "#message");
      await page.pressEnter();
      await page.insertText("after");
      await page.pressEnter();
      await waitForEntry(page, "in", "after");
      const bodies = (dir: string) =>
        page.evaluate<string[]>(
          `[...document.querySelectorAll('#log li[data-dir="${dir}"] .body')].map((b) => b.textContent)`,
        );
      assert.deepEqual(await bodies("out"), ["after"], "the empty Enter sent nothing");
      await page.evaluate(`document.querySelector("#send").click()`);
      const empty = await page.waitFor<Entry>(
        entryExpression("in", `body === "" && li.querySelector(".size").textContent === "0 B"`),
      );
      assert.equal(empty.kind, "text");
      assert.deepEqual(await bodies("out"), ["after", ""]);
      assert.match(
        await page.evaluate<string>(`document.querySelector("#message-hint").textContent.replace(/\\s+/g, " ")`),
        /Enter on an empty box sends nothing, the Send button sends an empty message/,
      );
      assert.match(await page.evaluate<string>(`document.querySelector("#send").title`), /empty message/);
      await page.close();
    });

    await t.step("a refused handshake lists the likely causes, and the rules the server itself has on", async () => {
      const page = await browser!.newPage(`${guarded.url}/rooms/lobby`);
      assert.equal(
        await page.evaluate(`document.documentElement.outerHTML.includes("s3cret-token")`),
        false,
        "the page never carries the token",
      );
      const missing = await refusal(page);
      assert.equal(missing.code, "1006");
      assert.match(missing.hint, /^This server requires a token: add \?token=<token> to the URL\.\n/);
      await page.evaluate(`document.querySelector("#url").value += "?token=wrong"`);
      assert.match((await refusal(page)).hint, /^This server requires a token: check the \?token= in the URL\.\n/);
      await page.close();

      const open = await browser!.newPage(`${server.url}/`);
      await open.evaluate(`document.querySelector("#url").value = ${JSON.stringify(`${wsBase}/nope`)}`);
      const plain = await refusal(open);
      assert.equal(plain.code, "1006");
      assert.match(
        plain.hint,
        /^The connection was refused or failed; likely causes \(browsers hide the HTTP status\):/,
      );
      assert.match(plain.hint, /a wrong path or room name: the server has \/, \/echo and \/rooms\/<name>/);
      assert.match(plain.hint, /the server is full/);
      assert.doesNotMatch(plain.hint, /token|origin/, "this server has no token or origin rule");
      // Pointed at another server, the page knows nothing of its rules: every cause is listed.
      await open.evaluate(
        `document.querySelector("#url").value = ${JSON.stringify(`${guarded.url.replace(/^http/, "ws")}/`)}`,
      );
      const elsewhere = await refusal(open);
      assert.match(elsewhere.hint, /a token is required: add \?token=<token> to the URL/);
      assert.match(elsewhere.hint, /this page's origin is not allowed by the server/);
      await open.close();

      // A server that accepts TCP and never answers: Disconnect while connecting is the page's own doing, no refusal.
      const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const accepted = silent.accept();
      try {
        const waiting = await browser!.newPage(`${server.url}/echo`);
        await waiting.evaluate(`document.querySelector("#url").value = "ws://127.0.0.1:${silent.addr.port}/";
          document.querySelector("#connect").click()`);
        await waiting.waitFor(`document.querySelector("#status").dataset.state === "connecting"`);
        await waiting.evaluate(`document.querySelector("#disconnect").click()`);
        await waiting.waitFor(`document.querySelector('#log li[data-event="close"]')`);
        await frames(waiting);
        assert.equal(await waiting.evaluate(`document.querySelectorAll('#log li[data-event="refused"]').length`), 0);
        await waiting.close();
      } finally {
        (await accepted).close();
        silent.close();
      }

      const strict = await browser!.newPage(`${picky.url}/`);
      const origin = await refusal(strict);
      assert.match(origin.hint, /^This server only accepts pages from the origins it allows \(--allowed-origin\)/);
      assert.doesNotMatch(origin.hint, /token/);
      await strict.close();
    });

    await t.step("disabled buttons keep 4.5:1 text contrast in dark mode and light", async () => {
      const page = await browser!.newPage(`${server.url}/echo`);
      await page.setViewport(900, 700);
      await connectPage(page);
      for (const scheme of ["dark", "light"] as const) {
        await page.setColorScheme(scheme);
        await frames(page);
        assert.equal(await page.evaluate(`document.querySelector("#connect").disabled`), true);
        const ratio = await contrastOf(page, "#connect");
        assert.ok(ratio >= 4.5, `disabled Connect in ${scheme} mode: ${ratio.toFixed(2)}:1`);
      }
      await page.setColorScheme("dark");
      await page.screenshot(`${SCREENSHOTS}disabled-dark-900.png`);
      await page.evaluate(`document.querySelector("#disconnect").click()`);
      await page.waitFor(`document.querySelector("#status").dataset.state === "closed"`);
      for (const selector of ["#send", "#disconnect"]) {
        const ratio = await contrastOf(page, selector);
        assert.ok(ratio >= 4.5, `disabled ${selector} in dark mode: ${ratio.toFixed(2)}:1`);
      }
      await page.close();
    });
  } finally {
    if (sender && sender.readyState !== WebSocket.CLOSED) {
      const closed = new Promise((resolve) => sender!.onclose = resolve);
      sender.close();
      await closed;
    }
    await browser?.close();
    await Promise.all([server.shutdown(), guarded.shutdown(), picky.shutdown()]);
  }
});

/** The bodies of the page's received entries, with how each came (`data-replayed`, or "" for live ones). */
function received(page: Page): Promise<{ body: string; replayed: string }[]> {
  return page.evaluate(`[...document.querySelectorAll('#log li[data-dir="in"]')].map((li) => ({
    body: li.querySelector(".body").textContent, replayed: li.dataset.replayed ?? "",
  }))`);
}

/** The bodies of the page's events named `event`. */
function events(page: Page, event: string): Promise<string[]> {
  return page.evaluate(
    `[...document.querySelectorAll('#log li[data-event="${event}"] .body')].map((body) => body.textContent)`,
  );
}

/** `prefix0` … `prefix<count - 1>`. */
function numbered(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

/** Sends `messages` into `room` from a client of its own and waits for its own copies. */
async function publish(wsUrl: string, room: string, messages: string[]): Promise<void> {
  const publisher = new TestClient(`${wsUrl}/rooms/${room}`);
  try {
    await publisher.opened();
    for (const message of messages) publisher.socket.send(message);
    await publisher.waitFor(messages.length);
  } finally {
    await publisher.close();
  }
}

for (const engine of ENGINES) {
  Deno.test({
    name: `[${engine}] browser page: history on join, recovery after a cut, loss after a restart, Disconnect stops`,
    sanitizeOps: true,
    sanitizeResources: true,
  }, async (t) => {
    const path = chromiumPath();
    assert.ok(path, "Chromium not found: run `apt-get install -y chromium` (or set CHROMIUM=/path/to/chromium)");
    const room = "recovery";
    const options = { hostname: "127.0.0.1", engine, logger: SILENT_LOGGER, historySize: 1000 } as const;
    let server = serve({ ...options, port: 0 });
    await server.ready;
    const port = server.addr.port;
    const wsUrl = server.wsUrl;
    // The page is served through the proxy, so its socket goes through it too: cutting it is a dropped network.
    const proxy = new TcpProxy({ port });
    let browser: Browser | undefined;
    /** Messages the page has received so far. */
    let total = 0;
    try {
      browser = await Browser.launch({ path });
      const page = await browser.newPage(`http://127.0.0.1:${proxy.port}/rooms/${room}`);
      await page.setViewport(900, 700);

      await t.step("the page's helpers: backoff, join URLs, what a joined frame says", async () => {
        assert.deepEqual(
          await page.evaluate(`[0, 1, 2, 5, 6, 40].map((n) => hubbub.backoffDelay(n, () => 1))`),
          [250, 500, 1000, 8000, 10000, 10000],
        );
        assert.equal(await page.evaluate(`hubbub.backoffDelay(3, () => 0)`), 1000, "jitter: the upper half");
        assert.equal(
          await page.evaluate(`hubbub.joinUrl("ws://h/rooms/a?token=t&replay=5", { offset: 7, epoch: "e1" }, 0)`),
          "ws://h/rooms/a?token=t&since=7&epoch=e1",
        );
        assert.equal(await page.evaluate(`hubbub.joinUrl("ws://h/?token=t", null, 50)`), "ws://h/?token=t&replay=50");
        assert.equal(await page.evaluate(`hubbub.isOwnRoom("ws://${location()}/echo", "${location()}")`), false);
        assert.equal(await page.evaluate(`hubbub.isOwnRoom("ws://elsewhere:1/rooms/a", "${location()}")`), false);
        assert.equal(
          await page.evaluate(`hubbub.describeRecovery(hubbub.readRecovery(
            { offset: 9, epoch: "e", recovered: false, missed: 0 }, false, { offset: 7, epoch: "e" }))`),
          "Some messages were lost (2 missed)",
        );
        function location() {
          return `127.0.0.1:${proxy.port}`;
        }
      });

      await t.step("joining shows the room's recent history, marked, then live messages", async () => {
        await publish(wsUrl, room, numbered("h", 5));
        await connectPage(page);
        await page.waitFor(`document.querySelectorAll('#log li[data-replayed="history"]').length === 5`);
        assert.deepEqual(await events(page, "history"), ["Recent messages from the room's history:"]);
        assert.match(
          (await events(page, "connecting"))[0],
          new RegExp(`^Connecting to ws://127\\.0\\.0\\.1:${proxy.port}/rooms/${room}\\?replay=100$`),
        );
        assert.equal(await page.evaluate(`document.querySelector("#status").dataset.state`), "open");
      });

      await t.step("a connection cut while messages flow: reconnects and recovers, no gap, no duplicate", async () => {
        // A publisher that keeps going, 10 messages every 10 ms, until told to stop: so messages flow while the page
        // is away, however fast it comes back.
        const publisher = new TestClient(`${wsUrl}/rooms/${room}`);
        await publisher.opened();
        let sent = 0;
        let stop = false;
        const publishing = (async () => {
          while (!stop) {
            for (const end = sent + 10; sent < end; sent++) publisher.socket.send(`n${sent}`);
            await sleep(10);
          }
          await publisher.waitFor(sent);
          await publisher.close();
        })();
        try {
          await page.waitFor(`document.querySelectorAll('#log li[data-dir="in"]').length >= 60`);
          // The page's socket, and its keep-alive HTTP connections (the page, /stats) with it.
          assert.ok(proxy.cut() >= 1, "the page's socket is cut");
          await page.waitFor(`document.querySelector('#log li[data-event="recovered"]')`);
          const until = sent + 50;
          while (sent < until) await sleep(10);
        } finally {
          stop = true;
          await publishing;
        }
        await page.waitFor(`document.querySelectorAll('#log li[data-dir="in"]').length >= ${5 + sent}`);
        await frames(page);
        const entries = await received(page);
        assert.deepEqual(entries.map((entry) => entry.body), [...numbered("h", 5), ...numbered("n", sent)]);
        const [recovered] = await events(page, "recovered");
        const count = Number(/^Recovered (\d+) missed messages?$/.exec(recovered)?.[1]);
        assert.ok(count > 0, `messages went on while it was away: ${recovered}`);
        assert.equal(entries.filter((entry) => entry.replayed === "recovered").length, count);
        const closed = await page.evaluate<string[]>(`[...document.querySelectorAll('#log li[data-event="close"]')]
          .map((li) => li.dataset.code)`);
        assert.deepEqual(closed, ["1006"], "dropped without a close frame");
        assert.match((await events(page, "reconnecting"))[0], /^Reconnecting in 0\.[1-3] s \(attempt 1\)$/);
        assert.match((await events(page, "connecting"))[1], /^Reconnecting to .*\?since=\d+&epoch=[0-9a-f]+$/);
        assert.equal(await page.evaluate(`document.querySelector("#status").dataset.state`), "open");
        assert.deepEqual(await events(page, "lost"), []);
        assert.deepEqual(await events(page, "refused"), [], "a reconnect is no refusal");
        total = 5 + sent;
        await page.evaluate(`document.querySelector('#log li[data-event="close"]').scrollIntoView()`);
        await frames(page);
        await page.screenshot(`${SCREENSHOTS}recovered-light-900.png`);
        await page.evaluate(`document.querySelector("#jump").click()`);
      });

      await t.step("a restarted server lost its history: the page says so, then goes on live", async () => {
        await server.shutdown();
        await page.waitFor(`document.querySelector("#status").dataset.state !== "open"`);
        server = serve({ ...options, port });
        await server.ready;
        await page.waitFor(`document.querySelectorAll('#log li[data-event="lost"]').length === 1`);
        assert.deepEqual(await events(page, "lost"), ["Some messages were lost"]);
        await page.waitFor(`document.querySelector("#status").dataset.state === "open"`);
        await publish(server.wsUrl, room, ["after the restart"]);
        await page.waitFor(`[...document.querySelectorAll('#log li[data-dir="in"] .body')].at(-1)
          ?.textContent === "after the restart"`);
        assert.equal((await received(page)).length, total + 1);
        await page.screenshot(`${SCREENSHOTS}recovery-light-900.png`);
      });

      await t.step("Disconnect closes for good; Disconnect while reconnecting stops the retries", async () => {
        await page.evaluate(`document.querySelector("#disconnect").click()`);
        await page.waitFor(`document.querySelector("#status").dataset.state === "closed"`);
        const quiet = async (what: string) => {
          // Four times the longest first backoff: a reconnect would have come by then.
          await sleep(1000);
          assert.equal(await page.evaluate(`document.querySelector("#status").dataset.state`), "closed", what);
          assert.equal(server.hub.members(room), 0, what);
        };
        await quiet("no reconnect after the user's Disconnect");
        const reconnects = (await events(page, "reconnecting")).length;

        await connectPage(page);
        await server.shutdown();
        await page.waitFor(`document.querySelector("#status").dataset.state === "reconnecting"`);
        await page.evaluate(`document.querySelector("#disconnect").click()`);
        assert.deepEqual(await events(page, "stopped"), ["Stopped reconnecting"]);
        assert.equal(await page.evaluate(`document.querySelector("#status").dataset.state`), "closed");
        server = serve({ ...options, port });
        await server.ready;
        await quiet("no reconnect after Disconnect while reconnecting");
        assert.equal((await events(page, "reconnecting")).length, reconnects + 1);
      });
      await page.close();
    } finally {
      await browser?.close();
      await proxy.close();
      await server.shutdown();
    }
  });
}
