/**
 * Memory does not grow with message size (issue #3): the proxy's peak resident memory while one
 * 200 MB message passes must be within 8 MB of its peak while one 10 MB message passes,
 * smtp-source -L → storeroute → smtp-sink -L, two recipients (one backend session), journal off.
 *
 *   npx tsx bench/lmtp-memory.ts            # 3 rounds of 10 / 50 / 200 MB
 *   npx tsx bench/lmtp-memory.ts --rounds 1
 *
 * Fair and explained:
 * - Each round is one fresh proxy child. Before any measured message it gets the same warm-up
 *   (two 4 KB messages and one 1 MB message: the DATA path is loaded and compiled), then the
 *   10, 50 and 200 MB messages pass one after the other.
 * - Before each message the child's peak RSS is reset to its current RSS (Linux
 *   /proc/self/clear_refs), so "peak" is the highest RSS *while that message passed*, and
 *   "baseline" is the RSS it started from. (process maxRSS would be the peak since startup,
 *   which includes tsx compiling the sources and says nothing about the message.)
 * - Also shown: the child's ArrayBuffer memory after the message (message chunks not yet
 *   collected) and the garbage collections that ran during it.
 * Verdict: the worst round's peak(200 MB) − peak(10 MB).
 */
import { cpus, loadavg } from 'node:os';
import { smtpSource, startProxy, startSink } from './lmtp.js';

const MB = 1024 * 1024;
const SIZES = [10, 50, 200];

interface Run { size: number; baseline: number; peak: number; arrayBuffers: number; gcMinor: number; gcMajor: number; seconds: number }

async function round(sinkPort: number): Promise<Run[]> {
  const proxy = await startProxy(sinkPort);
  try {
    await smtpSource(proxy.port, { size: 4096, sessions: 1, messages: 2, rcpts: 2, reuse: true });
    await smtpSource(proxy.port, { size: MB, sessions: 1, messages: 1, rcpts: 2, reuse: true });
    const runs: Run[] = [];
    for (const size of SIZES) {
      const before = await proxy.resetPeak();
      const seconds = await smtpSource(proxy.port, { size: size * MB, sessions: 1, messages: 1, rcpts: 2, reuse: true });
      const after = await proxy.stats();
      runs.push({ size, baseline: before.rss / 1024, peak: after.hwm / 1024, arrayBuffers: after.arrayBuffers / 1024,
        gcMinor: after.gcMinor - before.gcMinor, gcMajor: after.gcMajor - before.gcMajor, seconds });
    }
    return runs;
  } finally {
    await proxy.stop();
  }
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--rounds');
  const rounds = at === -1 ? 3 : Number(process.argv[at + 1]);
  console.log(`bench/lmtp-memory — ${cpus()[0]?.model ?? '?'}, ${cpus().length} cpus, node ${process.version}, `
    + `load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log('one message at a time, 2 recipients, smtp-source -L → storeroute → smtp-sink -L; RSS of the proxy child\n');
  console.log(['round', 'message', 'baseline RSS', 'peak RSS', 'peak−baseline', 'arrayBuffers after', 'GCs minor/major', 'seconds']
    .map((h, i) => (i < 2 ? h.padEnd(9) : h.padStart(i >= 5 ? 20 : 15))).join(''));
  const sink = await startSink();
  const diffs: number[] = [];
  try {
    for (let r = 1; r <= rounds; r++) {
      const runs = await round(sink.port);
      for (const x of runs) {
        console.log([String(r).padEnd(9), `${x.size} MB`.padEnd(9), `${x.baseline.toFixed(1)} MB`.padStart(15),
          `${x.peak.toFixed(1)} MB`.padStart(15), `${(x.peak - x.baseline).toFixed(1)} MB`.padStart(15),
          `${x.arrayBuffers.toFixed(1)} MB`.padStart(20), `${x.gcMinor}/${x.gcMajor}`.padStart(20), x.seconds.toFixed(2).padStart(20)].join(''));
      }
      const peakOf = (size: number) => runs.find((x) => x.size === size)!.peak;
      diffs.push(peakOf(200) - peakOf(10));
    }
  } finally {
    await sink.stop();
  }
  const worst = Math.max(...diffs);
  console.log(`\npeak(200 MB) − peak(10 MB) per round: ${diffs.map((d) => d.toFixed(1)).join(', ')} MB; `
    + `worst ${worst.toFixed(1)} MB (target ≤ 8 MB) — ${worst <= 8 ? 'OK' : 'OVER'}`);
}

main().catch((err: unknown) => { console.error(err); process.exit(1); });
