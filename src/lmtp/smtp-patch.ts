/**
 * Runtime patches of smtp-server's private SMTPConnection, for the pinned version only
 * (LIBRARIES.md; covered by wire tests in test/lmtp/smtp-patch.test.ts):
 *
 * 1. `send`: smtp-server derives the enhanced status code from the 3-digit code by a fixed table,
 *    so a backend's `550 5.7.1 …` would go out as `550 5.1.1 5.7.1 …`. A reply text that already
 *    starts with an enhanced code of the same class is sent as is. We relay backends' exact codes.
 *    Replies sent within one tick are also corked into one write (LMTP's per-recipient finals).
 * 2. `init`: every connection waits a hard-coded 100 ms before the greeting (an early-talker check
 *    that matters for SMTP on the internet, not for postfix on a trusted LMTP hop). At one
 *    connection per message that caps a proxy near 100 messages/s. We greet at once.
 * 3. `SMTPStream._feedDataStream` (DATA mode): a copy of every chunk and a per-byte JS loop
 *    replaced by an indexOf scan over sub-arrays (smtp-data-mode.ts says why and what is kept).
 * 4. `handler_QUIT`: after the 221 the socket is half-closed and kept reading until the client's
 *    FIN, which clients commonly answer with a reset (smtp-source does, every connection): a
 *    read, an ECONNRESET error built with its stack, smtp-server's error path and log line, per
 *    connection. QUIT is the last command (RFC 5321 §4.1.1.10: whatever follows it is discarded
 *    unparsed already), so once the 221 and our FIN are handed to the kernel the socket is closed.
 *
 * 5. `_parseAddressCommand`: every MAIL and RCPT line goes through splits, regular expressions and
 *    a punycode pass (~3 µs each here, ~4 % of the proxy's CPU at five recipients a message). The
 *    common shape, `RCPT TO:<dot-atom@ascii.domain>` with no parameters, is answered directly
 *    (address-parse.ts: which lines, and why the answer is the same); anything else goes to the
 *    original. A differential test holds the two to the same answers.
 *
 * Applying is idempotent. A different smtp-server version refuses to start rather than run with
 * patches written against code it does not have.
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { feedDataStream, resetDataModeState } from './smtp-data-mode.js';
import { parseSimpleAddressCommand } from './address-parse.js';
import { tooManyClients } from './reply.js';

export const PATCHED_SMTP_SERVER_VERSION = '3.21.6';

const PATCHED = Symbol.for('storeroute.smtp-server.patched');
/** smtp-server's own DATA-mode parser, kept for the differential test. */
const ORIGINAL_FEED = Symbol.for('storeroute.smtp-server.original-feed');
/** smtp-server's own MAIL/RCPT parser, kept for the differential test. */
const ORIGINAL_PARSE = Symbol.for('storeroute.smtp-server.original-parse-address');
const ENHANCED_PREFIX = /^([245])\.\d{1,3}\.\d{1,3} /;

interface ConnectionInternals {
  send(code: number, data: unknown, context?: unknown): void;
  init(): void;
  _setListeners(cb: () => void): void;
  connectionReady(next?: () => void): void;
  _server: { options: { maxClients?: number }; connections: Set<unknown> };
  name: string;
  _socket?: import('node:net').Socket;
  _storerouteCorked?: boolean;
  handler_QUIT(command: unknown, callback: () => void): void;
  _parseAddressCommand(name: string, command: unknown): unknown;
}

export function smtpServerVersion(): string {
  const require = createRequire(import.meta.url);
  const pkg = JSON.parse(readFileSync(require.resolve('smtp-server/package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

export function applySmtpServerPatches(): void {
  const proto = SMTPConnection.prototype as unknown as ConnectionInternals & { [PATCHED]?: boolean;
    [ORIGINAL_PARSE]?: ConnectionInternals['_parseAddressCommand'] };
  if (proto[PATCHED]) return;
  const version = smtpServerVersion();
  const initSource = String(proto.init);
  const stream = SMTPStream.prototype as SMTPStream & { [ORIGINAL_FEED]?: SMTPStream['_feedDataStream'] };
  if (version !== PATCHED_SMTP_SERVER_VERSION || typeof proto._setListeners !== 'function'
    || typeof proto.connectionReady !== 'function' || !initSource.includes('connectionReady(), 100')
    || !String(stream._feedDataStream).includes('Buffer.concat([this._lastBytes, chunk]')
    || typeof stream._endDataMode !== 'function' || typeof stream._countDataBytes !== 'function'
    || !/this\.send\(221, 'Bye'\);\s*this\.close\(\);\s*callback\(\);/.test(String(proto.handler_QUIT))
    || !String(proto._parseAddressCommand).includes("address = [localPart, '@', punycode.toUnicode(domain)].join('')")) {
    throw new Error(`storeroute patches smtp-server ${PATCHED_SMTP_SERVER_VERSION} (private SMTPConnection.send/init); `
      + `found ${version}: re-verify src/lmtp/smtp-patch.ts against it and pin the new version`);
  }

  const originalSend = proto.send;
  proto.send = function send(this: ConnectionInternals, code: number, data: unknown, context?: unknown): void {
    // Replies sent in one tick (LMTP's per-recipient finals) leave in one segment, not one syscall each.
    const socket = this._socket;
    if (socket && !this._storerouteCorked && !socket.destroyed) {
      this._storerouteCorked = true;
      socket.cork();
      process.nextTick(() => {
        this._storerouteCorked = false;
        socket.uncork();
      });
    }
    if (typeof data === 'string' && context !== false) {
      const m = ENHANCED_PREFIX.exec(data);
      if (m && m[1] === String(code)[0]) return originalSend.call(this, code, data, false);
    }
    return originalSend.call(this, code, data, context);
  };

  proto.init = function init(this: ConnectionInternals): void {
    this._setListeners(() => {
      const max = this._server.options.maxClients;
      if (max && this._server.connections.size > max) {
        const refusal = tooManyClients(this.name);
        return this.send(refusal.code, refusal.text, false);
      }
      this.connectionReady();
    });
  };

  const originalQuit = proto.handler_QUIT;
  proto.handler_QUIT = function handlerQuit(this: ConnectionInternals, command: unknown, callback: () => void): void {
    originalQuit.call(this, command, callback); // 221, end() (our FIN after it), stop parsing
    const socket = this._socket;
    if (!socket || socket.destroyed) return;
    // 'finish': the 221 and the FIN are in the kernel's hands; closing does not discard them.
    if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
  };

  const originalStart = stream.startDataMode;
  stream[ORIGINAL_FEED] = stream._feedDataStream;
  stream.startDataMode = function startDataMode(this: SMTPStream, maxBytes?: number | string | null) {
    const dataStream = originalStart.call(this, maxBytes);
    resetDataModeState(this);
    return dataStream;
  };
  stream._feedDataStream = feedDataStream;

  const originalParse = proto._parseAddressCommand;
  proto[ORIGINAL_PARSE] = originalParse;
  proto._parseAddressCommand = function parseAddressCommand(this: ConnectionInternals, name: string, command: unknown) {
    return parseSimpleAddressCommand(name, command) ?? originalParse.call(this, name, command);
  };
  proto[PATCHED] = true;
}

/** smtp-server's unpatched DATA-mode parser (for tests that compare both on the same input). */
export function originalFeedDataStream(): SMTPStream['_feedDataStream'] {
  const f = (SMTPStream.prototype as SMTPStream & { [ORIGINAL_FEED]?: SMTPStream['_feedDataStream'] })[ORIGINAL_FEED];
  if (!f) throw new Error('smtp-server patches not applied');
  return f;
}

/** smtp-server's unpatched MAIL/RCPT parser, called on a connection (for the differential test). */
export function originalParseAddressCommand(): (this: unknown, name: string, command: unknown) => unknown {
  const f = (SMTPConnection.prototype as unknown as { [ORIGINAL_PARSE]?: ConnectionInternals['_parseAddressCommand'] })[ORIGINAL_PARSE];
  if (!f) throw new Error('smtp-server patches not applied');
  return f as (this: unknown, name: string, command: unknown) => unknown;
}
