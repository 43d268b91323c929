/**
 * The composition root with the configuration `npm start` uses: the example config and the example
 * directory layout, on free ports and temp dirs. Proves the out-of-the-box service starts, is
 * ready, answers LMTP, and stops cleanly.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, existsSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startStoreroute } from '../src/main.js';
import { exampleConfigInTempDir, lmtpExchange } from './helpers/example-config.js';
import { testLogger } from './helpers/logger.js';

describe('storeroute serve with the example configuration', () => {
  it('starts on the example directory, is ready, routes, and stops', async () => {
    const config = exampleConfigInTempDir();

    const running = await startStoreroute(config, testLogger());
    try {
      expect(existsSync(config.directory.embedded.file)).toBe(true);
      const ready = await fetch(`${running.admin!.url}/readyz`);
      expect(ready.status).toBe(200);
      const snap = await running.directory.snapshot();
      expect(Object.keys(snap.users).length).toBeGreaterThan(0);

      const out = await lmtpExchange(running.lmtp!.port!, ['LHLO test', 'MAIL FROM:<a@example.org>',
        'RCPT TO:<nobody-at-all@example.org>', 'QUIT']);
      expect(out).toContain('250-PIPELINING');
      expect(out).toContain('550 5.1.1 No such user here');
    } finally {
      await running.stop();
    }
  });

  it('refuses to serve an embedded directory file that does not exist (everyone would be unknown)', async () => {
    const config = exampleConfigInTempDir();
    delete config.directory.embedded.seed;
    await expect(startStoreroute(config, testLogger())).rejects.toThrow(/directory\.embedded\.file: .* does not exist/);
    expect(existsSync(config.directory.embedded.file)).toBe(false);
  });

  it('refuses to start, and leaves nothing listening, when a part fails', async () => {
    const config = exampleConfigInTempDir();
    config.auth.listen = { host: '203.0.113.1', port: 0 }; // not an address of this machine: listen fails
    await expect(startStoreroute(config, testLogger())).rejects.toThrow(/EADDRNOTAVAIL/);
    // The journal lock was released by the unwind: a second start on the same dir works.
    config.auth.listen = { host: '127.0.0.1', port: 0 };
    const running = await startStoreroute(config, testLogger());
    await running.stop();
  });
});

describe('storeroute serve with a broken config', () => {
  it('refuses to start, exits 2 and lists every problem with its path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sr-main-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'lmtp:\n  listen: { port: "2424x" }\n  maxRecipients: 0\njournal: { durability: sometimes }\nbogus: 1\n');
    const cli = new URL('../src/cli/index.ts', import.meta.url).pathname;
    const r = spawnSync(process.execPath, ['--import', 'tsx', cli, 'serve', '--config', file], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('4 problem(s)');
    for (const path of ['lmtp.listen.port', 'lmtp.maxRecipients', 'journal.durability', 'bogus: unknown key']) {
      expect(r.stderr).toContain(path);
    }
    expect(r.stdout).not.toContain('storeroute_started');
  }, 60_000);
});
