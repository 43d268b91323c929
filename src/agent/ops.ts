/**
 * Slot operations on request: a fixed allow-list, never arbitrary commands. Arguments are checked
 * strictly before anything runs (a user name cannot start with `-`, so it cannot become an option
 * of the Cyrus tool; a slot must be one of this machine's), every operation has a deadline, and
 * anything that pushes records to another slot runs only on a known current master.
 */
import { rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { AgentError } from './errors.js';
import { expandTemplate, runCommand } from './command.js';
import { replayFile, type RepairContext } from './repair.js';
import type { RepairRecord, SlotReport } from './report.js';
import { replicationRefusal, roleOf, type AgentLayout, type LocalSlot, type SlotRole } from './slots.js';

export const OP_NAMES = ['flush', 'synclog-user', 'sync-user', 'stop-services', 'start-services'] as const;
export type OpName = (typeof OP_NAMES)[number];

/** Canonical directory user names: lower-case local part, optional domain; never a leading `-`. */
const userName = z.string().max(255).regex(/^[a-z0-9][a-z0-9._+=-]*(@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)?$/,
  'expected a user name such as alice or alice@example.com');
const slotName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'expected a slot name');

function argsSchemas(maxDeadlineMs: number) {
  const base = { slot: slotName, deadlineMs: z.number().int().min(100).max(maxDeadlineMs).optional() };
  return {
    flush: z.strictObject(base),
    'synclog-user': z.strictObject({ ...base, user: userName }),
    'sync-user': z.strictObject({ ...base, user: userName, target: slotName }),
    'stop-services': z.strictObject(base),
    'start-services': z.strictObject(base),
  } satisfies Record<OpName, z.ZodType>;
}

export interface OpContext extends RepairContext {
  slots: ReadonlyMap<string, LocalSlot>;
  layout: () => Promise<AgentLayout | null>;
  /** A fresh reading of one slot (flush polls it until the log is empty). */
  readSlot: (slot: LocalSlot) => Promise<SlotReport>;
}

export interface OpResult {
  op: OpName;
  slot: string;
  durationMs: number;
  detail: string;
  /** flush: bytes pending when it started and when it finished (0: the replica has everything). */
  pendingBytesBefore?: number;
  pendingBytesAfter?: number;
  record: RepairRecord;
}

export function isOpName(name: string): name is OpName {
  return (OP_NAMES as readonly string[]).includes(name);
}

/** Validates an operation's name and arguments; throws OP_UNKNOWN / OP_BAD_ARGUMENT, runs nothing. */
export function validateOp(ctx: Pick<OpContext, 'config' | 'slots'>, name: string, body: unknown) {
  if (!isOpName(name)) {
    throw new AgentError('OP_UNKNOWN', `no operation ${JSON.stringify(name)}; allowed: ${OP_NAMES.join(', ')}`, { op: name, allowed: [...OP_NAMES] });
  }
  const parsed = argsSchemas(ctx.config.ops.maxDeadlineMs)[name].safeParse(body ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.code === 'unrecognized_keys' ? `unknown key(s) ${i.keys.join(', ')}` : i.message}`);
    throw new AgentError('OP_BAD_ARGUMENT', `${name}: ${problems.join('; ')}`, { op: name, problems });
  }
  const args = parsed.data as { slot: string; deadlineMs?: number; user?: string; target?: string };
  const slot = ctx.slots.get(args.slot);
  if (!slot) throw new AgentError('OP_BAD_ARGUMENT', `${name}: slot ${args.slot} is not on this machine`, { op: name, slot: args.slot });
  return { op: name, slot, args, deadlineMs: args.deadlineMs ?? ctx.config.ops.defaultDeadlineMs };
}

async function lockSlot(ctx: OpContext, slot: string, what: string, until: number): Promise<() => void> {
  for (;;) {
    const lock = ctx.locks.acquire(slot, what);
    if ('release' in lock) return lock.release;
    if (Date.now() >= until) throw new AgentError('SLOT_BUSY', `slot ${slot} is busy with ${lock.heldBy}`, { slot, heldBy: lock.heldBy });
    await new Promise((r) => setTimeout(r, 100));
  }
}

function mustReplicate(slot: string, role: SlotRole, options: { duringFailover?: boolean } = {}): void {
  const why = replicationRefusal(slot, role, options);
  if (why) throw new AgentError('OP_REFUSED', why, { slot, role });
}

/** Runs one validated operation under the slot's lock; every path ends by its deadline. */
export async function runOp(ctx: OpContext, name: string, body: unknown): Promise<OpResult> {
  const { op, slot, args, deadlineMs } = validateOp(ctx, name, body);
  const startedAt = Date.now();
  const until = startedAt + deadlineMs;
  const release = await lockSlot(ctx, slot.name, `operation ${op}`, until);
  const commands: string[][] = [];
  try {
    const role = roleOf(await ctx.layout(), slot.name);
    let out: Omit<OpResult, 'op' | 'slot' | 'durationMs' | 'record'>;
    if (op === 'flush') {
      mustReplicate(slot.name, role, { duringFailover: true });
      out = await flush(ctx, slot, role, until, commands);
    } else if (op === 'synclog-user' || op === 'sync-user') {
      mustReplicate(slot.name, role);
      let target: string | undefined;
      if (op === 'sync-user') {
        const layout = await ctx.layout();
        target = args.target === slot.name ? undefined : layout?.slots[args.target as string]?.ip;
        if (!target) throw new AgentError('OP_BAD_ARGUMENT', `sync-user: target ${args.target} is not another slot in the directory`, { op, target: args.target });
      }
      const template = op === 'sync-user' ? ctx.config.commands.syncUser : ctx.config.commands.queueUser;
      const argv = expandTemplate(template, { conf: slot.imapdConf, slot: slot.name, user: args.user, target, channel: slot.channel });
      commands.push(argv);
      await runCommand(argv, Math.max(1, until - Date.now()));
      out = { detail: op === 'sync-user' ? `replicated ${args.user} to ${args.target}` : `queued ${args.user} in the sync log` };
    } else {
      const template = op === 'stop-services' ? ctx.config.commands.stopServices : ctx.config.commands.startServices;
      if (!template) throw new AgentError('OP_NOT_CONFIGURED', `agent.commands.${op === 'stop-services' ? 'stopServices' : 'startServices'} is not set`, { op });
      const argv = expandTemplate(template, { conf: slot.imapdConf, slot: slot.name, channel: slot.channel });
      commands.push(argv);
      await runCommand(argv, Math.max(1, until - Date.now()));
      out = { detail: op === 'stop-services' ? 'services stopped' : 'services started' };
    }
    const durationMs = Date.now() - startedAt;
    return { op, slot: slot.name, durationMs, ...out,
      record: { kind: op, slot: slot.name, result: 'ok', startedAt, durationMs, commands, detail: out.detail } };
  } finally {
    release();
  }
}

/**
 * Pushes everything pending to the replica and resolves once the log is empty. With a rolling
 * client running it only waits (two clients on one log would race). Without one it does what the
 * client would: replay leftovers, then rename `log` to `log-run` and replay that. The rename is
 * safe against writers: they re-check the inode after taking the lock and start a new `log`, and
 * `sync_client -f` locks the file before reading it, so an append in flight finishes first
 * (sync_log.c). If the agent dies midway, the next rolling client replays `log-run` itself.
 */
async function flush(ctx: OpContext, slot: LocalSlot, role: SlotRole, until: number, commands: string[][]) {
  let before: number | undefined;
  for (;;) {
    const r = await ctx.readSlot(slot);
    if (r.status === 'error') throw new AgentError('OP_REFUSED', `flush: ${r.error?.message ?? 'sync directory unreadable'}`, { slot: slot.name });
    before ??= r.pendingBytes;
    if (r.pendingBytes === 0) return { detail: 'sync log is empty', pendingBytesBefore: before, pendingBytesAfter: 0 };
    const left = until - Date.now();
    if (left <= 0) {
      throw new AgentError('COMMAND_TIMEOUT', `flush: ${r.pendingBytes} bytes still pending at the deadline`,
        { slot: slot.name, pendingBytes: r.pendingBytes, files: r.files.map((f) => f.name) });
    }
    if (r.rollingClient.running) {
      await new Promise((res) => setTimeout(res, Math.min(250, left)));
      continue;
    }
    const ran = commands.length;
    for (const f of r.files.filter((x) => x.orphan)) {
      const step = await replayFile(ctx, slot, role, f.name, Math.max(1, until - Date.now()));
      if (step.argv.length) commands.push(step.argv);
    }
    const log = r.files.find((f) => f.name === 'log' && f.bytes > 0);
    const runExists = await stat(join(slot.syncDir, 'log-run')).then(() => true, () => false);
    if (log && !runExists) {
      await rename(join(slot.syncDir, 'log'), join(slot.syncDir, 'log-run'));
      const step = await replayFile(ctx, slot, role, 'log-run', Math.max(1, until - Date.now()));
      if (step.argv.length) commands.push(step.argv);
    }
    // Nothing to run (e.g. a log-<PID> whose sync_client still works on it): look again shortly.
    if (commands.length === ran) await new Promise((res) => setTimeout(res, Math.min(250, Math.max(1, until - Date.now()))));
  }
}
