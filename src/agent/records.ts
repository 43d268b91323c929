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
  // delete_mode: delayed keeps deleted folders as DELETED.user.<name>.<folder>.<hex time>.
  let start = bang + 1;
  if (mailbox.startsWith('DELETED.', start)) start += 'DELETED.'.length;
  if (!mailbox.startsWith('user.', start)) return null;
  // indexOf and one slice, not split('.'): this runs for every record of every pending log.
  start += 'user.'.length;
  const dot = mailbox.indexOf('.', start);
  let local = mailbox.slice(start, dot < 0 ? mailbox.length : dot);
  if (local === '') return null;
  if (local.includes('^')) local = local.replace(/\^/g, '.');
  return bang > 0 ? `${local}@${mailbox.slice(0, bang)}` : local;
}

/** Where `countRecords` puts the users it finds (a Set, or anything that takes names). */
export interface UserSink {
  add(user: string): unknown;
}

/**
 * Reads records from `text`, adding every user they name to `into`. When `truncated` (the caller
 * read only the first bytes of a file), the last, possibly partial, line is ignored.
 *
 * Walks the text with indexOf rather than split, and reads a line without quotes (nearly all of
 * them) by splitting at spaces: the agent runs this over every record appended to every slot's
 * log, and the general parser's per-character loop and per-line arrays made it most of a
 * measuring round's CPU (issue #13).
 */
export function countRecords(text: string, truncated: boolean, into: UserSink): { records: number; unattributed: number } {
  let records = 0;
  let unattributed = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) {
      if (truncated) break; // a partial last line
      end = text.length;
    }
    let line = text.slice(start, end);
    start = end + 1;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.trim() === '') continue;
    records++;
    const words = line.includes('"') ? parseRecordLine(line) : line.split(' ').filter((w) => w !== '');
    if (recordUsers(words, into) === 0) unattributed++;
  }
  return { records, unattributed };
}

/** Adds the users one record's words name to `into`; returns how many it named. */
function recordUsers(words: string[] | null, into: UserSink): number {
  if (!words || words.length < 2) return 0;
  const type = (words[0] as string).toUpperCase();
  if (USER_RECORDS.has(type)) {
    if (!words[1]) return 0;
    into.add(words[1]);
    return 1;
  }
  if (!MAILBOX_RECORDS.has(type)) return 0;
  let named = 0;
  for (let i = 1; i < words.length; i++) {
    const user = userOfMailbox(words[i] as string);
    if (user) {
      into.add(user);
      named++;
    }
  }
  return named;
}

/** countRecords with the users collected and sorted. */
export function summariseRecords(text: string, truncated = false, into: Set<string> = new Set()): RecordSummary {
  const { records, unattributed } = countRecords(text, truncated, into);
  return { users: [...into].sort(), records, unattributed };
}
