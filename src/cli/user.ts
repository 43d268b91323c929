/** `storeroute user show|move|set-state|set-password` */
import { Argument, Option, type Command } from 'commander';
import { USER_STATES, type User, type UserState } from '../directory/index.js';
import { DirectoryNotFoundError } from '../core/errors.js';
import { hashPassword } from '../auth/index.js';
import { actorFor, onDirectory, type JsonOption } from './command.js';
import { publicUser } from './format.js';
import { printJson, UsageError, type CliIo } from './io.js';
import { readNewPassword } from './prompt.js';
import { formatFields } from './table.js';

interface MoveFlags extends JsonOption {
  begin?: boolean;
  finish?: boolean;
  abort?: boolean;
}

function moveMode(opts: MoveFlags): 'both' | 'begin' | 'finish' | 'abort' {
  const chosen = (['begin', 'finish', 'abort'] as const).filter((m) => opts[m]);
  if (chosen.length > 1) throw new UsageError(`choose one of --begin, --finish, --abort (got ${chosen.map((m) => '--' + m).join(' ')})`);
  return chosen[0] ?? 'both';
}

export function registerUser(program: Command, io: CliIo): void {
  const user = program.command('user').description('users: which store holds a mailbox');

  user.command('show').description('one user and where its mail goes now')
    .argument('<name>', 'user name')
    .option('--json', 'machine-readable output')
    .action((name: string, opts: JsonOption, cmd: Command) => onDirectory(io, cmd, async (dir) => {
      const u = await dir.getUser(name);
      if (!u) throw new DirectoryNotFoundError('user', name);
      const store = await dir.getStore(u.store);
      const master = store ? await dir.getSlot(store.currentMaster) : null;
      if (opts.json) return printJson(io, { user: publicUser(u), store, master });
      io.stdout(formatFields([
        ['user', u.name], ['state', u.state], ['store', u.store], ['moving to', u.movingTo],
        ['password', u.passwordHash ? 'set' : 'not set'],
        ['master', master ? `${master.name} (${master.machine} ${master.ip}, lmtp ${master.lmtp}, imap ${master.imap})` : null],
        ['store state', store?.state], ['master state', master?.state],
      ]));
    }));

  user.command('move').description('move a user to another store (default: begin and finish at once)')
    .argument('<name>', 'user name')
    .argument('[store]', 'target store (needed unless --finish or --abort)')
    .option('--begin', 'only phase 1: mark the user moving (deliveries tempfail until finished)')
    .option('--finish', 'only phase 2: switch the user to the store it is moving to')
    .option('--abort', 'undo phase 1: the user stays on its old store')
    .option('--json', 'machine-readable output')
    .action((name: string, target: string | undefined, opts: MoveFlags, cmd: Command) => {
      const mode = moveMode(opts);
      if ((mode === 'both' || mode === 'begin') && target === undefined) {
        throw new UsageError('user move: missing target store');
      }
      return onDirectory(io, cmd, async (dir) => {
        const actor = actorFor(io, cmd);
        const before = await dir.getUser(name);
        if (!before) throw new DirectoryNotFoundError('user', name);
        if ((mode === 'finish' || mode === 'abort') && target !== undefined && before.movingTo !== target) {
          throw new UsageError(`user ${name} is ${before.movingTo ? `moving to ${before.movingTo}` : 'not moving'}, not to ${target}; nothing changed`);
        }
        let after: User;
        if (mode === 'begin' || mode === 'both') after = await dir.beginMove(name, target!, actor);
        else if (mode === 'finish') after = await dir.finishMove(name, actor);
        else after = await dir.abortMove(name, actor);
        if (mode === 'both') {
          try {
            after = await dir.finishMove(name, actor);
          } catch (err) {
            io.stderr(`user ${name} is left moving to ${target}: run \`user move ${name} --finish\` or \`--abort\`\n`);
            throw err;
          }
        }
        if (opts.json) return printJson(io, publicUser(after));
        io.stdout(`${name}: store ${before.store} (${before.state}) → ${after.store} (${after.state})`
          + (after.movingTo ? `, moving to ${after.movingTo}` : '') + '\n');
      });
    });

  user.command('set-state').description('mark a user active or suspended')
    .argument('<name>', 'user name')
    .addArgument(new Argument('<state>', 'new state').choices(USER_STATES))
    .option('--json', 'machine-readable output')
    .action((name: string, state: UserState, opts: JsonOption, cmd: Command) => onDirectory(io, cmd, async (dir) => {
      const before = await dir.getUser(name);
      if (!before) throw new DirectoryNotFoundError('user', name);
      const after = await dir.setUserState(name, state, actorFor(io, cmd));
      if (opts.json) return printJson(io, publicUser(after));
      io.stdout(`${name}: state ${before.state} → ${after.state}\n`);
    }));

  user.command('set-password').description('store a password hash for auth.verify=directory (reads stdin or asks without echo)')
    .argument('<name>', 'user name')
    .addOption(new Option('--clear', 'remove the password instead'))
    .action(async (name: string, opts: { clear?: boolean }, cmd: Command) => {
      // Read the secret before opening the directory: a slow typist must not hold a Redis connection.
      const hash = opts.clear ? null : await hashPassword(await readNewPassword(io));
      await onDirectory(io, cmd, async (dir) => {
        await dir.setPasswordHash(name, hash, actorFor(io, cmd));
      });
      io.stdout(`${name}: password ${hash === null ? 'cleared' : 'set'}\n`);
    });
}
