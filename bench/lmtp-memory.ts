/**
 * Memory does not grow with message size: the proxy's peak RSS (child process, fresh per run)
 * while one 10 MB message passes vs while one 200 MB message passes, smtp-source -L → storeroute →
 * smtp-sink -L. Target: the 200 MB peak within 8 MB of the 10 MB peak.
 *
 *   npx tsx bench/lmtp-memory.ts
 */
import { cpus } from 'node:os';
import { smtpSource, startProxy, startSink } from './lmtp.js';

async function peakFor(bytes: number, sinkPort: number): Promise<{ idle: number; peak: number; seconds: number }> {
  const proxy = await startProxy(sinkPort);
  // One small message first, so both runs have loaded the same code before measuring.
  await smtpSource(proxy.port, { size: 4096, sessions: 1, messages: 2, rcpts: 1, reuse: true });
  const idle = (await proxy.stats()).maxRss;
  const seconds = await smtpSource(proxy.port, { size: bytes, sessions: 1, messages: 1, rcpts: 2, reuse: true });
  const peak = (await proxy.stats()).maxRss;
  await proxy.stop();
  return { idle, peak, seconds };
}

async function main(): Promise<void> {
  console.log(`bench/lmtp-memory — ${cpus()[0]?.model ?? '?'}, ${cpus().length} cpus, node ${process.version}`);
  const sink = await startSink();
  const small = await peakFor(10 * 1024 * 1024, sink.port);
  const large = await peakFor(200 * 1024 * 1024, sink.port);
  await sink.stop();
  const mb = (kb: number) => (kb / 1024).toFixed(1);
  console.log(`10 MB message : peak RSS ${mb(small.peak)} MB (before: ${mb(small.idle)} MB), ${small.seconds.toFixed(2)} s`);
  console.log(`200 MB message: peak RSS ${mb(large.peak)} MB (before: ${mb(large.idle)} MB), ${large.seconds.toFixed(2)} s`);
  const diff = (large.peak - small.peak) / 1024;
  console.log(`difference: ${diff.toFixed(1)} MB (target ≤ 8 MB) — ${diff <= 8 ? 'OK' : 'OVER'}`);
}

main().catch((err: unknown) => { console.error(err); process.exit(1); });
