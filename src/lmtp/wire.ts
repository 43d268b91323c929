/**
 * Byte-level helpers for the backend side of LMTP: a reply line parser and a dot-stuffer.
 *
 * The dot-stuffer is ours rather than nodemailer's DataStream on purpose: DataStream rewrites
 * bare LF and bare CR into CRLF, and storeroute promises that a message reaches the store
 * byte-identical to what postfix sent (a replayed copy is recognised by its bytes). We only add
 * the stuffing dot; every other byte passes as is.
 */
import { parseReply, type Reply } from '../core/replies.js';

const LF = 0x0a;
const DOT = 0x2e;
const DOT_BUF = Buffer.from('.');

/**
 * Stateful RFC 5321 §4.5.2 transparency: a "." is doubled when it starts a line. A line starts
 * after any LF (bare or not), matching how smtp-server and Cyrus lmtpd unstuff (they look at the
 * byte after LF). One instance per message.
 */
export class DotStuffer {
  #atLineStart = true;
  #lastTwo: Buffer = Buffer.from('\r\n');
  #bytes = 0;

  /** Returns the stuffed buffers for `chunk` (usually the chunk itself, no copy). */
  stuff(chunk: Buffer): Buffer[] {
    if (chunk.length === 0) return [];
    this.#bytes += chunk.length;
    const out: Buffer[] = [];
    let from = 0;
    if (this.#atLineStart && chunk[0] === DOT) {
      out.push(DOT_BUF);
    }
    // Buffer.indexOf is a native scan: the per-chunk cost stays tiny when no line starts with ".".
    let at = chunk.indexOf('\n.', 0, 'latin1');
    while (at !== -1) {
      out.push(chunk.subarray(from, at + 1), DOT_BUF);
      from = at + 1;
      at = chunk.indexOf('\n.', at + 1, 'latin1');
    }
    out.push(from === 0 ? chunk : chunk.subarray(from));
    this.#atLineStart = chunk[chunk.length - 1] === LF;
    this.#lastTwo = chunk.length >= 2 ? chunk.subarray(chunk.length - 2)
      : Buffer.concat([this.#lastTwo.subarray(1), chunk]);
    return out;
  }

  /** The terminator: CRLF first when the body did not end with one (never for smtp-server input). */
  end(): Buffer {
    const endsWithCrlf = this.#bytes === 0 || (this.#lastTwo[0] === 0x0d && this.#lastTwo[1] === LF);
    return Buffer.from(endsWithCrlf ? '.\r\n' : '\r\n.\r\n', 'latin1');
  }
}

/** One complete (possibly multi-line) reply: the code, every line's text, and the parsed Reply. */
export interface WireReply {
  code: number;
  lines: string[];
  reply: Reply;
}

/**
 * Splits the backend's byte stream into replies. `250-…` lines accumulate until the `250 …`
 * line. Calls `onReply` once per complete reply, `onError` for a line that is not a reply.
 */
export class ReplyParser {
  #partial = '';
  #lines: string[] = [];
  readonly #maxLine: number;

  constructor(private readonly onReply: (r: WireReply) => void, private readonly onError: (e: Error) => void,
    maxLine = 64 * 1024) {
    this.#maxLine = maxLine;
  }

  feed(chunk: Buffer): void {
    let data = this.#partial + chunk.toString('latin1');
    let nl = data.indexOf('\n');
    while (nl !== -1) {
      const line = data.charCodeAt(nl - 1) === 0x0d ? data.slice(0, nl - 1) : data.slice(0, nl);
      data = data.slice(nl + 1);
      if (!this.#line(line)) return;
      nl = data.indexOf('\n');
    }
    if (data.length > this.#maxLine) {
      this.onError(new Error(`backend reply line longer than ${this.#maxLine} bytes`));
      return;
    }
    this.#partial = data;
  }

  #line(line: string): boolean {
    const m = /^(\d{3})([ -]?)(.*)$/s.exec(line);
    if (!m) {
      this.onError(new Error(`malformed backend reply line ${JSON.stringify(line.slice(0, 200))}`));
      return false;
    }
    const code = Number(m[1]);
    const text = m[3] ?? '';
    this.#lines.push(text);
    if (m[2] === '-') return true;
    const lines = this.#lines;
    this.#lines = [];
    // A multi-line reply's verdict (code, enhanced code, text) is its last line: Cyrus lmtpd
    // explains a missing mailbox in two "550-" lines of prose and puts "5.1.1 User unknown" on
    // the last one. Taking the first would read it as 550 5.0.0 and miss the 5.1.1 mask (a bounce).
    this.onReply({ code, lines, reply: parseReply(code, lines[lines.length - 1] ?? '') });
    return true;
  }
}
