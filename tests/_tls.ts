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
  made ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "hubbub-tls-" });
    try {
      const output = await new Deno.Command("openssl", {
        args: [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=localhost",
          "-addext",
          "subjectAltName=DNS:localhost,IP:127.0.0.1",
          // openssl marks a self-signed certificate as a CA by default; rustls then refuses it as a server
          // certificate (CaUsedAsEndEntity), so say it is a leaf for TLS servers.
          "-addext",
          "basicConstraints=critical,CA:FALSE",
          "-addext",
          "extendedKeyUsage=serverAuth",
          "-keyout",
          `${dir}/key.pem`,
          "-out",
          `${dir}/cert.pem`,
        ],
        stdout: "null",
        stderr: "piped",
      }).output();
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
  })();
  return made;
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
