import type { Command } from 'commander';

/** `storeroute replay`: filled in by the journal work (issue #4). */
export function registerReplay(program: Command): void {
  program.command('replay').description('re-deliver journaled messages to a store\'s current master').action(() => {
    throw new Error('replay: not implemented yet');
  });
}
