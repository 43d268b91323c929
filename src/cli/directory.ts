/** `storeroute directory apply|export`: the layout as a file a site keeps under version control. */
import { Option, type Command } from 'commander';
import {
  applyDirectory, describeMutation, diffDirectory, exportDirectory, readDirectoryFile, toFileObject,
} from '../directory/index.js';
import { actorFor, onDirectory } from './command.js';
import { printJson, type CliIo } from './io.js';

interface ApplyFlags {
  dryRun?: boolean;
  json?: boolean;
}

export function registerDirectory(program: Command, io: CliIo): void {
  const directory = program.command('directory').description('the whole directory as a YAML/JSON file');

  directory.command('apply').description('make the live directory match a file: shows the changes, then applies them as audited mutations')
    .argument('<file>', 'directory file (YAML or JSON)')
    .option('--dry-run', 'show the changes only')
    .option('--json', 'machine-readable output: { file, fromVersion, toVersion, changes, applied, dryRun }')
    .action((file: string, opts: ApplyFlags, cmd: Command) => {
      const dryRun = opts.dryRun === true;
      return onDirectory(io, cmd, async (dir) => {
        // Parse and plan before printing anything: a bad file prints its problems only.
        const want = await readDirectoryFile(file);
        const live = await dir.snapshot();
        const planned = diffDirectory(live, want, file).map(describeMutation);
        if (!opts.json) {
          if (planned.length === 0) return io.stdout(`no changes: the directory (version ${live.version}) already matches ${file}\n`);
          io.stdout(`${file}: ${planned.length} change(s) against directory version ${live.version}\n`
            + planned.map((d) => `  ${d}\n`).join(''));
          if (dryRun) return io.stdout('dry run: nothing applied\n');
        }
        // applyDirectory plans again against the then-live directory and validates the whole
        // result before its first mutation, so a change made meanwhile cannot half-apply the file.
        const result = await applyDirectory(dir, want, { actor: actorFor(io, cmd), dryRun });
        const changes = result.mutations.map(describeMutation);
        if (opts.json) {
          return printJson(io, { file, dryRun, fromVersion: result.fromVersion, toVersion: result.toVersion, changes, applied: result.applied });
        }
        if (changes.join('\n') !== planned.join('\n')) {
          io.stdout(`the directory changed meanwhile; applied instead:\n${changes.map((d) => `  ${d}\n`).join('')}`);
        }
        if (result.applied > 0) io.stdout(`applied ${result.applied} change(s): version ${result.fromVersion} → ${result.toVersion}\n`);
      }, { mayCreate: true });
    });

  directory.command('export').description('print the live directory in the directory-file format')
    .addOption(new Option('--format <format>', 'output format').choices(['yaml', 'json']).default('yaml'))
    .action((opts: { format: 'yaml' | 'json' }, cmd: Command) => onDirectory(io, cmd, async (dir) => {
      const snap = await dir.snapshot();
      if (opts.format === 'json') printJson(io, toFileObject(snap));
      else io.stdout(exportDirectory(snap));
    }));
}
