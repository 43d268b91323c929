/**
 * The one production logger: `serve` (main.ts) and the slot agent (cli/agent.ts, which must not
 * load main.ts and with it the whole proxy) build it here, so both write the same JSON lines with
 * the same redactions.
 */
import { pino, type Logger } from 'pino';
import { LineBatcher } from './log-batch.js';

/** Log paths that must never be written, whatever a component puts in a log line. */
const REDACT = ['password', 'pass', 'token', 'authPass', '*.password', '*.pass', '*.token', 'headers["auth-pass"]', 'req.headers["auth-pass"]', 'req.headers.authorization'];

/**
 * JSON lines on stdout, written asynchronously and in batches. A write per delivered recipient
 * went through libuv's thread pool (a futex hand-off and an eventfd wake-up each): with
 * bench/lmtp.ts at 4 KB × 10 sessions that was about a quarter of the proxy's CPU per message
 * (0.40 → 0.31 ms/msg with lines gathered to 4 KB before each write). The lines are gathered by
 * LineBatcher (core/log-batch.ts says why not by sonic-boom's own minLength). A line therefore
 * waits for 4 KB of company or for the next flush tick, at most LOG_FLUSH_MS: fine for `tail -f`
 * at 3 a.m. What is buffered is written when the process exits, including through
 * process.exit() in handleSignals; a kill -9 loses at most the last tick's lines.
 */
export const LOG_BATCH_BYTES = 4096;
export const LOG_FLUSH_MS = 500;

/** `config` is the config file's `log` section. */
export function createLogger(config: { level: string }, dest: number | string = 1): Logger {
  const stream = new LineBatcher(pino.destination({ dest, sync: false }), LOG_BATCH_BYTES);
  // unref: the tick never keeps a stopping process alive; exit flushes the rest. flush() throws
  // once the stream is destroyed (stdout gone): losing log lines must never stop mail.
  setInterval(() => {
    try {
      stream.flush();
    } catch {
      /* nothing left to write to */
    }
  }, LOG_FLUSH_MS).unref();
  return pino(
    { level: config.level, base: { pid: process.pid }, redact: { paths: REDACT, censor: '[redacted]' } },
    stream,
  );
}

