/** `storeroute store list|show|failover|set-state` */
import { Argument, Option, type Command } from 'commander';
import { STORE_STATES, isRunningBackwards, type StoreState } from '../directory/index.js';
import { DirectoryNotFoundError } from '../core/errors.js';
import { actorFor, nonNegativeInt, onDirectory, type JsonOption } from './command.js';
import { byName, slotTable, storeTable, userCounts } from './format.js';
import { printJson, type CliIo } from './io.js';
import { readReplication, seconds, slotSync, splitBrainText, stateText, storeReplication, type SlotSync } from './replication.js';
import { formatFields, formatTable } from './table.js';

interface FailoverFlags extends JsonOption {
  to?: string;
  expectEpoch?: number;
  force?: boolean;
}

export function registerStore(program: Command, io: CliIo): void {
  const store = program.command('store').description('stores: groups of replicated slots with one current master');

  store.command('list').description('every store with its master, replicas and epoch')
    .option('--json', 'machine-readable output')
    .action((opts: JsonOption, cmd: Command) => onDirectory(io, cmd, async (dir) => {
      const snap = await dir.snapshot();
      const stores = byName(snap.stores);
      if (opts.json) return printJson(io, stores.map((s) => ({ ...s, runningBackwards: isRunningBackwards(s) })));
      io.stdout(stores.length ? storeTable(snap, stores) : 'no stores\n');
    }));

  store.command('show').description('one store, its slots, user count and replication state')
    .argument('<name>', 'store name')
    .option('--json', 'machine-readable output')
    .action((name: string, opts: JsonOption, cmd: Command) => onDirectory(io, cmd, async (dir, config) => {
      const snap = await dir.snapshot();
      const s = snap.stores[name];
      if (!s) throw new DirectoryNotFoundError('store', name);
      const slots = s.slots.map((n) => snap.slots[n]).filter((x) => x !== undefined);
      const users = userCounts(snap).get(name) ?? 0;
      const view = await readReplication(dir, config.agent);
      const verdict = storeReplication(view, s);
      const sync = slotSync(view, snap, s);
      if (opts.json) {
        return printJson(io, { store: s, runningBackwards: isRunningBackwards(s), slots, users, replication: { ...verdict, slots: sync } });
      }
      io.stdout(formatFields([
        ['store', s.name], ['state', s.state], ['epoch', s.epoch],
        ['current master', s.currentMaster], ['preferred master', s.preferredMaster],
        ['running backwards', isRunningBackwards(s) ? 'yes' : 'no'], ['users', users],
        ['replication', stateText(verdict.state, verdict.alert)], ['split-brain', splitBrainText(verdict) ?? 'no'],
      ]) + '\n' + slotTable(snap, slots) + '\n' + syncTable(sync));
    }));

  store.command('failover').description('make another slot of the store its current master')
    .argument('<name>', 'store name')
    .option('--to <slot>', 'target slot (default: the one replica that is up)')
    .option('--expect-epoch <n>', 'refuse unless the store is at this epoch (compare-and-set)', nonNegativeInt)
    .option('--force', 'allow a target slot that is not up')
    .option('--json', 'machine-readable output')
    .action((name: string, opts: FailoverFlags, cmd: Command) => onDirectory(io, cmd, async (dir) => {
      const before = await dir.getStore(name);
      if (!before) throw new DirectoryNotFoundError('store', name);
      const after = await dir.failover(name, {
        ...(opts.to !== undefined ? { to: opts.to } : {}),
        ...(opts.expectEpoch !== undefined ? { expectedEpoch: opts.expectEpoch } : {}),
        ...(opts.force ? { force: true } : {}),
      }, actorFor(io, cmd));
      if (opts.json) return printJson(io, after);
      io.stdout(`${name}: current master ${before.currentMaster} → ${after.currentMaster}, epoch ${before.epoch} → ${after.epoch}`
        + (isRunningBackwards(after) ? ` (running backwards: preferred master is ${after.preferredMaster})` : '') + '\n');
    }));

  store.command('set-state').description('mark a store active, failing-over or down')
    .argument('<name>', 'store name')
    .addArgument(new Argument('<state>', 'new state').choices(STORE_STATES))
    .addOption(new Option('--json', 'machine-readable output'))
    .action((name: string, state: StoreState, opts: JsonOption, cmd: Command) => onDirectory(io, cmd, async (dir) => {
      const before = await dir.getStore(name);
      if (!before) throw new DirectoryNotFoundError('store', name);
      const after = await dir.setStoreState(name, state, actorFor(io, cmd));
      if (opts.json) return printJson(io, after);
      io.stdout(`${name}: state ${before.state} → ${after.state}\n`);
    }));
}

/** Each slot's sync log as its machine's agent last reported it. */
function syncTable(rows: SlotSync[]): string {
  return formatTable(['slot', 'role', 'machine', 'sync', 'pending', 'lag', 'sync_client', 'reported', 'users', 'why'], rows.map((r) => [
    r.slot, r.role, r.machine, r.sync, r.pendingBytes, seconds(r.oldestPendingAgeMs),
    r.rollingClient === null ? null : r.rollingClient ? 'running' : 'none',
    r.reportAgeMs === null ? null : `${seconds(r.reportAgeMs)} ago`, r.users.join(',') || null, r.reasons.join('; '),
  ]));
}
