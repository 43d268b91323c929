import type { Command } from 'commander';
import { loadCliConfig, type GlobalOptions } from './context.js';

/**
 * `storeroute serve`: runs the LMTP proxy, auth_http service and admin API from one config file.
 * Bad config refuses to start (exit 2) with every problem listed.
 */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the LMTP proxy, auth_http service, replay journal and admin API')
    .action(async (_opts: unknown, cmd: Command) => {
      // A bad config throws ConfigError: the CLI lists every problem and exits 2; nothing starts.
      const config = loadCliConfig(cmd.optsWithGlobals<GlobalOptions>());
      // Imported here so that read-only CLI commands do not load the servers.
      const { startStoreroute, handleSignals, createLogger } = await import('../main.js');
      const logger = createLogger(config.log);
      try {
        const running = await startStoreroute(config, logger);
        handleSignals(running, logger);
      } catch (err) {
        logger.fatal({ err }, 'storeroute_start_failed');
        throw err; // the CLI prints it and exits non-zero
      }
      // The CLI exits when an action settles; a running server only ends through a signal
      // (handleSignals exits the process after draining).
      await new Promise<never>(() => undefined);
    });
}
