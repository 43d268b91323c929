/**
 * `storeroute status` shows the last full replication check, as `check replication --all`
 * publishes it to the directory status (issue #15: "last check: 3 days ago, 0 differences").
 */
import { describe, it, expect } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createDirectory } from '../../src/directory/index.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { cli, embeddedSite, fixture } from './harness.js';

describe('status and the last replication check', () => {
  it('says none is recorded, then shows the published run with its age and differences', async () => {
    const s = embeddedSite();
    expect((await cli(['--config', s.config, 'directory', 'apply', fixture('two-stores.yaml')])).code).toBe(0);

    const before = await cli(['--config', s.config, 'status']);
    expect(before.code).toBe(0);
    expect(before.stdout).toContain('Last replication check: none recorded');
    expect(JSON.parse((await cli(['--config', s.config, 'status', '--json'])).stdout).lastReplicationCheck).toBeNull();

    const finishedAt = Date.now() - (3 * 86_400 + 2 * 3600) * 1000;
    const dir = await createDirectory(loadConfig(s.config).directory, { logger: testLogger(), metrics: testRegistry() });
    try {
      await dir.publishStatus('check', 'replication', { version: 1, startedAt: finishedAt - 60_000, finishedAt, durationMs: 60_000,
        mode: 'quick', full: true, usersTotal: 4, usersChecked: 4, usersIdentical: 3, usersDifferent: 1, usersInFlight: 0,
        usersUnchecked: 0, differences: 2, exitCode: 1 });
    } finally {
      await dir.close();
    }
    const after = await cli(['--config', s.config, 'status']);
    expect(after.stdout).toContain('Last replication check: 3d 2h ago, 2 difference(s), 4 users checked\n');
    const json = JSON.parse((await cli(['--config', s.config, 'status', '--json'])).stdout);
    expect(json.lastReplicationCheck).toMatchObject({ finishedAt, differences: 2, usersChecked: 4, exitCode: 1 });
  });
});
