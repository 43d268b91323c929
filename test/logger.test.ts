/**
 * The production logger batches lines (see createLogger in src/main.ts). Pinned here: a lone line
 * still reaches stdout within a flush tick while the process idles, and nothing buffered is lost
 * when the process exits through process.exit().
 */
import { afterEach, describe, it, expect } from 'vitest';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { LOG_FLUSH_MS } from '../src/main.js';
import { waitFor } from './helpers/ports.js';

const children: Array<import('node:child_process').ChildProcess> = [];
// A test that fails before its child exits must not leave it running.
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function startChild() {
  const child = spawn(process.execPath, [...process.execArgv, '--import', 'tsx', new URL('./logger-child.ts', import.meta.url).pathname],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  const lines: Array<{ msg: string; n?: number; line?: string; at: number }> = [];
  createInterface({ input: child.stdout }).on('line', (l) => lines.push({ ...JSON.parse(l), at: Date.now() }));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { child, lines, exited };
}

describe('the batched stdout logger', () => {
  it('writes a lone line within a flush tick while the process is idle', async () => {
    const { child, lines, exited } = startChild();
    try {
      await waitFor(() => lines.some((l) => l.msg === 'child_started'), 10_000, 'start-up line');
      const sent = Date.now();
      child.stdin.write('ping\n');
      await waitFor(() => lines.some((l) => l.line === 'ping'), 10_000, 'the lone line');
      // Far less than 4 KB of lines were logged: only the tick can have written it.
      expect(lines.find((l) => l.line === 'ping')!.at - sent).toBeLessThan(LOG_FLUSH_MS + 1_000);
    } finally {
      child.stdin.end('exit\n');
    }
    expect(await exited).toBe(0);
  });

  it('loses nothing still buffered when the process exits', async () => {
    const { child, lines, exited } = startChild();
    await waitFor(() => lines.some((l) => l.msg === 'child_started'), 10_000, 'start-up line');
    child.stdin.write('exit\n');
    expect(await exited).toBe(0);
    await waitFor(() => lines.filter((l) => l.msg === 'child_last_words').length === 50, 5_000, 'stdout drained');
    expect(lines.filter((l) => l.msg === 'child_last_words').map((l) => l.n)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });
});
