/**
 * The dashboard in a real headless Chromium, driven over CDP (one browser for the whole file): totals, rooms and
 * charts follow real clients within 2 s without moving the layout, the filter and the room links work from the
 * keyboard, the publish form reaches a member, the admin token is asked for and kept out of URLs, and a cluster's
 * nodes are listed. Screenshots go to `out/screenshots/`; `docs/dashboard.png` (the README's, under load) is written
 * when missing or when `UPDATE_SCREENSHOT=1`.
 *
 * Needs Chromium (and redis-server for the cluster step); without them it fails on purpose.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SILENT_LOGGER } from "../lib/log.ts";
import { serve } from "../lib/server.ts";
import { Browser, chromiumPath, type Page, sleep } from "./_cdp.ts";
import { type Node, startNode, stopNode, waitForMembers } from "./_cluster.ts";
import { closeAll, openClients, type TestClient } from "./_harness.ts";
import { startRedis } from "./_redis.ts";

const SCREENSHOTS = new URL("../out/screenshots/", import.meta.url).pathname;
const DOCS_SCREENSHOT = new URL("../docs/dashboard.png", import.meta.url).pathname;
/** The README screenshot must stay small enough to keep the repository light. */
const DOCS_SCREENSHOT_MAX_BYTES = 150_000;
/** The page polls once a second: what the server knows must show within two polls. */
const UPDATE_MS = 2000;
const ADMIN = "admin-s3cret-token";
const CLIENT_TOKEN = "client-s3cret-token";

/** The rooms table as `name:members` in its order. */
const ROOMS = `[...document.querySelectorAll("#rooms tbody tr")]
  .map((tr) => tr.dataset.room + ":" + tr.querySelector(".members").textContent).join(",")`;

function text(selector: string): string {
  return `document.querySelector(${JSON.stringify(selector)}).textContent`;
}

async function focus(page: Page, selector: string): Promise<void> {
  await page.evaluate(`document.querySelector(${JSON.stringify(selector)}).focus()`);
}

async function pressTab(page: Page): Promise<void> {
  const key = { key: "Tab", code: "Tab", windowsVirtualKeyCode: 9, nativeVirtualKeyCode: 9 };
  await page.send("Input.dispatchKeyEvent", { type: "rawKeyDown", ...key });
  await page.send("Input.dispatchKeyEvent", { type: "keyUp", ...key });
}

/** Where every card, chart and column heading is, to compare before and after numbers change. */
function layout(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(`[...document.querySelectorAll(".card, #rooms th, figure")].map((el) => {
    const r = el.getBoundingClientRect();
    return el.className + el.id + " " + [r.x, r.y, r.width, r.height].map((n) => n.toFixed(1)).join(" ");
  })`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Sends `perTick` messages from `clients` (in turn) every 100 ms until stopped. */
function traffic(clients: TestClient[], perTick: () => number): { stop: () => void } {
  let turn = 0;
  const timer = setInterval(() => {
    for (let i = perTick(); i > 0; i--) clients[turn++ % clients.length].socket.send(`tick ${turn}`);
  }, 100);
  return { stop: () => clearInterval(timer) };
}

Deno.test({
  name: "dashboard page: live totals, rooms, charts, filter, room links, publish form, admin token, cluster nodes",
  sanitizeOps: true,
  sanitizeResources: true,
}, async (t) => {
  const path = chromiumPath();
  assert.ok(path, "Chromium not found: run `apt-get install -y chromium` (or set CHROMIUM=/path/to/chromium)");
  const options = { port: 0, logger: SILENT_LOGGER } as const;
  const open = serve({ ...options, hostname: "127.0.0.1", engine: "raw" });
  const guarded = serve({ ...options, hostname: "127.0.0.1", token: CLIENT_TOKEN, adminToken: ADMIN });
  // Bound to every interface with no token: open to this machine only, and the page must say so.
  const exposed = serve({ ...options, hostname: "0.0.0.0" });
  await Promise.all([open.ready, guarded.ready, exposed.ready]);
  const base = `http://127.0.0.1:${open.addr.port}`;
  const wsBase = `ws://127.0.0.1:${open.addr.port}`;
  const clients: TestClient[] = [];
  let load: { stop: () => void } | undefined;
  let browser: Browser | undefined;
  try {
    browser = await Browser.launch({ path });

    await t.step("a server bound beyond loopback with no token: the page says who it answers", async () => {
      const page = await browser!.newPage(`http://127.0.0.1:${exposed.addr.port}/dashboard`);
      await page.waitFor(`document.querySelector("#status").dataset.state === "live"`);
      assert.match(
        await page.evaluate<string>(text("#notice")),
        /^This server listens on 0\.0\.0\.0, but with no --admin-token its dashboard answers this machine only/,
      );
      await page.close();
    });

    await t.step("totals, rooms and charts follow three rooms within 2 s; nothing moves", async () => {
      const page = await browser!.newPage(`${base}/dashboard`);
      await page.setViewport(1100, 1000);
      await page.waitFor(`document.querySelector("#status").dataset.state === "live"`);
      assert.equal(await page.evaluate(text("#notice")), "", "bound to loopback: nothing to warn about");
      assert.equal(await page.evaluate(text("#rooms-empty")), "No rooms: nobody is in a room on this node.");
      assert.equal(await page.evaluate(`document.querySelector("#nodes").hidden`), true, "no broker, no nodes");
      const before = await layout(page);

      clients.push(...await openClients(`${wsBase}/rooms/alpha`, 3));
      clients.push(...await openClients(`${wsBase}/rooms/beta`, 2));
      clients.push(...await openClients(`${wsBase}/rooms/gamma`, 1));
      await page.waitFor(`${ROOMS} === "alpha:3,beta:2,gamma:1"`, { timeout: UPDATE_MS });
      await page.waitFor(`${text("#t-connections")} === "6" && ${text("#t-rooms")} === "3"`, { timeout: UPDATE_MS });
      assert.equal(await page.evaluate(text("#rooms-count")), "3 rooms");

      // 50 messages a second into alpha: the rates and the message chart follow within 2 s.
      load = traffic(clients.slice(0, 3), () => 5);
      await page.waitFor(
        `Number(${text("#t-in")}) > 10 && Number(${text('#rooms tr[data-room="alpha"] .rate')}) > 10`,
        { timeout: UPDATE_MS },
      );
      const delivered = await page.evaluate<number>(`Number(${text("#t-out")})`);
      assert.ok(delivered > 20, `delivered/s counts each of alpha's 3 members: ${delivered}`);
      assert.equal(await page.evaluate(text('#rooms tr[data-room="beta"] .rate')), "0.0");
      assert.equal(await page.evaluate(text('#rooms tr[data-room="gamma"] .history')), "—", "history is off");
      const points = await page.waitFor<number[]>(`(() => {
        const count = (id) => Number(document.querySelector(id + " svg").dataset.points);
        const drawn = (id) => (document.querySelector(id + " path.line").getAttribute("d").match(/[ML]/g) ?? []).length;
        const c = count("#chart-connections"), m = count("#chart-messages");
        return c >= 3 && m >= 2 && drawn("#chart-connections") === c && drawn("#chart-messages") === m && [c, m];
      })()`);
      assert.ok(points[0] >= 3 && points[1] >= 2, `charts have points: ${points}`);
      assert.match(
        await page.evaluate<string>(`document.querySelector("#chart-connections svg").getAttribute("aria-label")`),
        /^Connections over the last 1m 00s: now 6, scale 0 to 10$/,
      );

      // Ten more connections (one digit to two) and rates that move every second: no card or column moves.
      clients.push(...await openClients(`${wsBase}/rooms/delta`, 10));
      await page.waitFor(`${text("#t-connections")} === "16"`, { timeout: UPDATE_MS });
      assert.deepEqual(await layout(page), before, "the layout stays put while numbers change");
      await page.screenshot(`${SCREENSHOTS}dashboard-light-1100.png`);
      await page.close();
    });

    await t.step("keyboard: the filter, a room's link to the client page, and the publish form", async () => {
      const page = await browser!.newPage(`${base}/dashboard`);
      await page.setViewport(1100, 1000);
      await page.waitFor(`${ROOMS} === "delta:10,alpha:3,beta:2,gamma:1"`, { timeout: UPDATE_MS });
      await focus(page, "#filter");
      await page.insertText("ALP");
      await page.waitFor(`${ROOMS} === "alpha:3"`, { timeout: UPDATE_MS });
      assert.equal(await page.evaluate(text("#rooms-count")), "1 room matching “ALP”");

      // Tab from the filter reaches the room's link; Enter opens the client page on that room in a new tab.
      await pressTab(page);
      assert.equal(await page.evaluate(`document.activeElement.textContent`), "alpha");
      await page.pressEnter();
      let clientTab: { targetId: string; url: string } | undefined;
      const deadline = Date.now() + 10_000;
      while (!clientTab && Date.now() < deadline) {
        const { targetInfos } = await browser!.send<{ targetInfos: { targetId: string; url: string }[] }>(
          "Target.getTargets",
        );
        clientTab = targetInfos.find((info) => info.url === `${base}/rooms/alpha`);
        if (!clientTab) await sleep(50);
      }
      assert.ok(clientTab, "Enter on the room's link opened the client page on it");
      await browser!.send("Target.closeTarget", { targetId: clientTab.targetId });

      await page.evaluate(`(() => {
        const filter = document.querySelector("#filter");
        filter.value = "";
        filter.dispatchEvent(new Event("input"));
      })()`);
      await page.waitFor(`${ROOMS} === "delta:10,alpha:3,beta:2,gamma:1"`, { timeout: UPDATE_MS });

      // A bad room name is refused in the page; a good one goes through POST /rooms/<name> to every member.
      await focus(page, "#pub-room");
      await page.insertText("no spaces");
      await focus(page, "#pub-text");
      await page.insertText("hello from the dashboard");
      await page.pressEnter();
      assert.equal(
        await page.evaluate(text("#pub-result")),
        "Room names are / or 1-64 of A-Z a-z 0-9 . _ -, got: no spaces",
      );
      assert.equal(await page.evaluate(`document.activeElement.id`), "pub-room");
      await page.evaluate(`document.querySelector("#pub-room").value = ""`);
      await page.insertText("beta");
      await pressTab(page);
      assert.equal(await page.evaluate(`document.activeElement.id`), "pub-text", "Tab goes from room to message");
      await page.pressEnter();
      await page.waitFor(`document.querySelector("#pub-result").dataset.state === "ok"`);
      assert.equal(await page.evaluate(text("#pub-result")), "Published 24 bytes to beta.");
      const beta = clients.slice(3, 5);
      await Promise.all(beta.map((client) => client.waitFor(1)));
      for (const client of beta) assert.deepEqual(client.received, ["hello from the dashboard"]);
      assert.equal(await page.evaluate(`document.querySelector("#pub-text").value`), "");
      await page.close();
    });

    await t.step("400 px and a desktop, light and dark: nothing overflows sideways", async () => {
      const page = await browser!.newPage(`${base}/dashboard`);
      for (const [width, height] of [[400, 1600], [1280, 1000]]) {
        await page.setViewport(width, height);
        for (const scheme of ["light", "dark"] as const) {
          await page.setColorScheme(scheme);
          await page.waitFor(`document.querySelector("#chart-connections svg").dataset.points >= 2`);
          assert.equal(
            await page.evaluate(`document.documentElement.scrollWidth <= window.innerWidth`),
            true,
            `nothing overflows sideways at ${width} px, ${scheme}`,
          );
          assert.equal(await page.evaluate(`getComputedStyle(document.querySelector("#rooms")).display`), "table");
          await page.screenshot(`${SCREENSHOTS}dashboard-${scheme}-${width}.png`);
        }
      }
      // Every column heading reads whole at 400 px (the total column gives way).
      await page.setViewport(400, 1600);
      const cut = await page.evaluate<string[]>(`[...document.querySelectorAll("#rooms th")]
        .filter((th) => th.offsetParent !== null && th.scrollWidth > th.clientWidth).map((th) => th.textContent)`);
      assert.deepEqual(cut, []);
      await page.close();
    });

    if (Deno.env.get("UPDATE_SCREENSHOT") === "1" || !(await exists(DOCS_SCREENSHOT))) {
      await t.step("under load, for the README", async () => {
        const page = await browser!.newPage(`${base}/dashboard`);
        await page.setViewport(1100, 1060);
        await page.setColorScheme("light");
        // A minute of changing traffic and people coming and going, so the charts have a shape.
        load?.stop();
        let second = 0;
        load = traffic([...clients], () => Math.round(4 + 3 * Math.sin(second / 6) + (second > 30 ? 4 : 0)));
        const extra: TestClient[] = [];
        for (; second < 60; second++) {
          if (second % 5 === 0 && second < 40) extra.push(...await openClients(`${wsBase}/rooms/support`, 2));
          if (second === 45) await closeAll(extra.splice(0, 6));
          await sleep(1000);
        }
        await page.evaluate(`document.activeElement.blur()`);
        const png = await page.screenshot(DOCS_SCREENSHOT);
        assert.ok(png.length < DOCS_SCREENSHOT_MAX_BYTES, `docs/dashboard.png is too big: ${png.length} bytes`);
        load.stop();
        await closeAll(extra);
        await page.close();
      });
    }

    await t.step("with --admin-token the page asks for it, keeps it out of URLs, and publishes with it", async () => {
      const ops = await openClients(`${guarded.wsUrl}/rooms/ops?token=${CLIENT_TOKEN}`, 1);
      clients.push(...ops);
      const page = await browser!.newPage(`${guarded.url}/dashboard`);
      await page.waitFor(`document.querySelector("#status").dataset.state === "locked"`);
      assert.deepEqual(
        await page.evaluate(`[document.querySelector("#login").hidden, document.querySelector("#board").hidden]`),
        [false, true],
      );
      assert.equal(await page.evaluate(`document.activeElement.id`), "admin-token", "the token field has focus");
      assert.equal(await page.evaluate(`fetch("dashboard.json").then((r) => r.status)`), 401);

      await page.insertText("wrong-token");
      await page.pressEnter();
      await page.waitFor(`${text("#login-error")} === "The server refused that admin token: check it and try again."`);
      assert.equal(await page.evaluate(`sessionStorage.length`), 0, "a refused token is not kept");
      await page.insertText(ADMIN);
      await page.pressEnter();
      await page.waitFor(`document.querySelector("#status").dataset.state === "live"`);
      await page.waitFor(`${ROOMS} === "ops:1"`, { timeout: UPDATE_MS });
      assert.equal(await page.evaluate(`sessionStorage.getItem("hubbub.adminToken")`), ADMIN);

      // The token never goes into a URL: not the page's, not any request's.
      const urls = await page.evaluate<string[]>(
        `[location.href, ...performance.getEntriesByType("resource").map((entry) => entry.name)]`,
      );
      assert.ok(urls.length > 2 && urls.every((url) => !url.includes(ADMIN)), JSON.stringify(urls));

      // HTTP publish needs a credential on this server: the form sends the admin token.
      await page.evaluate(`document.querySelector("#pub-room").value = "ops";
        document.querySelector("#pub-text").value = "from the admin";
        document.querySelector("#pub-send").click()`);
      await page.waitFor(`document.querySelector("#pub-result").dataset.state === "ok"`);
      assert.deepEqual(await ops[0].waitFor(1), ["from the admin"]);

      // The token lasts for the tab: a reload goes live at once; Forget asks again.
      await page.goto(`${guarded.url}/dashboard`);
      await page.waitFor(`document.querySelector("#status").dataset.state === "live"`);
      await page.evaluate(`document.querySelector("#forget").click()`);
      await page.waitFor(`document.querySelector("#status").dataset.state === "locked"`);
      assert.equal(await page.evaluate(`sessionStorage.length`), 0);
      assert.equal(await page.evaluate(text("#login-error")), "", "forgetting is no refusal");
      await page.close();
    });

    await t.step("with --redis, one row per node", async () => {
      const redis = await startRedis();
      const nodes: Node[] = [];
      const members: TestClient[] = [];
      try {
        nodes.push(await startNode("deno", redis.url()), await startNode("raw", redis.url()));
        const [a, b] = nodes;
        members.push(
          ...await openClients(`${a.wsUrl}/rooms/lobby`, 1),
          ...await openClients(`${b.wsUrl}/rooms/lobby`, 2),
        );
        await waitForMembers(a, "lobby", 3);
        const page = await browser!.newPage(`${a.url}/dashboard`);
        await page.setViewport(1100, 1000);
        const rows = await page.waitFor<string[]>(
          `(() => {
          const rows = [...document.querySelectorAll("#nodes tr[data-node]")];
          const cells = rows.map((tr) => [tr.dataset.node, tr.querySelector(".address").textContent,
            tr.querySelector(".connections").textContent, tr.querySelector(".badge").textContent].join(" "));
          return !document.querySelector("#nodes").hidden && rows.length === 2 && cells.join("|").includes(" 2 ok") &&
            cells.sort();
        })()`,
          { timeout: 8000 },
        );
        assert.deepEqual(rows, [`${a.id} ${a.url} (this node) 1 ok`, `${b.id} ${b.url} 2 ok`].sort());
        assert.match(
          await page.evaluate<string>(text("#nodes-summary")),
          /^2 nodes, 3 connections and 1 room across the cluster$/,
        );
        assert.match(await page.evaluate<string>(text("#nodes tr[data-node] .heartbeat")), /^\d+\.\d s ago$/);
        await page.screenshot(`${SCREENSHOTS}dashboard-cluster-1100.png`);
        await page.close();
      } finally {
        await closeAll(members);
        for (const node of nodes) await stopNode(node);
        await redis.stop();
      }
    });
  } finally {
    load?.stop();
    await closeAll(clients);
    await browser?.close();
    await Promise.all([open.shutdown(), guarded.shutdown(), exposed.shutdown()]);
  }
});
