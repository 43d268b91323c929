/** `storeroute history`: the audit trail, newest first. */
import type { Command } from 'commander';
import { onDirectory, positiveInt, type JsonOption } from './command.js';
import { describeChange, redactHashes } from './format.js';
import { printJson, type CliIo } from './io.js';
import { formatTable } from './table.js';

export function registerHistory(program: Command, io: CliIo): void {
  program.command('history').description('audited directory changes, newest first')
    .option('--limit <n>', 'how many records', positiveInt, 20)
    .option('--json', 'machine-readable output')
    .action((opts: JsonOption & { limit: number }, cmd: Command) => onDirectory(io, cmd, async (dir) => {
      const records = await dir.history(opts.limit);
      if (opts.json) return printJson(io, redactHashes(records));
      if (records.length === 0) return io.stdout('no history\n');
      io.stdout(formatTable(['version', 'at', 'actor', 'action', 'target', 'change'],
        records.map((r) => [r.version, r.at, r.actor, r.action, r.target, describeChange(r)])));
    }));
}
