/**
 * Damage is news once. A sealed segment never changes, so a replay or a reader passing the same
 * damaged frame again has found nothing new: each damaged frame is counted (metric, stats) once
 * per process, remembered per segment number (a seal renames the file, the number stays) and
 * forgotten when retention deletes the segment. Logging is one warning per segment and pass, and
 * only when the pass found damage not seen before: start-up and the first read of a damaged
 * segment each say so once.
 */
import type { Logger } from 'pino';
import type { Damage } from './reader.js';
import { segmentIndex } from './segment-files.js';

export class DamageMemory {
  readonly #seen = new Map<number, Set<string>>();

  /** True the first time this damage (segment, kind, offset) is seen by this process. */
  first(d: Damage): boolean {
    const index = segmentIndex(d.file);
    let seen = this.#seen.get(index);
    if (!seen) this.#seen.set(index, (seen = new Set()));
    const key = `${d.kind}@${d.offset}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  }

  forget(index: number): void {
    this.#seen.delete(index);
  }
}

/** The fields of one warning about a segment's newly found damage. */
export function damageSummary(found: Damage[]): Record<string, unknown> {
  const kinds: Record<string, number> = {};
  for (const d of found) kinds[d.kind] = (kinds[d.kind] ?? 0) + 1;
  const first = found[0]!;
  return {
    file: first.file, frames: found.length, bytes: found.reduce((n, d) => n + d.bytes, 0), kinds,
    first: { offset: first.offset, reason: first.reason, ...(first.recordId ? { recordId: first.recordId } : {}) },
  };
}

export function logSegmentDamage(log: Logger, found: Damage[]): void {
  if (found.length > 0) log.warn(damageSummary(found), 'journal_segment_damaged');
}
