/**
 * Spawning the real `main.ts` for CLI tests.
 *
 * @module
 */

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;

/** Runs `main.ts` with `args` to completion; returns exit code, stdout and stderr. */
export async function runMain(
  args: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--unstable-net", MAIN, ...args],
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  return { code, stdout: new TextDecoder().decode(stdout), stderr: new TextDecoder().decode(stderr) };
}

/** A server process started from the CLI, with the port it printed. */
export interface ServerProcess {
  /** The child process. */
  readonly child: Deno.ChildProcess;
  /** The port it listens on, parsed from its startup line. */
  readonly port: number;
  /** Everything it printed on stdout up to the startup line. */
  readonly banner: string;
  /** Resolves with its exit status and the rest of stdout/stderr once it exits. */
  readonly exited: Promise<{ code: number; stdout: string; stderr: string }>;
}

/**
 * Starts the server from the command line (`deno run main.ts`, or `deno task start` with `viaTask`) on a free port
 * of 127.0.0.1 and waits for its startup line.
 */
export async function startMain(
  args: string[] = [],
  options: { viaTask?: boolean; env?: Record<string, string>; maxOpenFiles?: number } = {},
): Promise<ServerProcess> {
  const command = options.maxOpenFiles !== undefined
    ? new Deno.Command("bash", {
      // A low file-descriptor limit for this server only: `exec` keeps the pid, so signals reach Deno itself.
      args: [
        "-c",
        `ulimit -n ${options.maxOpenFiles} && exec "$0" "$@"`,
        Deno.execPath(),
        "run",
        "--allow-all",
        "--unstable-net",
        MAIN,
        "--hostname",
        "127.0.0.1",
        "--port",
        "0",
        ...args,
      ],
      env: options.env,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    })
    : options.viaTask
    ? new Deno.Command(Deno.execPath(), {
      args: ["task", "start", "--hostname", "127.0.0.1", ...args],
      cwd: ROOT,
      env: { PORT: "0", ...options.env },
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    })
    : new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--unstable-net", MAIN, "--hostname", "127.0.0.1", "--port", "0", ...args],
      env: options.env,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    });
  const child = command.spawn();
  const decoder = new TextDecoder();
  const reader = child.stdout.getReader();
  let banner = "";
  let match: RegExpExecArray | null = null;
  while (!(match = /listening on https?:\/\/[^:]+:(\d+)/.exec(banner))) {
    const { value, done } = await reader.read();
    if (done) {
      const { stderr } = await child.output().catch(() => ({ stderr: new Uint8Array() }));
      throw new Error(`Server exited before listening: ${banner}${decoder.decode(stderr)}`);
    }
    banner += decoder.decode(value);
  }
  const stderrText = new Response(child.stderr).text();
  const exited = (async () => {
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += decoder.decode(value);
    }
    const status = await child.status;
    return { code: status.code, stdout: rest, stderr: await stderrText };
  })();
  return { child, port: Number(match[1]), banner, exited };
}
