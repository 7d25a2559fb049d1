/**
 * Test helpers for TLS: a throwaway self-signed certificate made with `openssl` at test time, and a raw WebSocket
 * handshake over `Deno.connectTls` (Deno's `WebSocket` cannot be told to trust an extra CA in-process).
 *
 * @module
 */

/** A PEM certificate and its private key. */
export interface TestCertificate {
  /** The self-signed certificate, PEM; also the CA a client must trust. */
  readonly cert: string;
  /** Its private key, PEM (PKCS#8). */
  readonly key: string;
}

let made: Promise<TestCertificate> | undefined;

/**
 * Makes (once per process) a self-signed P-256 certificate for `localhost` and `127.0.0.1`, valid for one day.
 * Throws when `openssl` is missing or fails, with its stderr.
 */
export function selfSignedCertificate(): Promise<TestCertificate> {
  made ??= certificateFromCommand(
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost " +
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 " +
      // openssl marks a self-signed certificate as a CA by default; rustls then refuses it as a server certificate
      // (CaUsedAsEndEntity), so say it is a leaf for TLS servers.
      "-addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth -keyout key.pem -out cert.pem",
  );
  return made;
}

/**
 * The usual one-liner without the two `-addext` flags that make a server certificate: OpenSSL 3 marks what it makes
 * `CA:TRUE`, which Node, Python, curl and Chromium accept and rustls (Deno) refuses. Made once per process.
 */
export const CA_TRUE_COMMAND = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost " +
  "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout key.pem -out cert.pem";

let madeCaTrue: Promise<TestCertificate> | undefined;

/** The certificate {@linkcode CA_TRUE_COMMAND} makes (once per process). */
export function caTrueCertificate(): Promise<TestCertificate> {
  madeCaTrue ??= certificateFromCommand(CA_TRUE_COMMAND);
  return madeCaTrue;
}

/**
 * Runs `command`, an `openssl req` line as a user would paste it (words separated by spaces, no quotes) that writes
 * `key.pem` and `cert.pem`, in a temporary directory, and returns what it made. Throws when `openssl` fails, with
 * its stderr.
 */
export async function certificateFromCommand(command: string): Promise<TestCertificate> {
  const [program, ...args] = command.trim().split(/\s+/);
  if (program !== "openssl") throw new Error(`Expected an openssl command: ${command}`);
  const dir = await Deno.makeTempDir({ prefix: "hubbub-tls-" });
  try {
    const output = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" }).output();
    if (!output.success) {
      throw new Error(`openssl could not make a test certificate: ${new TextDecoder().decode(output.stderr)}`);
    }
    return {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The `basicConstraints` line of `certificate` as openssl prints it, e.g. `CA:TRUE`. */
export async function basicConstraints(certificate: TestCertificate): Promise<string> {
  const child = new Deno.Command("openssl", {
    args: ["x509", "-noout", "-ext", "basicConstraints"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(certificate.cert));
  await writer.close();
  const { stdout } = await child.output();
  return new TextDecoder().decode(stdout).split("\n")[1]?.trim() ?? "";
}

/** Writes `certificate` into a new temporary directory; returns the file paths and a function removing them. */
export async function writeCertificate(
  certificate: TestCertificate,
): Promise<{ certFile: string; keyFile: string; remove: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "hubbub-tls-" });
  await Deno.writeTextFile(`${dir}/cert.pem`, certificate.cert);
  await Deno.writeTextFile(`${dir}/key.pem`, certificate.key);
  return {
    certFile: `${dir}/cert.pem`,
    keyFile: `${dir}/key.pem`,
    remove: () => Deno.remove(dir, { recursive: true }),
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Opens a TLS connection to `hostname:port` (the name the certificate is checked against) trusting `caCerts` (none:
 * only the system roots), sends a WebSocket upgrade for `path`, and returns the connection with the response head.
 * Throws when the TLS handshake fails.
 */
export async function tlsUpgrade(
  port: number,
  path: string,
  options: { caCerts?: string[]; hostname?: string } = {},
): Promise<{ conn: Deno.TlsConn; head: string }> {
  const hostname = options.hostname ?? "127.0.0.1";
  const conn = await Deno.connectTls({ hostname, port, caCerts: options.caCerts });
  try {
    await conn.handshake();
    await conn.write(encoder.encode(
      `GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ));
    let head = "";
    const buffer = new Uint8Array(4096);
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      head += decoder.decode(buffer.subarray(0, n));
    }
    return { conn, head };
  } catch (error) {
    conn.close();
    throw error;
  }
}
