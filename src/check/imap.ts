/**
 * One IMAP connection to one Cyrus slot, as the configured admin (optionally authorising as a user
 * with SASL PLAIN authzid, as replay's presence check does), speaking exactly the commands the check
 * needs. Mailbox names are always the admin's view (`user.alice.Sent`): Cyrus accepts them in a
 * session authorised as the owner too, so no namespace mapping is needed (seen on 3.6.1).
 *
 * imapflow has no API for LIST … RETURN (METADATA …), GETMETADATA or a raw EXAMINE/UID FETCH that
 * keeps admin names, so commands go through its `exec` (present but marked internal in 2.10; the
 * version is pinned exactly in package.json). Every command runs under replay.imap.timeoutMs; a
 * connection that times out or errors is closed and never reused.
 */
import { loadImapFlow } from '../core/imapflow.js';
import type { ImapFlow } from 'imapflow';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { DeadlineError } from '../core/errors.js';
import { withDeadline } from '../core/deadline.js';
import { CheckError } from './errors.js';
import type { HierarchySeparator } from './names.js';
import type { MailboxEntry, MessageSummary, StatusFigures } from './compare.js';

export type ImapSettings = Config['replay']['imap'];

export interface SlotTarget {
  name: string;
  host: string;
  port: number;
}

const SYNCCRCS = '/shared/vendor/cmu/cyrus-imapd/synccrcs';
const UNIQUEID = '/shared/vendor/cmu/cyrus-imapd/uniqueid';

/** imapflow's parsed attribute: a string/atom/literal, NIL (null), or a list. */
type Attr = { type?: string; value?: unknown; section?: Attr[] } | Attr[] | null;
interface Untagged { command: string; attributes?: Attr[] }
interface Executor {
  exec(command: string, attributes: unknown[], options?: { untagged?: Record<string, (u: Untagged) => void | Promise<void>> }): Promise<{ next(): void }>;
}

function str(a: Attr | undefined): string | null {
  if (!a || Array.isArray(a)) return null;
  const v = a.value;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return typeof v === 'string' ? v : null;
}

function list(a: Attr | undefined): Attr[] {
  return Array.isArray(a) ? a : [];
}

/** Maps imapflow's failures to our codes, naming the slot (and the user when authorising as one). */
export function imapFailure(err: unknown, slot: SlotTarget, what: string, as?: string): CheckError {
  if (err instanceof CheckError) return err;
  const e = err as { authenticationFailed?: boolean; responseStatus?: string; responseText?: string; code?: string; message?: string };
  const where = `slot ${slot.name} (${slot.host}:${slot.port})`;
  const facts = { slot: slot.name, host: slot.host, port: slot.port, ...(as ? { user: as } : {}) };
  if (e.authenticationFailed) {
    return new CheckError('IMAP_AUTH_FAILED', `${where} refused the admin login${as ? ` authorising as ${as}` : ''}`
      + ` (${e.responseText || 'authentication failure'}): check replay.imap.user and replay.imap.password`, facts, { cause: err });
  }
  if (err instanceof DeadlineError || e.code === 'ETIMEOUT' || e.code === 'ETIMEDOUT' || e.code === 'CONNECT_TIMEOUT' || e.code === 'GREETING_TIMEOUT') {
    return new CheckError('IMAP_TIMEOUT', `${where}: ${what} did not finish in time`, facts, { cause: err });
  }
  if (e.responseStatus === 'NO' || e.responseStatus === 'BAD') {
    return new CheckError('IMAP_REFUSED', `${where}: ${what} answered ${e.responseStatus} ${e.responseText ?? ''}`.trim(), facts, { cause: err });
  }
  return new CheckError('IMAP_UNREACHABLE', `${where}: ${what} failed (${e.code ?? e.message ?? 'connection error'})`, facts, { cause: err });
}

export class CyrusConnection {
  readonly slot: SlotTarget;
  readonly separator: HierarchySeparator;
  readonly #client: ImapFlow;
  readonly #timeoutMs: number;
  readonly #as: string | undefined;
  #broken = false;

  private constructor(slot: SlotTarget, client: ImapFlow, separator: HierarchySeparator, timeoutMs: number, as?: string) {
    this.slot = slot;
    this.#client = client;
    this.separator = separator;
    this.#timeoutMs = timeoutMs;
    this.#as = as;
  }

  /** Logs in as the admin (authorising as `as` when given) and learns the hierarchy separator. */
  static async open(slot: SlotTarget, imap: ImapSettings, log: Logger, as?: string): Promise<CyrusConnection> {
    if (imap.password === undefined) {
      throw new CheckError('CHECK_NOT_CONFIGURED', 'replay.imap.password is not configured: the check logs in to Cyrus as that admin');
    }
    const t = imap.timeoutMs;
    const { ImapFlow } = await loadImapFlow();
    const client = new ImapFlow({
      host: slot.host, port: slot.port, secure: false, logger: false, disableAutoIdle: true,
      auth: { user: imap.user, pass: imap.password, ...(as ? { authzid: as } : {}), loginMethod: 'AUTH=PLAIN' },
      connectionTimeout: t, greetingTimeout: t, socketTimeout: Math.max(t, 30_000),
      // Answers are a few lines per user: DEFLATE would only cost CPU on both ends (and the
      // check is meant to run beside production traffic). No ENABLE either: names stay in the
      // modified UTF-7 Cyrus stores them in, the same on both sides whatever each one supports.
      disableCompression: true, disableAutoEnable: true,
    });
    // imapflow emits 'error' on socket trouble; unhandled it would end the process.
    client.on('error', (err: Error) => log.debug({ slot: slot.name, err: err.message }, 'check_imap_error'));
    try {
      await withDeadline(client.connect(), t + 1000, 'IMAP connect');
      let sep: HierarchySeparator = '.';
      if (!as) {
        // `LIST "" ""` answers the hierarchy separator (the unixhierarchysep setting) and nothing else.
        await exec(client, slot, t, 'LIST', ['', ''], { LIST: (u) => { if (str(u.attributes?.[1]) === '/') sep = '/'; } });
      }
      return new CyrusConnection(slot, client, sep, t, as);
    } catch (err) {
      client.close();
      throw imapFailure(err, slot, 'login', as);
    }
  }

  get broken(): boolean {
    return this.#broken || !this.#client.usable;
  }

  async #run(what: string, command: string, args: unknown[], untagged: Record<string, (u: Untagged) => void>): Promise<void> {
    try {
      await exec(this.#client, this.slot, this.#timeoutMs, command, args, untagged);
    } catch (err) {
      const failure = imapFailure(err, this.slot, what, this.#as);
      // A NO is an answer; anything else leaves the connection in an unknown state.
      if (failure.code !== 'IMAP_REFUSED') {
        this.#broken = true;
        this.#client.close();
      }
      throw failure;
    }
  }

  /**
   * The user's mailboxes with their sync CRCs and unique ids, in one round trip:
   * `LIST "" (INBOX-pattern children-pattern) RETURN (METADATA (synccrcs uniqueid))` (LIST-METADATA).
   */
  async listUser(patterns: string[]): Promise<Map<string, MailboxEntry>> {
    const out = new Map<string, MailboxEntry>();
    const entry = (name: string) => {
      let e = out.get(name);
      if (!e) out.set(name, e = { name, flags: [], crcs: null, uniqueId: null });
      return e;
    };
    await this.#run('LIST with METADATA', 'LIST', ['', patterns, { type: 'ATOM', value: 'RETURN' },
      [{ type: 'ATOM', value: 'METADATA' }, [SYNCCRCS, UNIQUEID]]], {
      LIST: (u) => {
        const name = str(u.attributes?.[2]);
        if (name !== null) entry(name).flags = list(u.attributes?.[0]).map(str).filter((f): f is string => f !== null);
      },
      METADATA: (u) => {
        const name = str(u.attributes?.[0]);
        if (name === null) return;
        const pairs = list(u.attributes?.[1]);
        for (let i = 0; i + 1 < pairs.length; i += 2) {
          const key = str(pairs[i])?.toLowerCase();
          if (key === SYNCCRCS) entry(name).crcs = str(pairs[i + 1]);
          else if (key === UNIQUEID) entry(name).uniqueId = str(pairs[i + 1]);
        }
      },
    });
    return out;
  }

  /**
   * Every mailbox name matching `pattern`, streamed to `onName` (the slot-wide catalog: one LIST
   * scans Cyrus's whole mailbox list, so one per slot beats one per user; see catalog.ts).
   */
  async listNames(pattern: string, onName: (name: string) => void): Promise<void> {
    await this.#run(`LIST ${pattern}`, 'LIST', ['', pattern], {
      LIST: (u) => {
        const name = str(u.attributes?.[2]);
        if (name !== null) onName(name);
      },
    });
  }

  /**
   * The sync CRCs and unique ids of named mailboxes, in one GETMETADATA. Cyrus answers NO
   * ("Mailbox does not exist") when one of them is gone: the caller lists the user afresh then.
   */
  async metadata(names: string[]): Promise<Map<string, MailboxEntry>> {
    const out = new Map<string, MailboxEntry>();
    if (names.length === 0) return out;
    await this.#run('GETMETADATA', 'GETMETADATA', [names, [SYNCCRCS, UNIQUEID]], {
      METADATA: (u) => {
        const name = str(u.attributes?.[0]);
        if (name === null) return;
        const e = out.get(name) ?? { name, flags: [], crcs: null, uniqueId: null };
        out.set(name, e);
        const pairs = list(u.attributes?.[1]);
        for (let i = 0; i + 1 < pairs.length; i += 2) {
          const key = str(pairs[i])?.toLowerCase();
          if (key === SYNCCRCS) e.crcs = str(pairs[i + 1]);
          else if (key === UNIQUEID) e.uniqueId = str(pairs[i + 1]);
        }
      },
    });
    return out;
  }

  /** STATUS as the owner (the admin alone gets "Permission denied" on another user's mailbox). */
  async status(mailbox: string): Promise<StatusFigures> {
    const figures: Record<string, string> = {};
    await this.#run(`STATUS ${mailbox}`, 'STATUS', [mailbox, ['UIDVALIDITY', 'UIDNEXT', 'MESSAGES', 'HIGHESTMODSEQ'].map((v) => ({ type: 'ATOM', value: v }))], {
      STATUS: (u) => {
        const pairs = list(u.attributes?.[1]);
        for (let i = 0; i + 1 < pairs.length; i += 2) figures[str(pairs[i])?.toLowerCase() ?? ''] = str(pairs[i + 1]) ?? '';
      },
    });
    return { uidvalidity: figures.uidvalidity ?? null, uidnext: figures.uidnext ?? null, messages: figures.messages ?? null,
      highestmodseq: figures.highestmodseq ?? null };
  }

  /** EXAMINE (read-only: no \Seen change, no \Recent taken) then UID FETCH of what deep compares. */
  async messages(mailbox: string): Promise<{ uidValidity: string | null; messages: MessageSummary[] }> {
    let uidValidity: string | null = null;
    const ignore = () => undefined;
    await this.#run(`EXAMINE ${mailbox}`, 'EXAMINE', [mailbox], {
      OK: (u) => {
        const section = (u.attributes?.[0] as { section?: Attr[] } | null)?.section;
        if (section && str(section[0])?.toUpperCase() === 'UIDVALIDITY') uidValidity = str(section[1]);
      },
      // Answered by us so imapflow's own mailbox state (none is selected as far as it knows) stays out of it.
      EXISTS: ignore, RECENT: ignore, FLAGS: ignore,
    });
    const messages: MessageSummary[] = [];
    const fields = [...['UID', 'FLAGS', 'RFC822.SIZE', 'INTERNALDATE'].map((v) => ({ type: 'ATOM', value: v })),
      { type: 'ATOM', value: 'BODY.PEEK', section: [{ type: 'ATOM', value: 'HEADER.FIELDS' }, [{ type: 'ATOM', value: 'MESSAGE-ID' }]] }];
    await this.#run(`UID FETCH in ${mailbox}`, 'UID FETCH', [{ type: 'SEQUENCE', value: '1:*' }, fields], {
      FETCH: (u) => { messages.push(parseFetch(list(u.attributes?.[1]))); },
    });
    messages.sort((a, b) => a.uid - b.uid);
    return { uidValidity, messages };
  }

  async close(): Promise<void> {
    if (this.broken) return this.#client.close();
    await withDeadline(this.#client.logout(), 2000, 'IMAP logout').catch(() => this.#client.close());
  }
}

async function exec(client: ImapFlow, slot: SlotTarget, timeoutMs: number, command: string, args: unknown[],
  untagged: Record<string, (u: Untagged) => void>): Promise<void> {
  const response = await withDeadline((client as unknown as Executor).exec(command, args, { untagged }), timeoutMs, `IMAP ${command} on ${slot.name}`);
  response.next();
}

/** The Message-ID from a `HEADER.FIELDS (MESSAGE-ID)` section, unfolded; null when absent. */
export function messageIdOf(header: string): string | null {
  const m = /^message-id:[ \t]*((?:.*)(?:\r?\n[ \t]+.*)*)/im.exec(header);
  const v = m?.[1]?.replace(/\r?\n[ \t]+/g, ' ').trim();
  return v ? v : null;
}

function parseFetch(pairs: Attr[]): MessageSummary {
  const out: MessageSummary = { uid: 0, flags: [], size: null, internalDate: null, messageId: null };
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    const key = str(pairs[i])?.toUpperCase() ?? '';
    const value = pairs[i + 1];
    if (key === 'UID') out.uid = Number(str(value));
    else if (key === 'FLAGS') out.flags = list(value).map(str).filter((f): f is string => f !== null && f !== '\\Recent').sort();
    else if (key === 'RFC822.SIZE') out.size = Number(str(value));
    else if (key === 'INTERNALDATE') {
      // Each server prints its own time zone: compare instants, not strings.
      const raw = str(value);
      const t = raw === null ? NaN : Date.parse(raw.trim());
      out.internalDate = Number.isNaN(t) ? raw : new Date(t).toISOString();
    } else if (key.startsWith('BODY')) out.messageId = messageIdOf(str(value) ?? '');
  }
  return out;
}
