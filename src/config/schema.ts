/**
 * The one configuration schema. Defaults live in ./sections/*, nowhere else. Unknown keys are
 * errors (strictObject everywhere): a typo must not silently fall back to a default.
 */
import { z } from 'zod';
import { logSection } from './sections/log.js';
import { directorySection } from './sections/directory.js';
import { lmtpSection } from './sections/lmtp.js';
import { authSection } from './sections/auth.js';
import { journalSection } from './sections/journal.js';
import { adminSection } from './sections/admin.js';
import { replaySection } from './sections/replay.js';
import { agentSection } from './sections/agent.js';
import { failoverSection } from './sections/failover.js';

export const configSchema = z.strictObject({
  log: logSection.prefault({}),
  directory: directorySection.prefault({}),
  lmtp: lmtpSection.prefault({}),
  auth: authSection.prefault({}),
  journal: journalSection.prefault({}),
  admin: adminSection.prefault({}),
  replay: replaySection.prefault({}),
  agent: agentSection.prefault({}),
  failover: failoverSection.prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** Paths whose values `config print` and logs replace with "[redacted]". */
export const SECRET_PATHS = [
  'directory.redis.password',
  'directory.redis.sentinelPassword',
  'directory.redis.url',
  'auth.sharedSecret.value',
  'admin.token',
  'replay.imap.password',
  'agent.token',
] as const;
