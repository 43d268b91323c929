/** adminConfigWarnings: what `config check` and `serve` warn about in the admin section. */
import { describe, expect, it } from 'vitest';
import { parseConfig, type ConfigInput } from '../../src/config/index.js';
import { adminConfigWarnings, EXAMPLE_ADMIN_TOKENS } from '../../src/config/sections/admin.js';

const paths = (input: ConfigInput) => adminConfigWarnings(parseConfig(input)).map((w) => w.path);
const redis = { backend: 'redis' as const };
const good = 'a'.repeat(8) + '0123456789abcdef';

describe('admin config warnings', () => {
  it('the redis directory with the journal on needs admin.token (replay reaches the journals through it)', () => {
    expect(paths({ directory: redis })).toEqual(['admin.token']);
    expect(paths({ directory: redis, admin: { token: good } })).toEqual([]);
    // Nothing to fan out to: no warning.
    expect(paths({ directory: redis, journal: { enabled: false } })).toEqual([]);
    expect(paths({})).toEqual([]);
  });

  it('the redis directory with the journal on and the admin API off: the journal is unreachable', () => {
    expect(paths({ directory: redis, admin: { enabled: false } })).toEqual(['admin.enabled']);
  });

  it('a token from the public example, or a short one, is flagged whatever the backend', () => {
    for (const token of EXAMPLE_ADMIN_TOKENS) {
      const w = adminConfigWarnings(parseConfig({ admin: { token } }));
      expect(w).toHaveLength(1);
      expect(w[0]!.message).toContain('public example');
    }
    expect(adminConfigWarnings(parseConfig({ directory: redis, admin: { token: 's3cret' } }))[0]!.message).toContain('shorter than 16');
  });
});
