/**
 * A replacement for smtp-server's `SMTPStream.prototype._feedDataStream` (DATA mode: dot
 * unstuffing and the end-of-data search), applied by smtp-patch.ts to the pinned version only.
 *
 * Why: the original joins the 4 bytes it held back from the previous chunk with every new chunk
 * (`Buffer.concat`, a full copy of each chunk) and then looks at every byte in a JS loop. Per
 * message byte that is one copy, one more buffer for the garbage collector to find (the copies
 * doubled the proxy's peak memory on large messages), and ~5 ms of CPU per MB. It also yields to
 * the event loop (setImmediate) after every stuffed dot, so a message whose lines start with dots
 * costs one loop turn per line.
 *
 * This version finds line-start dots with Buffer.indexOf (native) and emits sub-arrays of the
 * chunk, never copies. Instead of holding back 4 bytes it holds back only a line-start "." or
 * ".\r" that ends a chunk (the only bytes whose meaning depends on the next chunk), and remembers
 * the last two bytes it emitted. The meaning of every byte is the original's:
 *   - after a line feed, ".." drops the first dot (transparency, RFC 5321 §4.5.2);
 *   - "\r\n.\r\n" ends the data; the "\r\n" before the dot is the message's last line ending;
 *   - at the very start of the data, ".\r\n" ends it and ".." is unstuffed (start counts as after CRLF);
 *   - any other line-start dot is content.
 * One deliberate difference: the original never looks at a dot at offset 1 of the data ("\n.."
 * as the first bytes keeps its escape dot); here it is unstuffed like every other line-start dot.
 */
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const DOT_BUF = Buffer.from('.', 'latin1');
const DOT_CR_BUF = Buffer.from('.\r', 'latin1');

const NOT_HELD = 0;
const HELD_DOT = 1;
const HELD_DOT_CR = 2;

/** The parser's private state this patch adds (kept on the instance, one per connection). */
export interface DataModeState {
  /** A line-start "." (1) or ".\r" (2) that ended the last chunk, not emitted yet. */
  _srHeld?: number;
  /** Whether the held dot started a line after "\r\n" (so ".\r\n" there ends the data). */
  _srHeldAfterCrlf?: boolean;
  /** The last two bytes emitted (or "\r\n" at the start of the data): line-start context. */
  _srPrev1?: number;
  _srPrev2?: number;
}

type Parser = SMTPStream & DataModeState;
type Callback = (err?: Error | null) => void;

/** Resets the line-start context when a DATA command starts (wraps startDataMode). */
export function resetDataModeState(parser: Parser): void {
  parser._srHeld = NOT_HELD;
  parser._srHeldAfterCrlf = false;
  parser._srPrev2 = CR;
  parser._srPrev1 = LF;
  parser._lastBytes = false;
}

/** The index of the next line-start dot at or after `from` (found as "\n."), or -1. */
function nextLineStartDot(chunk: Buffer, from: number): number {
  const at = chunk.indexOf('\n.', from, 'latin1');
  return at === -1 ? -1 : at + 1;
}

export function feedDataStream(this: Parser, chunk: Buffer, done: Callback): void {
  const len = chunk.length;
  const pieces: Buffer[] = [];
  let from = 0; // start of the content of `chunk` not yet in `pieces`
  let remainder: Buffer | null = null; // set when the terminator was found: what follows it
  let prev1 = this._srPrev1 ?? LF;
  let prev2 = this._srPrev2 ?? CR;
  let d: number; // the line-start dot being looked at

  // 1. A dot held back from the previous chunk is decided by this chunk's first bytes.
  const held = this._srHeld ?? NOT_HELD;
  this._srHeld = NOT_HELD;
  if (held === HELD_DOT) {
    if (chunk[0] === DOT) {
      // ".." : the held dot was the escape, dropped; chunk[0] is content.
      d = nextLineStartDot(chunk, 1);
    } else if (chunk[0] === CR && len === 1) {
      this._srHeld = HELD_DOT_CR; // still undecided
      return done();
    } else if (chunk[0] === CR && chunk[1] === LF && this._srHeldAfterCrlf) {
      remainder = chunk.subarray(2);
      d = -1;
    } else {
      pieces.push(DOT_BUF); // a line-start dot that is content
      prev2 = prev1;
      prev1 = DOT;
      d = nextLineStartDot(chunk, 0);
    }
  } else if (held === HELD_DOT_CR) {
    if (chunk[0] === LF && this._srHeldAfterCrlf) {
      remainder = chunk.subarray(1);
      d = -1;
    } else {
      pieces.push(DOT_CR_BUF);
      prev2 = DOT;
      prev1 = CR;
      d = nextLineStartDot(chunk, 0);
    }
  } else {
    d = prev1 === LF && chunk[0] === DOT ? 0 : nextLineStartDot(chunk, 0);
  }

  // 2. Every line-start dot in the chunk: an escape, the terminator, or content.
  while (remainder === null && d !== -1) {
    const afterCrlf = d >= 2 ? chunk[d - 2] === CR : d === 1 ? prev1 === CR : prev2 === CR && prev1 === LF;
    if (d + 1 >= len) {
      this._srHeld = HELD_DOT;
      this._srHeldAfterCrlf = afterCrlf;
      if (d > from) pieces.push(chunk.subarray(from, d));
      from = len;
      break;
    }
    const next = chunk[d + 1];
    if (next === DOT) {
      if (d > from) pieces.push(chunk.subarray(from, d));
      from = d + 1;
      d = nextLineStartDot(chunk, d + 1);
    } else if (next === CR && d + 2 >= len) {
      this._srHeld = HELD_DOT_CR;
      this._srHeldAfterCrlf = afterCrlf;
      if (d > from) pieces.push(chunk.subarray(from, d));
      from = len;
      break;
    } else if (next === CR && chunk[d + 2] === LF && afterCrlf) {
      if (d > from) pieces.push(chunk.subarray(from, d));
      remainder = chunk.subarray(d + 3);
    } else {
      d = nextLineStartDot(chunk, d + 1);
    }
  }
  if (remainder === null && from < len) pieces.push(from === 0 ? chunk : chunk.subarray(from));

  // 3. Line-start context for the next chunk (only used when nothing is held).
  if (this._srHeld === NOT_HELD && remainder === null) {
    if (len >= 2) {
      prev2 = chunk[len - 2] as number;
      prev1 = chunk[len - 1] as number;
    } else if (len === 1) {
      prev2 = prev1;
      prev1 = chunk[0] as number;
    }
  }
  this._srPrev1 = prev1;
  this._srPrev2 = prev2;

  // 4. Emit, counting every byte (smtp-server's size limit and sizeExceeded flag read the count).
  const dataStream = this._dataStream;
  const last = remainder !== null ? pieces.pop() : undefined;
  let needDrain = false;
  for (const piece of pieces) {
    this._countDataBytes(piece.length);
    if (dataStream && dataStream.writable) needDrain = !dataStream.write(piece);
  }
  if (remainder !== null) {
    if (last) this._countDataBytes(last.length);
    this._endDataMode(last ?? false, remainder, done);
    return;
  }
  if (!needDrain || !dataStream || dataStream.destroyed) return done();
  // A stream that the application destroys never drains, it only closes.
  const onDrain = () => {
    dataStream.removeListener('drain', onDrain);
    dataStream.removeListener('close', onDrain);
    done();
  };
  dataStream.once('drain', onDrain);
  dataStream.once('close', onDrain);
}
