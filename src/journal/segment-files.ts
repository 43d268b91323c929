/**
 * Opening a segment by its number, whatever it is called by now. The writer renames a segment
 * once (seg-N.open → seg-N-….seg when it seals) and retention unlinks it; a reader that learnt
 * one name may find the file under the other, or gone. An open fd is immune to both (the inode
 * lives while it is open), so readers open by number, retrying once under the current name, and
 * a replay keeps its fds (SegmentHandles) until it has delivered every body it selected.
 */
import { open, readdir, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseSegmentName } from './segment.js';

/** The record's segment was removed (retention) before anything held it open. */
export class JournalRecordGoneError extends Error {
  readonly code = 'JOURNAL_RECORD_GONE';
}

export interface OpenedSegment {
  fh: FileHandle;
  /** The name it was found under. */
  file: string;
}

export function segmentIndex(file: string): number {
  const parsed = parseSegmentName(basename(file));
  if (!parsed) throw new Error(`${file} is not a journal segment`);
  return parsed.index;
}

async function tryOpen(file: string): Promise<FileHandle | null> {
  try {
    return await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Opens segment `file`, or the same segment under its current name when it was renamed
 * meanwhile. Null when no file of that number exists any more (deleted by retention).
 */
export async function openSegment(file: string): Promise<OpenedSegment | null> {
  const first = await tryOpen(file);
  if (first) return { fh: first, file };
  const dir = dirname(file);
  const index = segmentIndex(file);
  // One rename can happen between our readdir and open (.open → sealed); after it only unlink.
  for (let attempt = 0; attempt < 2; attempt++) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const name = names.find((n) => parseSegmentName(n)?.index === index);
    if (!name) return null;
    const fh = await tryOpen(join(dir, name));
    if (fh) return { fh, file: join(dir, name) };
  }
  return null;
}

/**
 * Segment fds held for the length of a read session (a replay): opened once per segment, shared
 * by the scan and every body read from it, closed together at the end. Segments that yielded
 * nothing are let go at once (`release`), so a session holds only what it may still read.
 */
export class SegmentHandles {
  readonly #open = new Map<number, Promise<OpenedSegment | null>>();
  #closed = false;

  /** The segment, opened on first use; null when it is gone. */
  get(file: string): Promise<OpenedSegment | null> {
    if (this.#closed) return Promise.reject(new Error('journal read session is closed'));
    const index = segmentIndex(file);
    let p = this.#open.get(index);
    if (!p) {
      p = openSegment(file);
      this.#open.set(index, p);
      // A failed open is not remembered: the next use tries again.
      p.catch(() => this.#open.delete(index));
    }
    return p;
  }

  async release(file: string): Promise<void> {
    const index = segmentIndex(file);
    const p = this.#open.get(index);
    this.#open.delete(index);
    const seg = await p?.catch(() => null);
    await seg?.fh.close();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#open.values()];
    this.#open.clear();
    await Promise.allSettled(all.map(async (p) => (await p)?.fh.close()));
  }
}
