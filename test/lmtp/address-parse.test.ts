/**
 * The MAIL/RCPT fast path (src/lmtp/address-parse.ts) against smtp-server's own parser: for every
 * line the patched parser must answer exactly what the original answers, and the fast path must
 * actually take the plain lines it is there for.
 */
import { describe, expect, it } from 'vitest';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { parseSimpleAddressCommand } from '../../src/lmtp/address-parse.js';
import { applySmtpServerPatches, originalParseAddressCommand } from '../../src/lmtp/smtp-patch.js';

applySmtpServerPatches();
const original = originalParseAddressCommand();
// What the parser reads of its connection: the server's options and logger, the session, the id.
const connection = { _server: { options: {}, logger: { error: () => undefined } }, session: {}, id: 'test' };
const patched = (SMTPConnection.prototype as unknown as { _parseAddressCommand(n: string, c: unknown): unknown })._parseAddressCommand;

function both(name: string, line: string) {
  const buf = Buffer.from(line, 'utf8'); // smtp-server hands the line over as a Buffer
  return { original: original.call(connection, name, buf), patched: patched.call(connection, name, buf) };
}

const PLAIN = [
  'RCPT TO:<u@bench.test>', 'rcpt to:<U@Bench.Test>', 'Rcpt To:<first.last+tag@mail.example.org>',
  "MAIL FROM:<a!#$%&'*+/=?^_`{|}~-b@x.y>", 'RCPT TO:<a@b>', 'RCPT TO:<a@1-2.example>', 'MAIL FROM:<x@y-z.example>',
];

const EDGES = [
  'RCPT TO: <u@bench.test>', 'RCPT TO:<u@bench.test> ', 'RCPT TO:<u@bench.test> NOTIFY=NEVER', 'RCPT  TO:<u@b.c>',
  'RCPT TO :<u@b.c>', 'RCPT TO:<>', 'MAIL FROM:<>', 'MAIL FROM:<> SIZE=10', 'RCPT TO:<postmaster>', 'RCPT TO:<Postmaster>',
  'RCPT TO:<.a@b.c>', 'RCPT TO:<a.@b.c>', 'RCPT TO:<a..b@c.d>', 'RCPT TO:<a@-b.c>', 'RCPT TO:<a@b-.c>', 'RCPT TO:<a@b..c>',
  'RCPT TO:<a@b.-c>', 'RCPT TO:<a@.b.c>', 'RCPT TO:<a@b.c.>', 'RCPT TO:<a@b--c.d>', 'RCPT TO:<a@xn--mnchen-3ya.example>',
  'RCPT TO:<a@XN--MNCHEN-3YA.example>', 'RCPT TO:<a@münchen.example>', 'RCPT TO:<"q"@b.c>', 'RCPT TO:<"a b"@c.d>',
  'RCPT TO:<@relay.example:a@b.c>', 'RCPT TO:<a@[192.0.2.1]>', 'RCPT TO:<a@[IPv6:2001:db8::1]>', 'RCPT TO:<a@b@c>',
  'RCPT TO:<a@b_c.d>', 'RCPT TO:a@b.c', 'RCPT TO:<a@b.c', 'RCPT TO:<<a@b.c>>', 'RCPT TO:<a\u200b@b.c>', 'RCPT TO:<a\x01@b.c>',
  'RCPT TO:<ü@b.c>', 'MAIL FROM:<a@b.c> BODY=8BITMIME', 'RCPT TO:<a@b.c>x', 'RCPT:<a@b.c>', 'RCPT TO:<a @b.c>',
  `RCPT TO:<${'l'.repeat(64)}@${'d'.repeat(188)}>`, `RCPT TO:<${'l'.repeat(64)}@${'d'.repeat(189)}>`,
  `RCPT TO:<${'l'.repeat(200)}@${'d'.repeat(52)}>`, `RCPT TO:<${'l'.repeat(200)}@${'d'.repeat(53)}>`,
];

describe('the MAIL/RCPT fast path', () => {
  it('takes the plain lines, and answers them as smtp-server does', () => {
    for (const line of PLAIN) {
      const name = line.toUpperCase().startsWith('MAIL') ? 'mail from' : 'rcpt to';
      expect(parseSimpleAddressCommand(name, Buffer.from(line)), line).not.toBeNull();
      const { original: o, patched: p } = both(name, line);
      expect(p, line).toEqual(o);
      expect(o, line).not.toBe(false);
    }
  });

  it('answers every edge case (accepted or refused) as smtp-server does, under both names', () => {
    for (const line of [...PLAIN, ...EDGES]) {
      for (const name of ['mail from', 'rcpt to']) {
        const { original: o, patched: p } = both(name, line);
        expect(p, `${name}: ${line}`).toEqual(o);
      }
    }
  });

  it('answers random lines near the plain shape as smtp-server does', () => {
    // Deterministic pseudo-random lines built from the characters that matter to either parser.
    let seed = 12345; // mulberry32
    const rand = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return (((t ^ (t >>> 14)) >>> 0) % n);
    };
    // Mostly characters the fast path takes, with the ones that send a line elsewhere mixed in.
    const usual = ['a', 'Z', '0', 'x', 'n', 'a', 'Z', '0', '.', '-'];
    const local = ['+', '_', '=', '!'];
    const unusual = ['@', ':', '<', '>', ' ', '"', '\\', '[', ']', 'é', '\t', '\u200b'];
    const char = (extra: string[]) => {
      const r = rand(20);
      return r < 17 ? usual[rand(usual.length)] : r < 19 ? extra[rand(extra.length)] : unusual[rand(unusual.length)];
    };
    const piece = (max: number, extra: string[] = local) => Array.from({ length: rand(max) }, () => char(extra)).join('');
    let fast = 0;
    for (let i = 0; i < 20_000; i++) {
      const verb = ['RCPT TO', 'MAIL FROM', 'rcpt to', 'Rcpt To', 'RCPT  TO'][rand(5)]!;
      const lp = rand(4) === 0 ? piece(6) : `ab${piece(3)}c`;
      const domain = rand(4) === 0 ? piece(8, ['_']) : `d${piece(4, ['_'])}e.f${rand(2) ? '' : piece(3, ['_'])}`;
      const line = `${verb}:<${lp}@${domain}>${rand(6) === 0 ? piece(4) : ''}`;
      const name = rand(4) ? (verb.toUpperCase().startsWith('RCPT') ? 'rcpt to' : 'mail from') : 'rcpt to';
      if (parseSimpleAddressCommand(name, Buffer.from(line))) fast++;
      const { original: o, patched: p } = both(name, line);
      expect(p, `${name}: ${JSON.stringify(line)}`).toEqual(o);
    }
    expect(fast).toBeGreaterThan(2_000); // the corpus did exercise the fast path
  });
});
