/** `storeroute config print|check` */
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { loadConfig, redactConfig } from '../config/index.js';
import { ConfigError, type FileProblem } from '../core/errors.js';
import { globalsOf, type JsonOption } from './command.js';
import { loadCliConfig } from './context.js';
import { EXIT, printJson, SilentExit, type CliIo } from './io.js';

export function registerConfig(program: Command, io: CliIo): void {
  const config = program.command('config').description('the configuration file');

  config.command('print').description('the effective config (file + defaults + --redis), secrets redacted')
    .option('--json', 'JSON instead of YAML')
    .action((opts: JsonOption, cmd: Command) => {
      const effective = redactConfig(loadCliConfig(globalsOf(cmd), io.env));
      if (opts.json) printJson(io, effective);
      else io.stdout(stringify(effective));
    });

  config.command('check').description('validate a config file as `serve` would; lists every problem, then warnings')
    .argument('<file>', 'config file (YAML or JSON)')
    .option('--json', 'machine-readable output: { file, ok, problems, warnings }')
    .action(async (file: string, opts: JsonOption) => {
      // The schema first, then the rules `serve` checks before starting (imported lazily: they
      // live with the composition root). Warnings do not fail the check (`serve` starts with
      // them) but say what will not work, e.g. a replay without admin.token.
      let warnings: FileProblem[] = [];
      const check = async () => {
        const loaded = loadConfig(file);
        const { startupProblems, startupWarnings } = await import('../main.js');
        warnings = startupWarnings(loaded);
        const problems = startupProblems(loaded);
        if (problems.length > 0) throw new ConfigError(file, problems);
      };
      const printWarnings = () => {
        for (const w of warnings) io.stderr(`warning: ${file}: ${w.path}: ${w.message}\n`);
      };
      if (!opts.json) {
        try {
          await check();
        } finally {
          printWarnings();
        }
        io.stdout(`${file}: ok\n`);
        return;
      }
      try {
        await check();
        printJson(io, { file, ok: true, problems: [], warnings });
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        printJson(io, { file, ok: false, problems: err.problems, warnings });
        // The problems are on stdout already: exit 2 without repeating them on stderr.
        throw new SilentExit(EXIT.usage);
      }
    });
}
