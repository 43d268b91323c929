import { describe, it, expect } from 'vitest';
import { HeaderScanner, findHeaderEnd } from '../../src/lmtp/message-id.js';

/** Feeds `parts` through a scanner and returns the bytes it forwards plus what it found. */
function scan(parts: string[], domain: string | null = 'proxy.test', max?: number) {
  const s = new HeaderScanner(domain, max);
  const out: Buffer[] = [];
  for (const p of parts) out.push(...s.push(Buffer.from(p, 'latin1')));
  out.push(...s.end());
  return { text: Buffer.concat(out).toString('latin1'), id: s.messageId };
}

describe('HeaderScanner (Message-ID as the message streams)', () => {
  it('finds the end of the header with CRLF, bare LF, or none at all', () => {
    expect(findHeaderEnd(Buffer.from('A: 1\r\nB: 2\r\n\r\nbody'))).toBe(12);
    expect(findHeaderEnd(Buffer.from('A: 1\nB: 2\n\nbody'))).toBe(10);
    expect(findHeaderEnd(Buffer.from('\r\nbody only'))).toBe(0);
    expect(findHeaderEnd(Buffer.from('A: 1\r\nB: 2\r\n'))).toBe(-1);
    expect(findHeaderEnd(Buffer.from('\r'))).toBe(-1);
  });

  it('takes whichever header end comes first when line endings are mixed', () => {
    // bare-LF blank line before a CRLF one, right before it, and after it (in the body)
    expect(findHeaderEnd(Buffer.from('A: 1\n\nB: 2\r\n\r\nbody'))).toBe(5);
    expect(findHeaderEnd(Buffer.from('A: 1\n\n\r\nbody'))).toBe(5);
    expect(findHeaderEnd(Buffer.from('A: 1\r\n\r\nbody\n\nmore'))).toBe(6);
    expect(findHeaderEnd(Buffer.from('A: 1\r\nB: 2\n\r\nbody'))).toBe(11);
  });

  it('keeps an existing Message-ID, folded or not, and forwards the bytes unchanged', () => {
    const msg = 'Subject: x\r\nMessage-ID:\r\n <abc@example.org>\r\n\r\nhello\r\n';
    expect(scan([msg])).toEqual({ text: msg, id: '<abc@example.org>' });
  });

  it('adds one at the end of the header when there is none, even when the blank line is split across chunks', () => {
    const r = scan(['Subject: x\r\nFrom: a@b\r', '\n', '\r\nbody\xe9\r\n']);
    expect(r.id).toMatch(/^<[0-9a-z]+\.[\w-]+@proxy\.test>$/);
    expect(r.text).toBe(`Subject: x\r\nFrom: a@b\r\nMessage-ID: ${r.id}\r\n\r\nbody\xe9\r\n`);
  });

  it('adds one before the body of a message with an empty header', () => {
    const r = scan(['\r\nbody\r\n']);
    expect(r.text).toBe(`Message-ID: ${r.id}\r\n\r\nbody\r\n`);
  });

  it('passes a header longer than its limit through untouched, and a message that is all header', () => {
    const long = `X: ${'y'.repeat(200)}\r\n`;
    expect(scan([long, long, '\r\nb\r\n'], 'p.test', 256)).toEqual({ text: `${long}${long}\r\nb\r\n`, id: null });
    expect(scan(['Subject: only\r\n'])).toEqual({ text: 'Subject: only\r\n', id: null });
  });

  it('adds nothing when adding is off', () => {
    expect(scan(['Subject: x\r\n\r\nb\r\n'], null)).toEqual({ text: 'Subject: x\r\n\r\nb\r\n', id: null });
  });
});
