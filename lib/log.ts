/**
 * Leveled logging, as text or one JSON object per line, to stderr.
 *
 * Never log a message payload above `debug`, a token, or a query string: callers pass paths, not URLs.
 *
 * @module
 */

/** Log levels, lowest first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];
/** Output formats. */
export const LOG_FORMATS = ["text", "json"] as const;
/** One of {@linkcode LOG_FORMATS}. */
export type LogFormat = typeof LOG_FORMATS[number];

/** Structured fields attached to one log line. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/** What the hub and servers log through. */
export interface Logger {
  /** Whether a line at `level` would be written; lets callers skip building fields. */
  enabled(level: LogLevel): boolean;
  /** Writes one line at `level` when enabled. */
  log(level: LogLevel, message: string, fields?: LogFields): void;
}

/** Options for {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Lowest level written. @default {"info"} */
  level?: LogLevel;
  /** `text` for people, `json` for log pipelines. @default {"text"} */
  format?: LogFormat;
  /** Where lines go. @default {console.error} */
  write?: (line: string) => void;
}

/**
 * Creates a logger writing to stderr (or `options.write`).
 *
 * @example
 * ```ts
 * import { createLogger } from "./log.ts";
 * import assert from "node:assert/strict";
 * const lines: string[] = [];
 * const log = createLogger({ format: "json", write: (line) => lines.push(line) });
 * log.log("info", "client connected", { id: 1 });
 * assert.equal(JSON.parse(lines[0]).msg, "client connected");
 * ```
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = LOG_LEVELS.indexOf(options.level ?? "info");
  const format = options.format ?? "text";
  const write = options.write ?? ((line: string) => console.error(line));
  return {
    enabled: (level) => LOG_LEVELS.indexOf(level) >= min,
    log(level, message, fields) {
      if (LOG_LEVELS.indexOf(level) < min) return;
      const time = new Date().toISOString();
      if (format === "json") {
        write(JSON.stringify({ time, level, msg: message, ...fields }));
        return;
      }
      let line = `${time} ${level.toUpperCase().padEnd(5)} ${message}`;
      for (const key in fields) {
        const value = fields[key];
        if (value !== undefined) line += ` ${key}=${typeof value === "string" ? JSON.stringify(value) : value}`;
      }
      write(line);
    },
  };
}

/** A logger that writes nothing, for tests and embedding. */
export const SILENT_LOGGER: Logger = { enabled: () => false, log() {} };
