/**
 * A minimal Chrome DevTools Protocol client for the browser tests: launches headless Chromium, talks CDP over Deno's
 * `WebSocket`, opens tabs as flattened target sessions, and cleans up after itself (process, socket, temp profile) so
 * Deno's op and resource sanitizers pass.
 *
 * @module
 */

/** Where Chromium is looked for when `CHROMIUM` is not set, in order. */
const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
/** How long Chromium gets to print its DevTools URL; a cold start on a slow CI box takes a few seconds. */
const LAUNCH_TIMEOUT_MS = 30_000;
/** How long one CDP command may take before the test fails instead of hanging. */
const COMMAND_TIMEOUT_MS = 30_000;
/** How long `Browser.close` gets before the process is killed. */
const EXIT_TIMEOUT_MS = 5_000;

/** The Chromium executable to use: `$CHROMIUM` if set, else the first of the usual paths that exists; `null` if none. */
export function chromiumPath(): string | null {
  const fromEnv = Deno.env.get("CHROMIUM");
  for (const path of fromEnv ? [fromEnv] : CANDIDATES) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not there: try the next one.
    }
  }
  return null;
}

/** A CDP event as it arrives: `sessionId` is set for events of an attached tab. */
export interface CdpEvent {
  /** The event name, e.g. `Page.loadEventFired`. */
  method: string;
  /** The event's parameters. */
  params: Record<string, unknown>;
  /** The flattened session the event belongs to, if any. */
  sessionId?: string;
}

/** Options for {@linkcode Browser.launch}. */
export interface LaunchOptions {
  /** The Chromium executable. @default {chromiumPath()} */
  path?: string;
  /** Extra command-line flags, after the defaults. @default {[]} */
  args?: string[];
}

/** Options for {@linkcode Page.waitFor}. */
export interface WaitOptions {
  /** Give up after this many milliseconds. @default {10_000} */
  timeout?: number;
  /** Poll this often, in milliseconds. @default {50} */
  interval?: number;
}

type Pending = { method: string; resolve: (value: unknown) => void; reject: (error: Error) => void };

/** Resolves after `ms`; awaited, so no timer outlives a test. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Races `promise` against a timer that rejects with `message`; the timer is always cleared. */
async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One headless Chromium process and the CDP connection to it. Always {@linkcode Browser.close} it. */
export class Browser {
  #child: Deno.ChildProcess;
  #socket: WebSocket;
  #socketClosed: Promise<void>;
  #stderr: StderrPump;
  #userDataDir: string;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #listeners = new Set<(event: CdpEvent) => void>();
  #closed = false;

  private constructor(
    child: Deno.ChildProcess,
    socket: WebSocket,
    stderr: StderrPump,
    userDataDir: string,
  ) {
    this.#child = child;
    this.#socket = socket;
    this.#stderr = stderr;
    this.#userDataDir = userDataDir;
    this.#socketClosed = new Promise((resolve) => socket.addEventListener("close", () => resolve()));
    socket.addEventListener("message", (event) => this.#receive(String(event.data)));
    socket.addEventListener("close", () => this.#failPending("The DevTools connection closed"));
  }

  /** Launches headless Chromium with a fresh temporary profile and connects to its DevTools endpoint. */
  static async launch(options: LaunchOptions = {}): Promise<Browser> {
    const path = options.path ?? chromiumPath();
    if (path === null) {
      throw new Error("Chromium not found: install it with `apt-get install -y chromium` or set CHROMIUM=/path");
    }
    const userDataDir = await Deno.makeTempDir({ prefix: "hubbub-chromium-" });
    const child = new Deno.Command(path, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--remote-debugging-port=0",
        `--user-data-dir=${userDataDir}`,
        ...(options.args ?? []),
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const { url, stderr } = pumpStderr(child.stderr);
    let socket: WebSocket | undefined;
    try {
      const endpoint = await withTimeout(url, LAUNCH_TIMEOUT_MS, `Chromium printed no DevTools URL: ${path}`);
      socket = new WebSocket(endpoint);
      const opened = new Promise<void>((resolve, reject) => {
        socket!.addEventListener("open", () => resolve());
        socket!.addEventListener("error", () => reject(new Error(`Cannot connect to DevTools: ${endpoint}`)));
      });
      await withTimeout(opened, LAUNCH_TIMEOUT_MS, `DevTools did not answer: ${endpoint}`);
      return new Browser(child, socket, stderr, userDataDir);
    } catch (error) {
      if (socket && socket.readyState !== WebSocket.CLOSED) {
        const closed = new Promise((resolve) => socket!.addEventListener("close", resolve));
        socket.close();
        await closed;
      }
      await killAndReap(child, stderr);
      await removeDir(userDataDir);
      throw new Error(`${(error as Error).message}\n${stderr.tail.join("\n")}`);
    }
  }

  /** Sends one CDP command (to a tab when `options.sessionId` is set) and resolves with its result. */
  send<T = Record<string, unknown>>(
    method: string,
    params: Record<string, unknown> = {},
    options: { sessionId?: string } = {},
  ): Promise<T> {
    if (this.#closed || this.#socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error(`The browser is closed, cannot send: ${method}`));
    }
    const id = this.#nextId++;
    const result = new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { method, resolve: resolve as (value: unknown) => void, reject });
    });
    this.#socket.send(JSON.stringify({ id, method, params, ...options }));
    return withTimeout(result, COMMAND_TIMEOUT_MS, `CDP command timed out: ${method}`).finally(() => {
      this.#pending.delete(id);
    });
  }

  /** Calls `listener` for every CDP event until the returned function is called. */
  onEvent(listener: (event: CdpEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves with the params of the next `method` event (of `options.sessionId`, if given). */
  waitForEvent(
    method: string,
    options: { sessionId?: string; timeout?: number } = {},
  ): Promise<Record<string, unknown>> {
    let off = () => {};
    const event = new Promise<Record<string, unknown>>((resolve) => {
      off = this.onEvent((e) => {
        if (e.method === method && (options.sessionId === undefined || e.sessionId === options.sessionId)) {
          resolve(e.params);
        }
      });
    });
    return withTimeout(event, options.timeout ?? COMMAND_TIMEOUT_MS, `No ${method} event arrived`).finally(off);
  }

  /** Opens a new tab (its own window, so it is never throttled as a background tab) and loads `url` in it. */
  async newPage(url: string): Promise<Page> {
    const { targetId } = await this.send<{ targetId: string }>("Target.createTarget", {
      url: "about:blank",
      newWindow: true,
    });
    const { sessionId } = await this.send<{ sessionId: string }>("Target.attachToTarget", { targetId, flatten: true });
    const page = new Page(this, targetId, sessionId);
    await page.send("Page.enable");
    await page.send("Runtime.enable");
    await page.goto(url);
    return page;
  }

  /** Closes Chromium (gracefully, else by SIGKILL), awaits the process and the socket, and deletes the profile. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const status = this.#child.status;
    if (this.#socket.readyState === WebSocket.OPEN) {
      this.send("Browser.close").catch(() => {}); // The process exits and the socket drops; no reply is needed.
    }
    this.#closed = true;
    try {
      await withTimeout(status, EXIT_TIMEOUT_MS, "Chromium did not exit");
    } catch {
      await killAndReap(this.#child, this.#stderr);
    }
    if (this.#socket.readyState !== WebSocket.CLOSED) this.#socket.close();
    await this.#socketClosed;
    this.#failPending("The browser closed");
    try {
      await withTimeout(this.#stderr.done, EXIT_TIMEOUT_MS, "Chromium's stderr stayed open");
    } catch {
      await this.#stderr.cancel(); // A lingering helper process still holds the pipe: stop reading it.
    }
    await removeDir(this.#userDataDir);
  }

  #receive(text: string): void {
    const message = JSON.parse(text) as {
      id?: number;
      result?: unknown;
      error?: { message: string; data?: string };
      method?: string;
      params?: Record<string, unknown>;
      sessionId?: string;
    };
    if (message.id !== undefined) {
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      if (message.error) {
        const detail = message.error.data ? ` (${message.error.data})` : "";
        pending.reject(new Error(`CDP ${pending.method} failed: ${message.error.message}${detail}`));
      } else {
        pending.resolve(message.result ?? {});
      }
      return;
    }
    if (message.method) {
      const event: CdpEvent = { method: message.method, params: message.params ?? {} };
      if (message.sessionId) event.sessionId = message.sessionId;
      for (const listener of [...this.#listeners]) listener(event);
    }
  }

  #failPending(reason: string): void {
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      pending.reject(new Error(`${reason}: ${pending.method}`));
    }
  }
}

/** One tab, driven through its flattened CDP session. */
export class Page {
  /** The browser this tab belongs to. */
  readonly browser: Browser;
  /** The CDP target id of the tab. */
  readonly targetId: string;
  /** The flattened CDP session attached to the tab. */
  readonly sessionId: string;

  /** Wraps an attached tab; use {@linkcode Browser.newPage} rather than this. */
  constructor(browser: Browser, targetId: string, sessionId: string) {
    this.browser = browser;
    this.targetId = targetId;
    this.sessionId = sessionId;
  }

  /** Sends one CDP command to this tab. */
  send<T = Record<string, unknown>>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    return this.browser.send<T>(method, params, { sessionId: this.sessionId });
  }

  /** Navigates to `url` and waits for its load event. */
  async goto(url: string): Promise<void> {
    const loaded = this.browser.waitForEvent("Page.loadEventFired", { sessionId: this.sessionId });
    const { errorText } = await this.send<{ errorText?: string }>("Page.navigate", { url });
    if (errorText) {
      loaded.catch(() => {});
      throw new Error(`Navigation failed: ${errorText}: ${url}`);
    }
    await loaded;
  }

  /** Evaluates `expression` in the page (awaiting a promise it returns) and resolves with its JSON value. */
  async evaluate<T = unknown>(expression: string): Promise<T> {
    const { result, exceptionDetails } = await this.send<{
      result: { value?: unknown };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    }>("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true, userGesture: true });
    if (exceptionDetails) {
      throw new Error(`Page threw: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
    }
    return result.value as T;
  }

  /** Polls `expression` until it is truthy and resolves with that value; rejects with the last value on timeout. */
  async waitFor<T = unknown>(expression: string, options: WaitOptions = {}): Promise<T> {
    const { timeout = 10_000, interval = 50 } = options;
    const deadline = Date.now() + timeout;
    let last: unknown;
    while (true) {
      last = await this.evaluate(expression);
      if (last) return last as T;
      if (Date.now() > deadline) {
        throw new Error(`Timed out after ${timeout} ms waiting for ${expression}, last value: ${JSON.stringify(last)}`);
      }
      await sleep(interval);
    }
  }

  /** Types `text` into the focused element, as an IME would (one `input` event). */
  async insertText(text: string): Promise<void> {
    await this.send("Input.insertText", { text });
  }

  /** Presses and releases Enter on the focused element. */
  async pressEnter(): Promise<void> {
    const key = { key: "Enter", code: "Enter", windowsVirtualKeyCode: 13, nativeVirtualKeyCode: 13 };
    await this.send("Input.dispatchKeyEvent", { type: "keyDown", text: "\r", unmodifiedText: "\r", ...key });
    await this.send("Input.dispatchKeyEvent", { type: "keyUp", ...key });
  }

  /** Sets the viewport size in CSS pixels (device scale 1). */
  async setViewport(width: number, height: number): Promise<void> {
    await this.send("Emulation.setDeviceMetricsOverride", { width, height, deviceScaleFactor: 1, mobile: false });
  }

  /** Emulates `prefers-color-scheme`. */
  async setColorScheme(scheme: "light" | "dark"): Promise<void> {
    await this.send("Emulation.setEmulatedMedia", { features: [{ name: "prefers-color-scheme", value: scheme }] });
  }

  /** Captures the viewport as PNG, writes it to `path` (creating its directory) and returns the bytes. */
  async screenshot(path: string): Promise<Uint8Array> {
    const { data } = await this.send<{ data: string }>("Page.captureScreenshot", { format: "png" });
    const png = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const slash = path.lastIndexOf("/");
    if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
    await Deno.writeFile(path, png);
    return png;
  }

  /** Closes the tab. */
  async close(): Promise<void> {
    await this.browser.send("Target.closeTarget", { targetId: this.targetId });
  }
}

type StderrPump = { done: Promise<void>; cancel: () => Promise<void>; tail: string[] };

/** Drains Chromium's stderr (so it never blocks on a full pipe), keeps the last lines, and finds the DevTools URL. */
function pumpStderr(stream: ReadableStream<Uint8Array>): { url: Promise<string>; stderr: StderrPump } {
  const tail: string[] = [];
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let found: (url: string) => void = () => {};
  let missing: (error: Error) => void = () => {};
  const url = new Promise<string>((resolve, reject) => {
    found = resolve;
    missing = reject;
  });
  url.catch(() => {}); // Launch awaits it; this only stops an unhandled rejection if launch already gave up.
  const done = (async () => {
    let buffer = "";
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        const lines = buffer.split("\n");
        buffer = lines.pop() ?? "";
        for (const line of lines) {
          tail.push(line);
          if (tail.length > 40) tail.shift();
          const match = /DevTools listening on (ws:\/\/\S+)/.exec(line);
          if (match) found(match[1]);
        }
      }
    } catch {
      // Cancelled or broken pipe: nothing more to read.
    } finally {
      missing(new Error("Chromium exited before printing its DevTools URL"));
    }
  })();
  return { url, stderr: { done, tail, cancel: () => reader.cancel().catch(() => {}) } };
}

async function killAndReap(child: Deno.ChildProcess, stderr: StderrPump): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already exited.
  }
  await child.status;
  try {
    await withTimeout(stderr.done, EXIT_TIMEOUT_MS, "Chromium's stderr stayed open");
  } catch {
    await stderr.cancel();
  }
}

/** Removes Chromium's profile; retried because helper processes may still be writing to it for a moment. */
async function removeDir(path: string): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      await Deno.remove(path, { recursive: true });
      return;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      if (attempt >= 10) throw error;
      await sleep(100);
    }
  }
}
