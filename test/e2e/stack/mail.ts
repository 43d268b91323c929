/**
 * Wire clients for the suite: SMTP (to postfix) and LMTP (to a slot) in lock-step so every reply
 * line can be asserted, POP3 (raw, through nginx or to a slot), and IMAP reads with imapflow.
 */
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { ImapFlow } from 'imapflow';

/** A line-oriented connection: `reply()` resolves with the next complete (multi-line) reply. */
class LineConn {
  readonly #sock: Socket;
  #buf = '';
  #lines: string[] = [];
  #waiters: (() => void)[] = [];
  #error: Error | null = null;

  constructor(sock: Socket) {
    this.#sock = sock;
    sock.on('data', (d: Buffer) => {
      this.#buf += d.toString('latin1');
      let i: number;
      while ((i = this.#buf.indexOf('\r\n')) >= 0) {
        this.#lines.push(this.#buf.slice(0, i));
        this.#buf = this.#buf.slice(i + 2);
      }
      this.#wake();
    });
    sock.on('error', (err) => {
      this.#error = err;
      this.#wake();
    });
    sock.on('close', () => {
      this.#error ??= new Error('connection closed');
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  async line(timeoutMs = 30_000): Promise<string> {
    const until = Date.now() + timeoutMs;
    while (this.#lines.length === 0) {
      if (this.#error) throw this.#error;
      const left = until - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a reply line');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.#lines.shift() as string;
  }

  /** An SMTP/LMTP reply: lines until one whose 4th char is a space. Returns the last line. */
  async smtpReply(timeoutMs?: number): Promise<string> {
    for (;;) {
      const l = await this.line(timeoutMs);
      if (l.charAt(3) !== '-') return l;
    }
  }

  write(s: string): void {
    this.#sock.write(s, 'latin1');
  }

  close(): void {
    this.#sock.destroy();
  }
}

function open(host: string, port: number): Promise<LineConn> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    sock.once('connect', () => resolve(new LineConn(sock)));
    sock.once('error', reject);
  });
}

export interface Outgoing {
  from: string;
  to: string[];
  subject: string;
  /** Without angle brackets. Generated when absent. */
  messageId?: string;
  body?: string;
}

export function newMessageId(tag = 'e2e'): string {
  return `${tag}.${Date.now()}.${randomBytes(6).toString('hex')}@e2e.test`;
}

export function render(msg: Outgoing & { messageId: string }): string {
  const lines = [
    `From: <${msg.from}>`,
    `To: ${msg.to.map((t) => `<${t}>`).join(', ')}`,
    `Subject: ${msg.subject}`,
    `Message-ID: <${msg.messageId}>`,
    `Date: ${new Date().toUTCString()}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    msg.body ?? `body of ${msg.subject}`,
  ];
  // Dot-stuffing for lines that start with a dot.
  return lines.map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\r\n') + '\r\n';
}

export interface Transaction {
  messageId: string;
  /** Every reply line after the greeting, in command order: MAIL, each RCPT, DATA, final(s). */
  replies: string[];
  /** RCPT replies by recipient. */
  rcpt: Record<string, string>;
  /** The final reply (SMTP) or one per accepted recipient (LMTP). */
  final: string[];
}

async function transact(lmtp: boolean, host: string, port: number, msg: Outgoing): Promise<Transaction> {
  const messageId = msg.messageId ?? newMessageId();
  const c = await open(host, port);
  try {
    const greet = await c.smtpReply();
    if (!greet.startsWith('220')) throw new Error(`greeting: ${greet}`);
    c.write(`${lmtp ? 'LHLO' : 'EHLO'} client.e2e.test\r\n`);
    const ehlo = await c.smtpReply();
    if (!ehlo.startsWith('250')) throw new Error(`EHLO/LHLO: ${ehlo}`);
    const replies: string[] = [];
    c.write(`MAIL FROM:<${msg.from}>\r\n`);
    replies.push(await c.smtpReply());
    const rcpt: Record<string, string> = {};
    const accepted: string[] = [];
    for (const to of msg.to) {
      c.write(`RCPT TO:<${to}>\r\n`);
      const r = await c.smtpReply();
      replies.push(r);
      rcpt[to] = r;
      if (r.startsWith('2')) accepted.push(to);
    }
    const final: string[] = [];
    if (accepted.length > 0 && replies[0]?.startsWith('2')) {
      c.write('DATA\r\n');
      const d = await c.smtpReply();
      replies.push(d);
      if (d.startsWith('354')) {
        c.write(`${render({ ...msg, messageId })}.\r\n`);
        for (let i = 0; i < (lmtp ? accepted.length : 1); i++) final.push(await c.smtpReply(60_000));
        replies.push(...final);
      }
    }
    c.write('QUIT\r\n');
    return { messageId, replies, rcpt, final };
  } finally {
    c.close();
  }
}

/** One SMTP transaction to postfix; resolves with every reply (it does not throw on a 4xx/5xx). */
export function sendSmtp(port: number, msg: Outgoing, host = '127.0.0.1'): Promise<Transaction> {
  return transact(false, host, port, msg);
}

/** One LMTP transaction straight to a backend (the harness smoke test). */
export function sendLmtp(host: string, port: number, msg: Outgoing): Promise<Transaction> {
  return transact(true, host, port, msg);
}

export interface Pop3Result {
  greeting: string;
  count: number;
  /** Message-IDs (without brackets) of every message, from TOP n 0. */
  messageIds: string[];
}

/** Logs in over POP3 (USER/PASS), lists the mailbox and reads each message's Message-ID. */
export async function pop3Read(host: string, port: number, user: string, pass: string): Promise<Pop3Result> {
  const c = await open(host, port);
  const ok = async (): Promise<string> => {
    const l = await c.line();
    if (!l.startsWith('+OK')) throw new Error(`POP3: ${l}`);
    return l;
  };
  const multi = async (): Promise<string[]> => {
    await ok();
    const out: string[] = [];
    for (;;) {
      const l = await c.line();
      if (l === '.') return out;
      out.push(l.startsWith('..') ? l.slice(1) : l);
    }
  };
  try {
    const greeting = await ok();
    c.write(`USER ${user}\r\n`);
    await ok();
    c.write(`PASS ${pass}\r\n`);
    await ok();
    c.write('STAT\r\n');
    const count = Number((await ok()).split(' ')[1]);
    const messageIds: string[] = [];
    for (let i = 1; i <= count; i++) {
      c.write(`TOP ${i} 0\r\n`);
      const headers = await multi();
      const mid = headers.find((h) => /^message-id:/i.test(h));
      messageIds.push(mid ? mid.replace(/^message-id:\s*/i, '').replace(/^<|>$/g, '') : '');
    }
    c.write('QUIT\r\n');
    return { greeting, count, messageIds };
  } finally {
    c.close();
  }
}

export interface ImapRead {
  /** The server's greeting/ID is not exposed by imapflow; the server's capability list is. */
  messageIds: string[];
  subjects: string[];
}

/** Logs in over IMAP with the user's own password (e.g. through nginx) and lists INBOX. */
export async function imapRead(host: string, port: number, user: string, pass: string): Promise<ImapRead> {
  const client = new ImapFlow({
    host, port, secure: false, logger: false, auth: { user, pass },
    connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000,
    // nginx proxies plain IMAP; never try STARTTLS against it.
    doSTARTTLS: false,
  });
  await client.connect();
  try {
    const messageIds: string[] = [];
    const subjects: string[] = [];
    const lock = await client.getMailboxLock('INBOX', { readOnly: true });
    try {
      const mb = client.mailbox;
      if (mb && typeof mb === 'object' && mb.exists > 0) {
        for await (const msg of client.fetch('1:*', { envelope: true })) {
          messageIds.push((msg.envelope?.messageId ?? '').replace(/^<|>$/g, ''));
          subjects.push(msg.envelope?.subject ?? '');
        }
      }
    } finally {
      lock.release();
    }
    return { messageIds, subjects };
  } finally {
    await client.logout();
  }
}

/** Strips the angle brackets imapflow keeps around a Message-ID. */
export function bare(messageId: string): string {
  return messageId.replace(/^<|>$/g, '');
}

/**
 * Logs in over raw IMAP and returns the tagged reply to LOGIN. Through nginx this is the backend's
 * own reply, and Cyrus's carries `SESSIONID=<cyrus-<slot>-…>`: which slot the login reached.
 */
export async function imapLoginReply(host: string, port: number, user: string, pass: string): Promise<string> {
  const c = await open(host, port);
  try {
    const greet = await c.line();
    if (!greet.startsWith('* OK')) throw new Error(`IMAP greeting: ${greet}`);
    const q = (s: string) => `"${s.replace(/["\\]/g, (m) => `\\${m}`)}"`;
    c.write(`a1 LOGIN ${q(user)} ${q(pass)}\r\n`);
    for (;;) {
      const l = await c.line();
      if (l.startsWith('a1 ')) {
        c.write('a2 LOGOUT\r\n');
        return l;
      }
    }
  } finally {
    c.close();
  }
}
