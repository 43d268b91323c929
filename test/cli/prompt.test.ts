import { describe, it, expect } from 'vitest';
import { PassThrough } from 'node:stream';
import { readNewPassword } from '../../src/cli/prompt.js';
import { UsageError, type CliIo, type CliInput } from '../../src/cli/io.js';

/** A terminal stand-in: keystrokes arrive as data, raw mode is recorded. */
function terminal(keys: string[]): { io: CliIo; rawModes: boolean[]; err: () => string } {
  const stdin = new PassThrough() as PassThrough & CliInput;
  const rawModes: boolean[] = [];
  stdin.isTTY = true;
  stdin.setRawMode = (mode: boolean) => { rawModes.push(mode); return stdin; };
  let err = '';
  const io: CliIo = { stdout: () => undefined, stderr: (t) => { err += t; }, stdin, env: {} };
  // Each prompt arrives only after the previous answer, like a person typing.
  let i = 0;
  const origResume = stdin.resume.bind(stdin);
  stdin.resume = () => {
    const r = origResume();
    const key = keys[i++];
    if (key !== undefined) setImmediate(() => stdin.write(key));
    return r;
  };
  return { io, rawModes, err: () => err };
}

describe('reading a new password', () => {
  it('on a terminal: asks twice without echo, handles backspace, restores the terminal', async () => {
    const t = terminal(['sesamX\u007fe\r', 'sesame\r']);
    await expect(readNewPassword(t.io)).resolves.toBe('sesame');
    expect(t.err()).toBe('New password: \nAgain: \n');
    expect(t.rawModes).toEqual([true, false, true, false]);
  });

  it('on a terminal: two different entries change nothing', async () => {
    const t = terminal(['one\r', 'two\r']);
    await expect(readNewPassword(t.io)).rejects.toThrow(/the two passwords differ/);
  });

  it('on a terminal: Ctrl-C cancels', async () => {
    const t = terminal(['abc\u0003']);
    await expect(readNewPassword(t.io)).rejects.toBeInstanceOf(UsageError);
    expect(t.rawModes).toEqual([true, false]);
  });

  it('from a pipe: the first line, without its CR LF; an empty line is refused', async () => {
    const pipe = (text: string): CliIo => {
      const stdin = new PassThrough();
      stdin.end(text);
      return { stdout: () => undefined, stderr: () => undefined, stdin, env: {} };
    };
    await expect(readNewPassword(pipe('p4ss word\r\nignored\n'))).resolves.toBe('p4ss word');
    await expect(readNewPassword(pipe('no newline'))).resolves.toBe('no newline');
    await expect(readNewPassword(pipe(''))).rejects.toThrow(/empty password/);
  });
});
