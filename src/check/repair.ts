/**
 * `--repair`: for each user found different, ask the agent on the master's machine to queue the
 * user in the master's sync log (`synclog-user`, i.e. `cyr_synclog -u`), then to flush that log
 * (the rolling sync_client, or the agent itself, pushes it to the replica; flush returns once the
 * log is empty), after which the caller checks those users again. Users of one master are queued
 * one after another and flushed once: the agent runs one operation per slot at a time anyway.
 */
import type { Logger } from 'pino';
import type { DirectorySnapshot } from '../directory/index.js';
import type { AgentSignals } from './flight.js';
import type { RepairOutcome, UserOutcome } from './result.js';

function failure(err: unknown): { code: string; message: string } {
  const e = err as { code?: unknown; message?: string };
  return { code: typeof e.code === 'string' ? e.code : 'COMMAND_FAILED', message: e.message ?? String(err) };
}

export async function repairUsers(users: UserOutcome[], snap: DirectorySnapshot, signals: AgentSignals, deadlineMs: number,
  log: Logger): Promise<RepairOutcome[]> {
  const byMaster = new Map<string, UserOutcome[]>();
  for (const u of users) {
    if (!u.master) continue;
    const list = byMaster.get(u.master) ?? [];
    list.push(u);
    byMaster.set(u.master, list);
  }
  const out: RepairOutcome[] = [];
  await Promise.all([...byMaster].map(async ([slot, list]) => {
    const machine = snap.slots[slot]?.machine ?? '';
    const mine: RepairOutcome[] = [];
    for (const u of list) {
      try {
        await signals.queueUser(machine, slot, u.user);
        mine.push({ user: u.user, slot, queued: true });
      } catch (err) {
        mine.push({ user: u.user, slot, queued: false, error: failure(err) });
      }
    }
    if (mine.some((r) => r.queued)) {
      try {
        await signals.flush(machine, slot, deadlineMs);
      } catch (err) {
        // Queued but not confirmed as sent: the re-check says where things stand, the note says why.
        const f = failure(err);
        log.warn({ slot, code: f.code, err: f.message }, 'check_repair_flush_failed');
        for (const r of mine) if (r.queued) r.flush = f;
      }
    }
    out.push(...mine);
  }));
  return out.sort((a, b) => a.user.localeCompare(b.user));
}
