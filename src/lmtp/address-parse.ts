/**
 * The fast path of smtp-server's MAIL/RCPT parser (smtp-patch.ts, patch 5).
 *
 * It answers only lines of one plain shape, where smtp-server's own parser (3.21.6) is known to
 * give the same answer, and returns null for everything else so that the original decides:
 *
 *   MAIL FROM:<local@domain>   RCPT TO:<local@domain>   (any case, exactly one space, no spaces
 *                                                       around the colon or the brackets)
 *
 * - no ESMTP parameters (postfix's MAIL usually has SIZE and BODY: the original parses those);
 * - local: an RFC 5321 dot-atom (atext runs joined by single dots), so never a leading, trailing
 *   or doubled dot, which the original refuses; no quoted strings, no source route;
 * - domain: ASCII letter/digit labels joined by single "." or "-", so none of the original's
 *   refusals ("..", ".-", "-.", an edge dot) and no address literal; no "xn--" anywhere, so the
 *   original's punycode.toUnicode would return it unchanged;
 * - at most 253 characters for local@domain (the original's path limit);
 * - printable ASCII only, so none of the control or invisible characters the original refuses.
 *
 * For such a line the original returns `{ address: "local@domain", args: false }`, and so does
 * this. test/lmtp/address-parse.test.ts runs both over a corpus of accepted and refused lines.
 */
const SIMPLE_LINE = /^(MAIL FROM|RCPT TO):<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)@([A-Za-z0-9]+(?:[.-][A-Za-z0-9]+)*)>$/i;
const ACE = /xn--/i;
const MAX_PATH = 253;

export interface ParsedAddressCommand {
  address: string;
  args: false;
}

/**
 * `name` is smtp-server's ('mail from' | 'rcpt to'); `command` the whole line as smtp-server holds
 * it (a Buffer, read as UTF-8 like the original does).
 */
export function parseSimpleAddressCommand(name: string, command: unknown): ParsedAddressCommand | null {
  if (!command) return null;
  const m = SIMPLE_LINE.exec(String(command));
  if (!m) return null;
  const [, verb, local, domain] = m as unknown as [string, string, string, string];
  if (verb.toUpperCase() !== name.toUpperCase()) return null;
  if (local.length + 1 + domain.length > MAX_PATH || ACE.test(domain)) return null;
  return { address: `${local}@${domain}`, args: false };
}
