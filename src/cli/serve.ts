import type { Command } from 'commander';

/** `storeroute serve`: filled in by the composition root work (src/main.ts). */
export function registerServe(program: Command): void {
  program.command('serve').description('run the LMTP proxy, auth_http service and admin API').action(() => {
    throw new Error('serve: not implemented yet');
  });
}
