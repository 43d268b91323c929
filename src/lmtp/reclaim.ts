/**
 * Keeps the proxy's memory flat however large the messages are.
 *
 * Message bytes pass through as short-lived Buffers, one per socket read (up to 64 KB each). Their
 * memory lives outside the JS heap; V8 collects it only when a garbage collection runs, and
 * nothing triggers one: the JS objects a chunk creates are a few hundred bytes, far too few to
 * fill the young generation, and V8's external-memory trigger lets tens of MB of dead buffers
 * pile up first. Measured (bench/lmtp-memory.ts): not one collection while a 10 MB message
 * passed, 32 MB of dead buffers at the peak of a 200 MB one, while every stream stage in between
 * held at most 64 KB (backpressure works; this is garbage, not buffering).
 *
 * So after every `everyBytes` of DATA received, we ask for a young-generation collection
 * (scavenge): the dead chunks are still young, so it frees them, and with almost nothing alive
 * in the young generation it costs well under a millisecond.
 *
 * The collector is reached through the `gc` function: the process's own when started with
 * --expose-gc, else one obtained by turning that flag on just long enough to create a context
 * that has it (Node documents flags set at run time as best effort; without it we do nothing).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcFunction = (options?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async' }) => void;

function findGc(): GcFunction | null {
  const own = (globalThis as { gc?: GcFunction }).gc;
  if (typeof own === 'function') return own;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as GcFunction) : null;
  } catch {
    return null;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

export interface BufferReclaimer {
  /** Counts bytes received; collects when `everyBytes` have passed since the last time. */
  add(bytes: number): void;
  /** Collections asked for so far (tests, metrics). */
  readonly collections: number;
  /** False when no `gc` could be found: add() only counts. */
  readonly enabled: boolean;
}

export function createBufferReclaimer(everyBytes: number): BufferReclaimer {
  const gc = findGc();
  let pending = 0;
  let collections = 0;
  return {
    add(bytes: number): void {
      pending += bytes;
      if (pending < everyBytes || !gc) return;
      pending = 0;
      collections++;
      gc({ type: 'minor' });
    },
    get collections() { return collections; },
    get enabled() { return gc !== null; },
  };
}
