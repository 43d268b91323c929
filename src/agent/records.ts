/**
 * Sync log records → the users they concern. Pure: text in, names out.
 *
 * Record format (sync_log.c, seen on Cyrus 3.6.1): one line per change, `TYPE arg1 [arg2]\n`, each
 * argument an atom or a double-quoted string with `\"` and `\\` escapes; names with a space,
 * tab, parenthesis, quote, backslash or brace are quoted (`cyr_synclog -u 'we ird'` wrote
 * `USER "we ird"`, `-m 'user.a"b'` wrote `MAILBOX "user.a\"b"`). Records carry no time.
 * Lines seen after LMTP delivery: `APPEND user.alice` then `MAILBOX user.alice`; mailbox creation:
 * `MAILBOX user.alice`; `cyr_synclog -u alice`: `USER alice`.
 * Mailbox names are internal: `[domain!]user.<local>[.<folder>…]` with `.` as separator whatever
 * unixhierarchysep says, a dot inside a user name stored as `^`.
 */

/** Records whose first argument is a user id. */
const USER_RECORDS = new Set(['USER', 'UNUSER', 'META', 'SIEVE', 'SEEN', 'SUB', 'UNSUB']);
/** Records whose arguments are mailbox names (both, for the two-argument ones). */
const MAILBOX_RECORDS = new Set(['APPEND', 'MAILBOX', 'UNMAILBOX', 'DOUBLEMAILBOX', 'RENAME', 'QUOTA', 'ANNOTATION', 'ACL']);

export interface RecordSummary {
  /** Distinct users named by the records, sorted. */
  users: string[];
  /** Complete lines read. */
  records: number;
  /** Records that name no user (shared folders, server annotations, unknown types). */
  unattributed: number;
}

/** Splits one record line into its words (atoms and quoted strings); null when malformed. */
export function parseRecordLine(line: string): string[] | null {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === ' ') {
      i++;
      continue;
    }
    if (line[i] === '"') {
      let word = '';
      i++;
      for (;;) {
        if (i >= line.length) return null;
        const c = line[i] as string;
        if (c === '\\') {
          if (i + 1 >= line.length) return null;
          word += line[i + 1];
          i += 2;
          continue;
        }
        i++;
        if (c === '"') break;
        word += c;
      }
      words.push(word);
      continue;
    }
    const end = line.indexOf(' ', i);
    words.push(line.slice(i, end < 0 ? line.length : end));
    i = end < 0 ? line.length : end;
  }
  return words.length > 0 ? words : null;
}

/** `example.com!user.jo^e.Sent` → `jo.e@example.com`; null for a mailbox outside `user.`. */
export function userOfMailbox(mailbox: string): string | null {
  const bang = mailbox.indexOf('!');
  const domain = bang >= 0 ? mailbox.slice(0, bang) : '';
  let name = bang >= 0 ? mailbox.slice(bang + 1) : mailbox;
  // delete_mode: delayed keeps deleted folders as DELETED.user.<name>.<folder>.<hex time>.
  if (name.startsWith('DELETED.')) name = name.slice('DELETED.'.length);
  if (!name.startsWith('user.')) return null;
  const local = name.slice('user.'.length).split('.')[0]?.replace(/\^/g, '.') ?? '';
  if (local === '') return null;
  return domain ? `${local}@${domain}` : local;
}

/** Where `countRecords` puts the users it finds (a Set, or anything that takes names). */
export interface UserSink {
  add(user: string): unknown;
}

/**
 * Reads records from `text`, adding every user they name to `into`. When `truncated` (the caller
 * read only the first bytes of a file), the last, possibly partial, line is ignored.
 */
export function countRecords(text: string, truncated: boolean, into: UserSink): { records: number; unattributed: number } {
  const lines = text.split('\n');
  if (truncated || lines[lines.length - 1] === '') lines.pop();
  let records = 0;
  let unattributed = 0;
  for (const raw of lines) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') continue;
    records++;
    const words = parseRecordLine(line);
    const type = words?.[0]?.toUpperCase() ?? '';
    const args = words?.slice(1) ?? [];
    let named = 0;
    if (USER_RECORDS.has(type) && args[0]) {
      into.add(args[0]);
      named++;
    } else if (MAILBOX_RECORDS.has(type)) {
      for (const mailbox of args) {
        const user = userOfMailbox(mailbox);
        if (user) {
          into.add(user);
          named++;
        }
      }
    }
    if (named === 0) unattributed++;
  }
  return { records, unattributed };
}

/** countRecords with the users collected and sorted. */
export function summariseRecords(text: string, truncated = false, into: Set<string> = new Set()): RecordSummary {
  const { records, unattributed } = countRecords(text, truncated, into);
  return { users: [...into].sort(), records, unattributed };
}
