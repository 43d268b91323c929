/** `storeroute slot list|show|set-state` */
import { Argument, type Command } from 'commander';
import { SLOT_STATES, type SlotState } from '../directory/index.js';
import { DirectoryNotFoundError } from '../core/errors.js';
import { actorFor, onDirectory, type JsonOption } from './command.js';
import { byName, slotRole, slotTable } from './format.js';
import { printJson, type CliIo } from './io.js';
import { formatFields } from './table.js';

export function registerSlot(program: Command, io: CliIo): void {
  const slot = program.command('slot').description('slots: one Cyrus instance each, on one machine');

  slot.command('list').description('every slot with its address, state, store and role')
    .option('--json', 'machine-readable output')
    .action((opts: JsonOption, cmd: Command) => onDirectory(io, cmd, async (dir) => {
      const snap = await dir.snapshot();
      const slots = byName(snap.slots);
      if (opts.json) return printJson(io, slots.map((s) => ({ ...s, ...slotRole(snap, s.name) })));
      io.stdout(slots.length ? slotTable(snap, slots) : 'no slots\n');
    }));

  slot.command('show').description('one slot')
    .argument('<name>', 'slot name')
    .option('--json', 'machine-readable output')
    .action((name: string, opts: JsonOption, cmd: Command) => onDirectory(io, cmd, async (dir) => {
      const snap = await dir.snapshot();
      const s = snap.slots[name];
      if (!s) throw new DirectoryNotFoundError('slot', name);
      const { store, role } = slotRole(snap, name);
      if (opts.json) return printJson(io, { ...s, store, role });
      io.stdout(formatFields([
        ['slot', s.name], ['machine', s.machine], ['ip', s.ip], ['lmtp', s.lmtp], ['imap', s.imap],
        ['pop3', s.pop3], ['state', s.state], ['store', store], ['role', role],
      ]));
    }));

  slot.command('set-state').description('mark a slot up, down or in maintenance')
    .argument('<name>', 'slot name')
    .addArgument(new Argument('<state>', 'new state').choices(SLOT_STATES))
    .option('--json', 'machine-readable output')
    .action((name: string, state: SlotState, opts: JsonOption, cmd: Command) => onDirectory(io, cmd, async (dir) => {
      const before = await dir.getSlot(name);
      if (!before) throw new DirectoryNotFoundError('slot', name);
      const after = await dir.setSlotState(name, state, actorFor(io, cmd));
      if (opts.json) return printJson(io, after);
      io.stdout(`${name}: state ${before.state} → ${after.state}\n`);
    }));
}
