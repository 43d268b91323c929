/**
 * Reading a secret: from a terminal without echo (asked twice), or the first line of piped stdin
 * (`printf '%s\n' "$pw" | storeroute user set-password alice`), so it never appears in argv or
 * shell history.
 */
import { UsageError, type CliIo } from './io.js';

async function readFirstLine(io: CliIo): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
    if (chunks.at(-1)!.includes(0x0a)) break;
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const nl = text.indexOf('\n');
  return (nl === -1 ? text : text.slice(0, nl)).replace(/\r$/, '');
}

function readHidden(io: CliIo, prompt: string): Promise<string> {
  const stdin = io.stdin;
  io.stderr(prompt);
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (err: Error | null) => {
      stdin.removeListener('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      io.stderr('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (data: Buffer | string) => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return finish(null);
        if (ch === '\u0003') return finish(new UsageError('cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.setRawMode?.(true);
    stdin.on('data', onData);
    stdin.resume();
  });
}

/** The new password, refused when empty (or when the two terminal entries differ). */
export async function readNewPassword(io: CliIo): Promise<string> {
  let password: string;
  if (io.stdin.isTTY) {
    password = await readHidden(io, 'New password: ');
    const again = await readHidden(io, 'Again: ');
    if (again !== password) throw new UsageError('the two passwords differ; nothing changed');
  } else {
    password = await readFirstLine(io);
  }
  if (password === '') throw new UsageError('empty password; nothing changed (use --clear to remove a password)');
  return password;
}
