/**
 * Finds the Message-ID of a message as it streams past, and adds one when the header has none
 * (so a replayed copy can be recognised). Only the header block is ever buffered, and at most
 * `maxHeaderBytes` of it: past that the message passes through untouched.
 */
import { randomBytes } from 'node:crypto';

const MESSAGE_ID = /^message-id:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)/im;

export class HeaderScanner {
  /** The Message-ID found or added (null: none, or the header was too long to look at). */
  messageId: string | null = null;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #done = false;

  constructor(private readonly addDomain: string | null, private readonly maxHeaderBytes = 64 * 1024) {}

  /** Bytes to forward for `chunk` (empty while the header block is still being collected). */
  push(chunk: Buffer): Buffer[] {
    if (this.#done) return [chunk];
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    // Usually the whole header is in the first chunk: no copy then. The body is never decoded:
    // this runs for every message the journal records, and a 64 KiB chunk decoded to text and
    // searched with a regex cost ~30 µs.
    const head = this.#pending.length === 1 ? chunk : Buffer.concat(this.#pending, this.#pendingBytes);
    const headerEnd = findHeaderEnd(head);
    if (headerEnd === -1) {
      if (this.#pendingBytes > this.maxHeaderBytes) return this.#flush([head]);
      return [];
    }
    const header = head.toString('latin1', 0, headerEnd);
    const found = MESSAGE_ID.exec(header);
    if (found) {
      this.messageId = (found[1] ?? '').replace(/\r?\n[ \t]/g, ' ').trim() || null;
      return this.#flush([head]);
    }
    if (!this.addDomain) return this.#flush([head]);
    this.messageId = `<${Date.now().toString(36)}.${randomBytes(9).toString('base64url')}@${this.addDomain}>`;
    const line = Buffer.from(`Message-ID: ${this.messageId}\r\n`, 'latin1');
    return this.#flush([head.subarray(0, headerEnd), line, head.subarray(headerEnd)]);
  }

  /** Whatever is still held at the end of the message (a header with no body). */
  end(): Buffer[] {
    if (this.#done) return [];
    return this.#flush(this.#pending.length ? [Buffer.concat(this.#pending, this.#pendingBytes)] : []);
  }

  #flush(out: Buffer[]): Buffer[] {
    this.#done = true;
    this.#pending = [];
    this.#pendingBytes = 0;
    return out.filter((b) => b.length > 0);
  }
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Offset of the blank line that ends the header block (0 when the message starts with it), or -1
 * while it has not arrived. CRLF and bare LF line ends are both accepted, as before.
 */
export function findHeaderEnd(buf: Buffer): number {
  if (buf[0] === LF || (buf[0] === CR && buf[1] === LF)) return 0;
  const crlf = buf.indexOf('\n\r\n', 0, 'latin1');
  // A bare-LF end only counts before the CRLF one: in CRLF mail (nearly all) an unbounded search
  // would scan the whole first chunk, body included, for a "\n\n" that is not there.
  const lf = (crlf === -1 ? buf : buf.subarray(0, crlf + 1)).indexOf('\n\n', 0, 'latin1');
  const at = crlf === -1 ? lf : lf === -1 ? crlf : Math.min(crlf, lf);
  return at === -1 ? -1 : at + 1;
}
