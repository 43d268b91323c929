/**
 * The whole e2e stack, on loopback only, in one temporary directory:
 *
 *   SMTP → postfix → LMTP → storeroute → LMTP → Cyrus slot (current master of the user's store)
 *   IMAP/POP3 → nginx → auth_http (storeroute) → Cyrus slot
 *
 * Two "machines" of two slots each; two stores, interlaced so each machine holds one master and
 * one replica:  store A = s11 (m1, 127.42.1.1) → s21 (m2, 127.42.2.1)
 *               store B = s22 (m2, 127.42.2.2) → s12 (m1, 127.42.1.2)
 * Users: alice, bob on A; carol, dave on B. Every slot's sasldb knows every user's password, as a
 * site with one password source would.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { CyrusSlot } from './cyrus.js';
import { Postfix, type QueuedMessage } from './postfix.js';
import { Nginx } from './nginx.js';
import { RedisDaemon } from './redis.js';
import { Storeroute } from './storeroute.js';
import { startSyslog, type SyslogCapture } from './syslog.js';
import { makeWorkDir, removeWorkDir } from './workdir.js';
import { sendSmtp, bare, type Transaction } from './mail.js';
import { waitFor } from '../../helpers/ports.js';

export const DOMAIN = 'e2e.test';
export const CYRUS_ADMIN_PASSWORD = 'cyrus-admin-pw';
/** Loopback prefix of the slots; override when another run owns 127.42.x.x. */
const NET = process.env.STOREROUTE_E2E_NET ?? '127.42';

export interface StackOptions {
  /** Loopback prefix of the slots (default STOREROUTE_E2E_NET, else 127.42): a second stack in one run uses its own. */
  net?: string;
  /** Names the temporary directory (`storeroute-e2e-<tag>-…`). */
  tag?: string;
}

export const USERS: Record<string, { store: 'A' | 'B'; password: string }> = {
  alice: { store: 'A', password: 'alice-pw' },
  bob: { store: 'A', password: 'bob-pw' },
  carol: { store: 'B', password: 'carol-pw' },
  dave: { store: 'B', password: 'dave-pw' },
};

export interface StoreState {
  master: CyrusSlot;
  /** The slot the master replicates to (null once it is gone). */
  replica: CyrusSlot | null;
}

export class Stack {
  readonly dir: string;
  readonly slots: Record<'s11' | 's12' | 's21' | 's22', CyrusSlot>;
  /** What the suite believes each store's master/replica is (kept in step with the drills). */
  readonly stores: Record<'A' | 'B', StoreState>;
  readonly redis: RedisDaemon;
  storeroute!: Storeroute;
  postfix!: Postfix;
  nginx!: Nginx;
  syslog!: SyslogCapture;

  constructor(dir: string, opts: StackOptions = {}) {
    this.dir = dir;
    const net = opts.net ?? NET;
    const slot = (name: string, machine: string, ip: string) =>
      new CyrusSlot({ name, machine, ip, baseDir: dir, adminPassword: CYRUS_ADMIN_PASSWORD });
    this.slots = {
      s11: slot('s11', 'm1', `${net}.1.1`),
      s12: slot('s12', 'm1', `${net}.1.2`),
      s21: slot('s21', 'm2', `${net}.2.1`),
      s22: slot('s22', 'm2', `${net}.2.2`),
    };
    this.stores = {
      A: { master: this.slots.s11, replica: this.slots.s21 },
      B: { master: this.slots.s22, replica: this.slots.s12 },
    };
    this.redis = new RedisDaemon(join(dir, 'redis'));
  }

  directoryFile(): string {
    const slots = Object.fromEntries(Object.values(this.slots).map((s) => [s.name, { machine: s.machine, ip: s.ip }]));
    const file = join(this.dir, 'directory.yaml');
    writeFileSync(file, stringify({
      slots,
      stores: {
        A: { slots: ['s11', 's21'], preferredMaster: 's11' },
        B: { slots: ['s22', 's12'], preferredMaster: 's22' },
      },
      users: Object.fromEntries(Object.entries(USERS).map(([u, v]) => [u, v.store])),
    }));
    return file;
  }

  async start(): Promise<void> {
    this.syslog = await startSyslog(this.dir);
    await this.redis.start();
    const all = Object.values(this.slots);
    await Promise.all(all.map((s) => s.start()));
    for (const s of all) for (const [u, v] of Object.entries(USERS)) await s.setPassword(u, v.password);
    for (const [u, v] of Object.entries(USERS)) await this.stores[v.store].master.createMailbox(u);
    await this.slots.s11.startReplication(this.slots.s21);
    await this.slots.s22.startReplication(this.slots.s12);

    this.storeroute = new Storeroute({
      dir: join(this.dir, 'storeroute'), redisUrl: this.redis.url, domain: DOMAIN, cyrusAdminPassword: CYRUS_ADMIN_PASSWORD,
    });
    await this.storeroute.writeConfig();
    await this.storeroute.ok(['directory', 'apply', this.directoryFile()]);
    await this.storeroute.start();

    this.postfix = new Postfix({
      dir: join(this.dir, 'postfix'), domain: DOMAIN, transport: `lmtp:inet:127.0.0.1:${this.storeroute.lmtpPort}`,
    });
    await this.postfix.start();
    this.nginx = new Nginx({ dir: join(this.dir, 'nginx'), authHttp: this.storeroute.authHttp,
      authHeader: { name: this.storeroute.sharedSecret.header, value: this.storeroute.sharedSecret.value } });
    await this.nginx.start();
  }

  async stop(): Promise<void> {
    const quiet = async (f: () => Promise<void>) => f().catch((err: unknown) => console.log(`e2e teardown: ${String(err)}`));
    await quiet(() => this.nginx?.stop() ?? Promise.resolve());
    await quiet(() => this.postfix?.stop() ?? Promise.resolve());
    await quiet(() => this.storeroute?.stop() ?? Promise.resolve());
    for (const s of Object.values(this.slots)) await quiet(() => s.stopReplication());
    await Promise.all(Object.values(this.slots).map((s) => quiet(() => s.stop())));
    await quiet(() => this.redis.stop());
    await quiet(() => this.syslog?.close() ?? Promise.resolve());
  }

  /** Everything worth reading when a scenario failed. */
  logs(): string {
    return [
      `--- storeroute ---\n${this.storeroute?.logTail(60) ?? ''}`,
      `--- postfix ---\n${this.postfix?.logTail(60) ?? ''}`,
      `--- nginx ---\n${this.nginx?.logTail(20) ?? ''}`,
      `--- cyrus (syslog) ---\n${this.syslog?.tail(80) ?? ''}`,
    ].join('\n');
  }

  /** Sends one message through postfix and requires postfix to take it (250 queued). */
  async send(to: string[], subject: string, opts: { from?: string; body?: string } = {}): Promise<Transaction> {
    const from = opts.from ?? `sender@${DOMAIN}`;
    const rcpts = to.map((u) => (u.includes('@') ? u : `${u}@${DOMAIN}`));
    const t = await sendSmtp(this.postfix.smtpPort, { from, to: rcpts, subject, ...(opts.body !== undefined ? { body: opts.body } : {}) });
    if (!t.final[0]?.startsWith('250')) throw new Error(`postfix did not queue ${subject}: ${t.replies.join(' | ')}`);
    return t;
  }

  async waitQueueEmpty(ms = 60_000): Promise<void> {
    let last: QueuedMessage[] = [];
    try {
      await waitFor(async () => {
        last = await this.postfix.queue();
        return last.length === 0;
      }, ms, 'the postfix queue to empty');
    } catch (err) {
      throw new Error(`${String(err)}\nstill queued: ${JSON.stringify(last, null, 1).slice(0, 2_000)}`);
    }
  }

  /** How many times each Message-ID is in the user's INBOX on `slot`. */
  async counts(slot: CyrusSlot, user: string): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const m of await slot.inbox(user)) {
      const id = bare(m.messageId);
      out.set(id, (out.get(id) ?? 0) + 1);
    }
    return out;
  }

  /** Waits until every id is in the user's INBOX on `slot`; returns the counts then. */
  async waitFor(slot: CyrusSlot, user: string, ids: string[], ms = 30_000): Promise<Map<string, number>> {
    let counts = new Map<string, number>();
    try {
      await waitFor(async () => {
        counts = await this.counts(slot, user);
        return ids.every((id) => counts.has(id));
      }, ms, `${ids.length} message(s) for ${user} on ${slot.name}`);
    } catch (err) {
      const missing = ids.filter((id) => !counts.has(id));
      throw new Error(`${String(err)}\nmissing on ${slot.name} for ${user}: ${missing.join(', ')}`);
    }
    return counts;
  }
}

export interface Sent {
  user: string;
  messageId: string;
}

/**
 * Keeps mail flowing: one message every `paceMs` (default 100 ms), round-robin over `users`, until
 * stopped. Used while a drill (failover, Redis restart, kill -9) happens under it.
 */
export function startPump(stack: Stack, users: string[], opts: { bodyBytes?: number; tag: string; paceMs?: number }) {
  // Paced, not flat out: a drill needs a steady flow, not thousands of messages to check.
  const paceMs = opts.paceMs ?? 100;
  const sent: Sent[] = [];
  let stopping = false;
  let error: unknown = null;
  const body = opts.bodyBytes ? `${'x'.repeat(76)}\r\n`.repeat(Math.ceil(opts.bodyBytes / 78)) : undefined;
  const loop = (async () => {
    for (let i = 0; !stopping; i++) {
      const user = users[i % users.length] as string;
      try {
        const t = await stack.send([user], `${opts.tag} ${i} for ${user}`, body !== undefined ? { body } : {});
        sent.push({ user, messageId: t.messageId });
        if (!stopping) await new Promise((r) => setTimeout(r, paceMs));
      } catch (err) {
        error = err;
        return;
      }
    }
  })();
  return {
    sent,
    /** Resolves once `n` more messages than now have been queued by postfix. */
    async more(n: number, ms = 30_000): Promise<void> {
      const target = sent.length + n;
      await waitFor(() => {
        if (error) throw error;
        return sent.length >= target;
      }, ms, `${n} more messages sent`);
    },
    async stop(): Promise<Sent[]> {
      stopping = true;
      await loop;
      if (error) throw error;
      return sent;
    },
  };
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const stack = new Stack(makeWorkDir(opts.tag ?? 'stack'), opts);
  try {
    await stack.start();
  } catch (err) {
    console.log(stack.logs());
    await stack.stop();
    removeWorkDir(stack.dir);
    throw err;
  }
  return stack;
}

export async function stopStack(stack: Stack | undefined, failed: boolean): Promise<void> {
  if (!stack) return;
  if (failed) console.log(stack.logs());
  await stack.stop();
  removeWorkDir(stack.dir);
}
