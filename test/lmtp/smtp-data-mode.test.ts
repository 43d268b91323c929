/**
 * The DATA-mode parser patch (src/lmtp/smtp-data-mode.ts) against smtp-server's own: the same
 * wire bytes, cut into chunks at every position, must give the same message bytes, the same
 * commands after the final dot, and the same byte count, with either parser.
 */
import { describe, expect, it } from 'vitest';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { applySmtpServerPatches, originalFeedDataStream } from '../../src/lmtp/smtp-patch.js';

applySmtpServerPatches();
const patched = SMTPStream.prototype._feedDataStream;
const original = originalFeedDataStream();

interface Parsed {
  commands: string[];
  bodies: string[];
  counted: number[];
}

/** Feeds `chunks` to a fresh parser using `feed` for DATA mode, the way smtp-server's connection drives it. */
async function parse(feed: SMTPStream['_feedDataStream'], chunks: Buffer[], opts: { slowReader?: boolean } = {}): Promise<Parsed> {
  const parser = new SMTPStream();
  parser._feedDataStream = feed;
  const out: Parsed = { commands: [], bodies: [], counted: [] };
  parser.oncommand = (command: Buffer, callback?: () => void) => {
    const line = command.toString('latin1');
    out.commands.push(line);
    if (line === 'DATA') {
      const data = parser.startDataMode();
      const got: Buffer[] = [];
      data.on('data', (c: Buffer) => {
        got.push(c);
        if (opts.slowReader) { // backpressure: the parser must wait for 'drain'
          data.pause();
          setImmediate(() => data.resume());
        }
      });
      data.on('end', () => {
        out.bodies.push(Buffer.concat(got).toString('latin1'));
        out.counted.push(data.byteLength);
        parser.continue();
      });
    }
    callback?.();
  };
  const finished = new Promise<void>((resolve, reject) => { parser.on('finish', resolve); parser.on('error', reject); });
  for (const c of chunks) {
    if (!parser.write(c)) await new Promise((r) => parser.once('drain', r));
  }
  parser.end();
  await finished;
  // 'finish' can come before the last DATA stream's 'end' is handled: wait a turn for it.
  await new Promise((r) => setImmediate(r));
  return out;
}

function splitAt(wire: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    out.push(wire.subarray(from, c));
    from = c;
  }
  out.push(wire.subarray(from));
  return out.filter((b) => b.length > 0);
}

/** Dot-stuffs a message the way a compliant client does (a "." after CRLF is doubled). */
function stuff(body: string): string {
  return body.replace(/(^|\r\n)\./g, '$1..');
}

const compliant: Array<[string, string]> = [
  ['plain lines', 'Subject: x\r\n\r\nhello\r\nworld\r\n'],
  ['lines starting with dots', '.a\r\n..b\r\n.\r\n...\r\nend.\r\n'],
  ['a first line that is a single dot', '.\r\nafter\r\n'],
  ['an empty message', ''],
  ['a dot line at the very end', 'x\r\n.\r\n'],
  ['8-bit bytes beside dots', '\xe9t\xe9\r\n.\xe9\r\n\xff.\r\n'],
];
const nonCompliant: Array<[string, string]> = [
  // Wire bytes as a sloppy client might send them (not produced by stuff()): both parsers agree.
  ['an unstuffed line-start dot', 'DATA\r\nx\r\n.y\r\n.\r\nQUIT\r\n'],
  ['a bare LF before a dot line', 'DATA\r\nx\n.\r\nmore\r\n.\r\nQUIT\r\n'],
  ['a dot then CR then text', 'DATA\r\nx\r\n.\rz\r\n.\r\nQUIT\r\n'],
  ['a bare LF before stuffed dots', 'DATA\r\nx\n..y\r\n.\r\nQUIT\r\n'],
];

// One DATA per input: smtp-server itself loses a second message pipelined in the same chunk
// after a final dot (its continue() clears the callback the nested message just set).
const wireOf = (body: string) => Buffer.from(`MAIL FROM:<a@b.c>\r\nDATA\r\n${stuff(body)}.\r\nRSET\r\nQUIT\r\n`, 'latin1');

describe('DATA-mode parser patch', () => {
  it.each(compliant)('gives the original message back for %s, however the bytes are cut', async (_name, body) => {
    const wire = wireOf(body);
    const expected: Parsed = { commands: ['MAIL FROM:<a@b.c>', 'DATA', 'RSET', 'QUIT'], bodies: [body],
      counted: [Buffer.byteLength(body, 'latin1')] };
    for (let cut = 0; cut <= wire.length; cut++) {
      const chunks = splitAt(wire, [cut]);
      expect(await parse(patched, chunks), `cut at ${cut}`).toEqual(expected);
      expect(await parse(original, chunks), `original, cut at ${cut}`).toEqual(expected);
    }
    expect(await parse(patched, splitAt(wire, [...wire.keys()]))).toEqual(expected); // one byte at a time
  });

  it.each(nonCompliant)('agrees with the original on %s, however the bytes are cut', async (_name, text) => {
    const wire = Buffer.from(text, 'latin1');
    const reference = await parse(original, [wire]);
    for (let a = 0; a <= wire.length; a++) {
      for (let b = a; b <= wire.length; b += 3) {
        const chunks = splitAt(wire, [a, b]);
        expect(await parse(patched, chunks), `cuts at ${a},${b}`).toEqual(reference);
      }
    }
  });

  it('unstuffs a stuffed dot right after a bare LF at the very start (the original keeps it)', async () => {
    const wire = Buffer.from('DATA\r\n\n..x\r\n.\r\n', 'latin1');
    expect((await parse(patched, [wire])).bodies).toEqual(['\n.x\r\n']);
    expect((await parse(original, [wire])).bodies).toEqual(['\n..x\r\n']);
  });

  it('a 2 MB message with many dot lines, in random chunks, under backpressure: identical bytes and count', async () => {
    let seed = 7;
    const rand = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
    const lines: string[] = [];
    let size = 0;
    while (size < 2 * 1024 * 1024) {
      const line = ['.', '..', '.x', 'a.b', ''][rand(5)] + 'y'.repeat(rand(200));
      lines.push(line);
      size += line.length + 2;
    }
    const body = lines.join('\r\n') + '\r\n';
    const wire = Buffer.from(`DATA\r\n${stuff(body)}.\r\nQUIT\r\n`, 'latin1');
    const cuts: number[] = [];
    for (let at = rand(70_000); at < wire.length; at += 1 + rand(70_000)) cuts.push(at);
    const got = await parse(patched, splitAt(wire, cuts), { slowReader: true });
    expect(got.commands).toEqual(['DATA', 'QUIT']);
    expect(got.counted).toEqual([Buffer.byteLength(body, 'latin1')]);
    expect(got.bodies[0] === body).toBe(true); // not toEqual: a 2 MB diff would flood the report
  });
});
