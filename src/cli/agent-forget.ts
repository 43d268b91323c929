/**
 * `storeroute agent forget MACHINE`: removes a decommissioned machine's last agent report. Reports
 * are status, not layout: nothing removes them when a machine goes, and `status` would list its
 * agent as stale forever. Refuses while the directory still places slots on the machine (its agent
 * has work there) or while its report is fresh (the agent still runs: it would publish again
 * within one interval), unless --force. Recorded in the audit history.
 */
import { readReplication } from '../agent/index.js';
import type { Config } from '../config/index.js';
import { DirectoryUnavailableError } from '../core/errors.js';
import type { Directory } from '../directory/index.js';
import { EXIT, SilentExit, type CliIo } from './io.js';

export async function forgetAgent(io: CliIo, directory: Directory, config: Config, machine: string, o: { force: boolean; actor: string }): Promise<void> {
  const refuse = (why: string): never => {
    io.stderr(`error: ${why}\n`);
    throw new SilentExit(EXIT.refused);
  };
  const view = await readReplication(directory, config.agent);
  if (view.unreadable) throw new DirectoryUnavailableError(view.unreadable); // exit 75: try again
  const seen = view.agents.find((a) => a.machine === machine);
  if (!seen) {
    refuse(`no agent report for machine ${machine}; reports are kept for: ${view.agents.map((a) => a.machine).join(', ') || 'none'}`);
  }
  const slots = Object.values((await directory.topology()).slots).filter((s) => s.machine === machine).map((s) => s.name).sort();
  if (!o.force) {
    if (slots.length > 0) refuse(`machine ${machine} still has slot(s) ${slots.join(', ')} in the directory: its agent has work there (--force to forget it anyway)`);
    if (seen && !seen.stale) {
      refuse(`the agent on ${machine} reported ${Math.round((seen.ageMs ?? 0) / 1000)} s ago: it is running and would report again; stop it first (--force to forget it anyway)`);
    }
  }
  await directory.deleteStatus('agent', machine);
  await directory.recordEvent({ actor: o.actor, action: 'agent-forget', target: `machine:${machine}`,
    detail: { result: 'ok', detail: `forgot the agent report of ${machine}, last measured ${seen?.measuredAt ? new Date(seen.measuredAt).toISOString() : 'never'}`,
      measuredAt: seen?.measuredAt ?? null, slots, forced: o.force } });
  io.stdout(`forgot the agent on ${machine}${seen?.measuredAt ? ` (last report ${new Date(seen.measuredAt).toISOString()})` : ''}\n`);
}
