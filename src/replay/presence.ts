/**
 * "Is this message already on the new master?" — asked over IMAP before a replay re-delivers, so
 * a message that did replicate is not stored twice. Logs in as the configured admin authorising
 * as the user (SASL PLAIN authzid), then SEARCH HEADER Message-ID in every selectable mailbox,
 * INBOX first. One connection per user, reused across that user's records, closed at the end.
 */
import { loadImapFlow } from '../core/imapflow.js';
import type { ImapFlow, ListResponse } from 'imapflow';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { withDeadline } from '../core/deadline.js';

export interface PresenceTarget {
  host: string;
  port: number;
}

interface UserConnection {
  client: ImapFlow;
  mailboxes: string[];
}

export class PresenceChecker {
  readonly #target: PresenceTarget;
  readonly #imap: Config['replay']['imap'];
  readonly #log: Logger;
  readonly #conns = new Map<string, Promise<UserConnection>>();

  constructor(target: PresenceTarget, imap: Config['replay']['imap'], log: Logger) {
    this.#target = target;
    this.#imap = imap;
    this.#log = log;
  }

  /** True when a message with this Message-ID is in any of the user's mailboxes. Throws when it cannot tell. */
  async has(user: string, messageId: string): Promise<boolean> {
    const conn = await this.#connection(user);
    for (const path of conn.mailboxes) {
      const found = await withDeadline((async () => {
        const lock = await conn.client.getMailboxLock(path, { readOnly: true });
        try {
          const uids = await conn.client.search({ header: { 'message-id': messageId } }, { uid: true });
          return Array.isArray(uids) && uids.length > 0;
        } finally {
          lock.release();
        }
      })(), this.#imap.timeoutMs, `IMAP search in ${path}`);
      if (found) return true;
    }
    return false;
  }

  #connection(user: string): Promise<UserConnection> {
    let conn = this.#conns.get(user);
    if (!conn) {
      conn = this.#connect(user);
      this.#conns.set(user, conn);
      // A failed connection is not cached: the next record of the user tries again.
      conn.catch(() => this.#conns.delete(user));
    }
    return conn;
  }

  async #connect(user: string): Promise<UserConnection> {
    if (this.#imap.password === undefined) {
      throw new Error('replay.imap.password is not configured: cannot check the new master (use --no-check to skip the check)');
    }
    const t = this.#imap.timeoutMs;
    const { ImapFlow } = await loadImapFlow();
    const client = new ImapFlow({
      host: this.#target.host,
      port: this.#imap.port ?? this.#target.port,
      secure: false,
      auth: { user: this.#imap.user, pass: this.#imap.password, authzid: user, loginMethod: 'AUTH=PLAIN' },
      logger: false,
      disableAutoIdle: true,
      connectionTimeout: t,
      greetingTimeout: t,
      socketTimeout: Math.max(t, 30_000),
    });
    // imapflow emits 'error' on socket trouble; unhandled it would crash the process.
    client.on('error', (err: Error) => this.#log.warn({ user, err: err.message }, 'replay_imap_error'));
    try {
      await withDeadline(client.connect(), t + 1000, 'IMAP connect');
      const list: ListResponse[] = await withDeadline(client.list(), t, 'IMAP LIST');
      const selectable = list.filter((m) => !m.flags.has('\\Noselect') && !m.flags.has('\\NonExistent')).map((m) => m.path);
      const mailboxes = ['INBOX', ...selectable.filter((p) => p.toUpperCase() !== 'INBOX')];
      return { client, mailboxes };
    } catch (err) {
      client.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    const conns = [...this.#conns.values()];
    this.#conns.clear();
    await Promise.allSettled(conns.map(async (p) => {
      const c = await p;
      await withDeadline(c.client.logout(), 2000, 'IMAP logout').catch(() => c.client.close());
    }));
  }
}
