import { describe, expect, it } from 'vitest';
import { decodeLoginName, unescapeNginx } from '../../src/auth/request.js';
import { hashPassword, isPasswordHash, verifyPassword } from '../../src/auth/index.js';
import { nginxEscape } from './wire.js';

/** What Node hands us for a header value: one latin1 char per byte. */
const asHeader = (b: Buffer) => b.toString('latin1');

describe('undoing nginx escaping', () => {
  it('round-trips every byte nginx escapes or passes raw', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    expect(unescapeNginx(asHeader(nginxEscape(all)))).toEqual(all);
  });

  it('decodes UTF-8 names sent raw, and escaped percent signs', () => {
    expect(decodeLoginName(asHeader(nginxEscape('jösé@exämple.org')))).toBe('jösé@exämple.org');
    expect(decodeLoginName(asHeader(nginxEscape('100%alice')))).toBe('100%alice');
  });

  it('refuses malformed escapes, control characters, spaces, bad UTF-8 and over-long names', () => {
    expect(unescapeNginx('al%4')).toBeNull();
    expect(unescapeNginx('al%zzice')).toBeNull();
    for (const bad of ['alice\r\nx', 'alice\u0000', 'al ice', 'alice\u007f', 'a\u0085b', 'a'.repeat(257)]) {
      expect(decodeLoginName(asHeader(nginxEscape(bad)))).toBeNull();
    }
    expect(decodeLoginName(asHeader(Buffer.from([0x61, 0xc3, 0x28])))).toBeNull();
  });
});

describe('password hashes', () => {
  it('verifies the documented scrypt format and refuses wrong passwords and malformed records', async () => {
    const hash = await hashPassword('correct horse', { N: 1024, r: 8, p: 1 });
    expect(hash).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
    expect(isPasswordHash(hash)).toBe(true);
    expect(await verifyPassword('correct horse', hash)).toBe(true);
    expect(await verifyPassword(Buffer.from('correct horse'), hash)).toBe(true);
    expect(await verifyPassword('correct horsE', hash)).toBe(false);
    for (const bad of ['', 'scrypt$1000$8$1$AAAA$AAAA', hash.replace('$1024$', '$67108864$'), 'bcrypt$x', hash + '$x']) {
      expect(await verifyPassword('correct horse', bad)).toBe(false);
    }
    await expect(hashPassword('')).rejects.toThrow(RangeError);
  });

  it('uses the default cost when none is given', async () => {
    expect(await hashPassword('pw')).toMatch(/^scrypt\$32768\$8\$1\$/);
  });
});
