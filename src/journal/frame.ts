/**
 * The on-disk frame format of a journal segment, and a scanner that survives damage.
 *
 *   offset  size  field
 *   0       4     magic "SRJ1"
 *   4       1     type (1 = BODY, 2 = COMMIT)
 *   5       3     reserved, zero
 *   8       8     record id (random, unique per record)
 *   16      4     seq (BODY: chunk number from 0; COMMIT: number of BODY frames)
 *   20      4     payload length
 *   24      4     CRC-32 of bytes 0..23 (so a damaged length never sends the scanner astray)
 *   28      len   payload (BODY: body bytes; COMMIT: UTF-8 JSON meta)
 *   28+len  4     CRC-32 of the payload
 *
 * Frames of concurrent records interleave in one segment. A record is complete when its COMMIT
 * frame is found and BODY frames 0..seq-1 all checked out; anything else was never acknowledged
 * (or was damaged) and is skipped. After a bad header the scanner looks for the next magic, so a
 * torn or flipped frame costs that frame only.
 */
import { crc32 } from 'node:zlib';
import type { FileHandle } from 'node:fs/promises';

export const MAGIC = Buffer.from('SRJ1', 'latin1');
export const HEADER_BYTES = 28;
export const TRAILER_BYTES = 4;
export const FRAME_OVERHEAD = HEADER_BYTES + TRAILER_BYTES;
/** Larger than any frame we write (BODY ≤ 64 KiB, COMMIT meta ≤ a few MiB): a bigger length is damage. */
export const MAX_PAYLOAD = 16 * 1024 * 1024;

export const FRAME_BODY = 1;
export const FRAME_COMMIT = 2;
export type FrameType = typeof FRAME_BODY | typeof FRAME_COMMIT;

/**
 * One frame as the buffers to write, in order: header, the payload's own buffers (not copied: a
 * 100 KB body copied twice cost more CPU than its SHA-256), trailer. Same bytes on disk as one
 * contiguous frame; `length` is the payload's total size. The CRC runs over the parts in turn.
 */
export function frameParts(type: FrameType, recordId: Buffer, seq: number, parts: readonly Buffer[], length: number): Buffer[] {
  // Header and trailer share one small allocation (from Buffer's pool).
  const edges = Buffer.allocUnsafe(FRAME_OVERHEAD);
  MAGIC.copy(edges, 0);
  edges.writeUInt8(type, 4);
  edges.writeUInt8(0, 5);
  edges.writeUInt16BE(0, 6);
  recordId.copy(edges, 8, 0, 8);
  edges.writeUInt32BE(seq >>> 0, 16);
  edges.writeUInt32BE(length, 20);
  edges.writeUInt32BE(crc32(edges.subarray(0, 24)), 24);
  let crc = 0;
  for (const part of parts) crc = crc32(part, crc);
  edges.writeUInt32BE(crc, HEADER_BYTES);
  const out: Buffer[] = [edges.subarray(0, HEADER_BYTES)];
  for (const part of parts) out.push(part);
  out.push(edges.subarray(HEADER_BYTES));
  return out;
}

/**
 * Completes a frame built in place: `buf` holds the payload at [HEADER_BYTES, HEADER_BYTES +
 * length) and has room for the trailer after it. Writes the header and the trailer; returns the
 * frame (a view of `buf`, FRAME_OVERHEAD + length bytes). Same bytes as frameParts.
 */
export function sealFrameAt(buf: Buffer, start: number, type: FrameType, recordId: Buffer, seq: number, length: number): Buffer {
  MAGIC.copy(buf, start);
  buf.writeUInt32BE(type << 24, start + 4); // type, then three reserved zero bytes
  recordId.copy(buf, start + 8, 0, 8);
  buf.writeUInt32BE(seq >>> 0, start + 16);
  buf.writeUInt32BE(length, start + 20);
  buf.writeUInt32BE(crc32(buf.subarray(start, start + 24)), start + 24);
  const payload = start + HEADER_BYTES;
  buf.writeUInt32BE(crc32(buf.subarray(payload, payload + length)), payload + length);
  return buf.subarray(start, payload + length + TRAILER_BYTES);
}

/** One frame as a single buffer (tests and tools; the writer uses frameParts). */
export function encodeFrame(type: FrameType, recordId: Buffer, seq: number, payload: Buffer): Buffer {
  return Buffer.concat(frameParts(type, recordId, seq, [payload], payload.length));
}

export interface ScannedFrame {
  type: FrameType;
  recordId: string;
  seq: number;
  /** File offset of the payload. */
  payloadOffset: number;
  length: number;
  /** Only for COMMIT frames (BODY payloads are located, not kept). */
  payload?: Buffer;
}

export type ScanEvent =
  | { kind: 'frame'; frame: ScannedFrame }
  /** Bytes skipped between `offset` and `offset + bytes`: bad header, bad checksum or unknown type. */
  | { kind: 'corrupt'; offset: number; bytes: number; reason: string }
  /** The file ends inside a frame (a crash mid-write). */
  | { kind: 'torn'; offset: number; bytes: number };

const WINDOW = 4 * 1024 * 1024;

/**
 * Reads a segment front to back in windows, yielding frames and the damage it stepped over.
 * `limit` stops at a known size (a segment still being written may grow while we read it).
 */
export async function* scanFrames(fh: FileHandle, limit?: number): AsyncGenerator<ScanEvent> {
  const size = limit ?? (await fh.stat()).size;
  let buf = Buffer.alloc(0);
  let bufStart = 0; // file offset of buf[0]
  let pos = 0; // file offset being parsed

  /** Makes sure buf covers [pos, pos + need); false when the file ends first. */
  async function ensure(need: number): Promise<boolean> {
    const haveEnd = bufStart + buf.length;
    if (pos + need <= haveEnd) return true;
    if (pos + need > size) return false;
    const readFrom = pos;
    const readLen = Math.min(size - readFrom, Math.max(need, WINDOW));
    const next = Buffer.allocUnsafe(readLen);
    let got = 0;
    while (got < readLen) {
      const { bytesRead } = await fh.read(next, got, readLen - got, readFrom + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    buf = next.subarray(0, got);
    bufStart = readFrom;
    return got >= need;
  }

  let damageStart = -1;
  let damageReason = '';
  const endDamage = (at: number): ScanEvent | null => {
    if (damageStart < 0) return null;
    const ev: ScanEvent = { kind: 'corrupt', offset: damageStart, bytes: at - damageStart, reason: damageReason };
    damageStart = -1;
    return ev;
  };
  const markDamage = (reason: string) => {
    if (damageStart < 0) { damageStart = pos; damageReason = reason; }
  };

  while (pos < size) {
    if (!(await ensure(HEADER_BYTES))) {
      const d = endDamage(pos);
      if (d) yield d;
      // A partial header at the end: torn if it starts with (a prefix of) the magic, else damage.
      const tail = size - pos;
      yield { kind: 'torn', offset: pos, bytes: tail };
      return;
    }
    const at = pos - bufStart;
    if (buf.compare(MAGIC, 0, 4, at, at + 4) !== 0) {
      markDamage('bad magic');
      // Resynchronise on the next magic inside what we hold; otherwise skip to the window end.
      const next = buf.indexOf(MAGIC, at + 1);
      pos = next >= 0 ? bufStart + next : Math.max(pos + 1, bufStart + buf.length - 3);
      continue;
    }
    const headerOk = crc32(buf.subarray(at, at + 24)) === buf.readUInt32BE(at + 24);
    const type = buf.readUInt8(at + 4);
    const length = buf.readUInt32BE(at + 20);
    if (!headerOk || length > MAX_PAYLOAD || (type !== FRAME_BODY && type !== FRAME_COMMIT)) {
      markDamage(headerOk ? 'bad frame header' : 'header checksum mismatch');
      pos += 1;
      continue;
    }
    const recordId = buf.toString('hex', at + 8, at + 16);
    const seq = buf.readUInt32BE(at + 16);
    const frameStart = pos;
    if (!(await ensure(HEADER_BYTES + length + TRAILER_BYTES))) {
      const d = endDamage(frameStart);
      if (d) yield d;
      yield { kind: 'torn', offset: frameStart, bytes: size - frameStart };
      return;
    }
    const p = pos - bufStart + HEADER_BYTES;
    const payload = buf.subarray(p, p + length);
    if (crc32(payload) !== buf.readUInt32BE(p + length)) {
      // The header is proven good, so the length is trustworthy: skip exactly this frame.
      const d = endDamage(frameStart);
      if (d) yield d;
      yield { kind: 'corrupt', offset: frameStart, bytes: FRAME_OVERHEAD + length, reason: 'payload checksum mismatch' };
      pos = frameStart + FRAME_OVERHEAD + length;
      continue;
    }
    const d = endDamage(frameStart);
    if (d) yield d;
    const frame: ScannedFrame = { type: type as FrameType, recordId, seq, payloadOffset: frameStart + HEADER_BYTES, length };
    if (type === FRAME_COMMIT) frame.payload = Buffer.from(payload);
    yield { kind: 'frame', frame };
    pos = frameStart + FRAME_OVERHEAD + length;
  }
  const d = endDamage(pos);
  if (d) yield d;
}

/** Reads and verifies one BODY payload at a known place (for openBody). */
export async function readPayload(fh: FileHandle, payloadOffset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length + TRAILER_BYTES);
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, payloadOffset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  if (got < buf.length) throw new Error(`journal frame at ${payloadOffset} is truncated`);
  const payload = buf.subarray(0, length);
  if (crc32(payload) !== buf.readUInt32BE(length)) throw new Error(`journal frame at ${payloadOffset} fails its checksum`);
  return payload;
}
