/**
 * Finds the Message-ID of a message as it streams past, and adds one when the header has none
 * (so a replayed copy can be recognised). Only the header block is ever buffered, and at most
 * `maxHeaderBytes` of it: past that the message passes through untouched.
 */
import { randomBytes } from 'node:crypto';

const HEADER_END = /\r?\n\r?\n/;
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
    const head = Buffer.concat(this.#pending, this.#pendingBytes);
    const text = head.toString('latin1');
    // An empty header block: the message starts with the blank line.
    const end = /^\r?\n/.test(text) ? { index: 0, length: 0 } : HEADER_END.exec(text);
    if (!end) {
      if (this.#pendingBytes > this.maxHeaderBytes) return this.#flush([head]);
      return [];
    }
    const headerEnd = end.index === 0 && end.length === 0 ? 0 : end.index + (text[end.index] === '\r' ? 2 : 1);
    const header = text.slice(0, headerEnd);
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
