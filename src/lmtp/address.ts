/**
 * Addresses as storeroute passes them on: the domain in its ASCII (A-label, "xn--…") form.
 *
 * Why: smtp-server turns an ACE domain into Unicode as it parses MAIL/RCPT (punycode.toUnicode),
 * so postfix's `zed@xn--mnchen-3ya.example` reaches our handlers as `zed@münchen.example`. We do not
 * advertise SMTPUTF8 and a Cyrus lmtpd without it refuses 8-bit command lines (501 5.5.4), which
 * would bounce every recipient; directory names and `localDomains` are written in A-labels too.
 * So the domain goes back to A-labels before the directory lookup and the backend MAIL/RCPT
 * (always: the simplest form that every backend takes). ASCII domains, the common case, are
 * returned unchanged (original case kept: the backend gets what postfix sent).
 */
import { domainToASCII } from 'node:url';

const NON_ASCII = /[^\u0020-\u007e]/; // anything but printable ASCII goes through the conversion

/** A domain in A-label form (lower-cased by the conversion); null when it is not a valid IDN. */
export function asciiDomain(domain: string): string | null {
  if (!NON_ASCII.test(domain)) return domain;
  const ascii = domainToASCII(domain);
  return ascii === '' ? null : ascii;
}

/**
 * The address with its domain in A-label form; null when the domain cannot be converted (the
 * caller answers 501). Addresses without a domain (RCPT TO:<postmaster>) and address literals
 * pass as they are.
 */
export function asciiAddress(address: string): string | null {
  const at = address.lastIndexOf('@');
  if (at === -1) return address;
  const domain = address.slice(at + 1);
  if (domain.startsWith('[')) return address;
  const ascii = asciiDomain(domain);
  if (ascii === null) return null;
  return ascii === domain ? address : `${address.slice(0, at + 1)}${ascii}`;
}
