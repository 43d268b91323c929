/**
 * The on-disk frame format of a journal segment, and a scanner that survives damage.
 *
 *   offset  size  field
 *   0       4     magic "SRJ1"
 *   4       1     type (1 = BODY, 2 = COMMIT)
 *   5       3     segment tag: the segment number mod 2^24 - 1, plus 1 (0 in frames of older writers)
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
 *
 * Segments of the durable journal are preallocated (zero-filled ahead of the writer), so the data
 * ends where the zeros begin, not at the file's size. Damage after the last good frame that is
 * followed by nothing but zeros is the write that was cut off (torn); zeros alone are free space.
 * The segment tag keeps a frame that does not belong to this segment (a file reused, copied or
 * restored under another number) from ever being read as one of its records.
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

/** The 24-bit tag a segment's frames carry; never 0 (0 marks frames of writers before the tag). */
export function segmentTag(segment: number): number {
  return ((segment - 1) % 0xffffff) + 1;
}

/** Builds one frame as a single buffer (one allocation, header + payload + trailer). */
export function encodeFrame(type: FrameType, recordId: Buffer, seq: number, payload: Buffer, segment: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_OVERHEAD + payload.length);
  MAGIC.copy(out, 0);
  out.writeUInt8(type, 4);
  out.writeUIntBE(segmentTag(segment), 5, 3);
  recordId.copy(out, 8, 0, 8);
  out.writeUInt32BE(seq >>> 0, 16);
  out.writeUInt32BE(payload.length, 20);
  out.writeUInt32BE(crc32(out.subarray(0, 24)), 24);
  payload.copy(out, HEADER_BYTES);
  out.writeUInt32BE(crc32(payload), HEADER_BYTES + payload.length);
  return out;
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
const ZEROS = Buffer.alloc(64 * 1024);

/** True when buf[from, to) holds only zero bytes (memcmp against a zero block, not a JS loop). */
function isZero(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i += ZEROS.length) {
    const end = Math.min(to, i + ZEROS.length);
    if (buf.compare(ZEROS, 0, end - i, i, end) !== 0) return false;
  }
  return true;
}

export interface ScanOptions {
  /** Stop at a known size (a segment still being written may grow while we read it). */
  limit?: number;
  /** The segment's number: frames tagged with another are not its own. */
  segment?: number;
}

/**
 * Reads a segment front to back in windows, yielding frames and the damage it stepped over.
 * Damage is held back until the next good frame: if none follows, it is reported once as the
 * torn tail (or, when it is all zeros, not at all: that is preallocated space).
 */
export async function* scanFrames(fh: FileHandle, options: ScanOptions = {}): AsyncGenerator<ScanEvent> {
  const size = options.limit ?? (await fh.stat()).size;
  const tag = options.segment === undefined ? 0 : segmentTag(options.segment);
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

  let pending: Array<Extract<ScanEvent, { kind: 'corrupt' }>> = [];
  /** A non-zero byte was seen in the pending damage. */
  let dirty = false;
  let damageStart = -1;
  let damageReason = '';
  const closeDamage = (at: number) => {
    if (damageStart < 0) return;
    pending.push({ kind: 'corrupt', offset: damageStart, bytes: at - damageStart, reason: damageReason });
    damageStart = -1;
  };
  const markDamage = (reason: string) => {
    if (damageStart < 0) { damageStart = pos; damageReason = reason; }
  };

  while (pos < size) {
    if (!(await ensure(HEADER_BYTES))) {
      // Less than a header left: part of a frame, or the last bytes of free space.
      markDamage('file ends inside a frame');
      if (await ensure(size - pos)) dirty ||= !isZero(buf, pos - bufStart, size - bufStart);
      else dirty = true;
      pos = size;
      break;
    }
    const at = pos - bufStart;
    if (buf.compare(MAGIC, 0, 4, at, at + 4) !== 0) {
      markDamage('bad magic');
      // Resynchronise on the next magic inside what we hold; otherwise skip to the window end.
      const next = buf.indexOf(MAGIC, at + 1);
      const to = next >= 0 ? bufStart + next : Math.max(pos + 1, bufStart + buf.length - 3);
      dirty ||= !isZero(buf, at, Math.min(to, bufStart + buf.length) - bufStart);
      pos = to;
      continue;
    }
    const headerOk = crc32(buf.subarray(at, at + 24)) === buf.readUInt32BE(at + 24);
    const type = buf.readUInt8(at + 4);
    const length = buf.readUInt32BE(at + 20);
    const frameTag = buf.readUIntBE(at + 5, 3);
    if (!headerOk || length > MAX_PAYLOAD || (type !== FRAME_BODY && type !== FRAME_COMMIT)
      || (tag !== 0 && frameTag !== 0 && frameTag !== tag)) {
      markDamage(!headerOk ? 'header checksum mismatch' : frameTag !== tag && frameTag !== 0 ? 'frame of another segment' : 'bad frame header');
      dirty = true;
      pos += 1;
      continue;
    }
    const recordId = buf.toString('hex', at + 8, at + 16);
    const seq = buf.readUInt32BE(at + 16);
    const frameStart = pos;
    if (!(await ensure(HEADER_BYTES + length + TRAILER_BYTES))) {
      closeDamage(frameStart);
      pending.push({ kind: 'corrupt', offset: frameStart, bytes: size - frameStart, reason: 'file ends inside a frame' });
      dirty = true;
      pos = size;
      break;
    }
    const p = pos - bufStart + HEADER_BYTES;
    const payload = buf.subarray(p, p + length);
    if (crc32(payload) !== buf.readUInt32BE(p + length)) {
      // The header is proven good, so the length is trustworthy: skip exactly this frame.
      closeDamage(frameStart);
      pending.push({ kind: 'corrupt', offset: frameStart, bytes: FRAME_OVERHEAD + length, reason: 'payload checksum mismatch' });
      dirty = true;
      pos = frameStart + FRAME_OVERHEAD + length;
      continue;
    }
    closeDamage(frameStart);
    // A good frame after damage: that damage was in the middle, report it as it was.
    for (const d of pending) yield d;
    pending = [];
    dirty = false;
    const frame: ScannedFrame = { type: type as FrameType, recordId, seq, payloadOffset: frameStart + HEADER_BYTES, length };
    if (type === FRAME_COMMIT) frame.payload = Buffer.from(payload);
    yield { kind: 'frame', frame };
    pos = frameStart + FRAME_OVERHEAD + length;
  }
  closeDamage(Math.min(pos, size));
  // Nothing good after it: a write cut off at the end (torn), or free space when only zeros.
  if (pending.length > 0 && dirty) yield { kind: 'torn', offset: pending[0]!.offset, bytes: size - pending[0]!.offset };
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
