/** `storeroute directory apply|export`: the layout as a file a site keeps under version control. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import {
  applyDirectory, DEFAULT_MAX_DELETE_SHARE, describeMutation, exportDirectory, toFileObject, writeDirectoryFile,
  type Deletions, type DirectorySnapshot, type Mutation,
} from '../directory/index.js';
import { actorFor, onDirectory } from './command.js';
import { printJson, type CliIo } from './io.js';

interface ApplyFlags {
  dryRun?: boolean;
  json?: boolean;
  prune?: boolean;
  force?: boolean;
  maxDelete: number;
}

/** commander argParser: a percentage 0-100 (decimals allowed). */
function percent(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n > 100) throw new InvalidArgumentError(`expected a percentage 0-100, got "${value}"`);
  return n;
}

function describeDeletions(d: Deletions): string {
  return `${d.users} user(s), ${d.stores} store(s), ${d.slots} slot(s)`;
}

export function registerDirectory(program: Command, io: CliIo): void {
  const directory = program.command('directory').description('the whole directory as a YAML/JSON file');

  directory.command('apply')
    .description('make the live directory match a file: shows the changes, then applies them all at once, audited')
    .argument('<file>', 'directory file (YAML or JSON) with slots, stores and users sections')
    .option('--dry-run', 'show the changes only')
    .option('--prune', 'delete the users, stores and slots the file does not list (refused without it)')
    .option('--force', `with --prune: allow deleting more than --max-delete of the users`)
    .addOption(new Option('--max-delete <percent>', 'the largest share of the users one apply may delete without --force')
      .argParser(percent).default(DEFAULT_MAX_DELETE_SHARE * 100))
    .option('--json', 'machine-readable output: { file, fromVersion, toVersion, changes, deletions, applied, dryRun }')
    .action((file: string, opts: ApplyFlags, cmd: Command) => {
      const dryRun = opts.dryRun === true;
      const options = { actor: actorFor(io, cmd), dryRun, prune: opts.prune === true, force: opts.force === true,
        maxDeleteShare: opts.maxDelete / 100 };
      return onDirectory(io, cmd, async (dir) => {
        let shown: string | null = null;
        const show = (live: DirectorySnapshot, mutations: Mutation[], deletions: Deletions) => {
          if (opts.json) return;
          const lines = mutations.map((m) => `  ${describeMutation(m)}\n`).join('');
          const deletes = deletions.users + deletions.stores + deletions.slots > 0
            ? `deletes ${describeDeletions(deletions)}${options.prune ? '' : ' (needs --prune)'}\n` : '';
          if (shown === null) {
            io.stdout(mutations.length === 0 ? `no changes: the directory (version ${live.version}) already matches ${file}\n`
              : `${file}: ${mutations.length} change(s) against directory version ${live.version}\n${lines}${deletes}`);
          } else if (lines !== shown) {
            io.stdout(`the directory changed meanwhile (now version ${live.version}); planned again:\n${lines}${deletes}`);
          }
          shown = lines;
        };
        // Parses the file first (a bad file prints its problems only), plans against the live
        // directory, refuses deletions without --prune (the plan printed shows them), and commits
        // everything at once; a change landing meanwhile makes it plan again.
        const result = await applyDirectory(dir, file, { ...options, onPlan: (p) => show(p.live, p.mutations, p.deletions) });
        if (opts.json) {
          return printJson(io, { file, dryRun, fromVersion: result.fromVersion, toVersion: result.toVersion,
            changes: result.mutations.map(describeMutation), deletions: result.deletions, applied: result.applied });
        }
        if (dryRun && result.mutations.length > 0) io.stdout('dry run: nothing applied\n');
        if (result.applied > 0) io.stdout(`applied ${result.applied} change(s): version ${result.fromVersion} → ${result.toVersion}\n`);
      }, { mayCreate: true });
    });

  directory.command('export').description('print the live directory in the directory-file format')
    .addOption(new Option('--format <format>', 'output format').choices(['yaml', 'json']).default('yaml'))
    .option('-o, --output <file>', 'write FILE instead of stdout: atomically, and only once the directory was read')
    .action((opts: { format: 'yaml' | 'json'; output?: string }, cmd: Command) => onDirectory(io, cmd, async (dir) => {
      const snap = await dir.snapshot();
      const text = opts.format === 'json' ? JSON.stringify(toFileObject(snap), null, 2) + '\n' : exportDirectory(snap);
      if (opts.output === undefined) return io.stdout(text);
      // `export > file` truncates the file before the directory is even asked; with -o a failed
      // read leaves the old file as it was, and a reader never sees a half-written one.
      await writeDirectoryFile(opts.output, text);
      io.stdout(`wrote ${opts.output}: directory version ${snap.version}, ${Object.keys(snap.slots).length} slot(s), `
        + `${Object.keys(snap.stores).length} store(s), ${Object.keys(snap.users).length} user(s)\n`);
    }));
}
