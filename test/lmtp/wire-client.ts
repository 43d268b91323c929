/**
 * A raw LMTP client for tests: writes exactly what it is told and hands back every reply line as it
 * came off the wire, so tests can pin exact replies and pipelining.
 */
import { connect, type Socket } from 'node:net';

export class WireClient {
  readonly socket: Socket;
  #buf = '';
  #lines: string[] = [];
  #waiters: Array<() => void> = [];
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.#buf += c.toString('latin1');
      let nl = this.#buf.indexOf('\r\n');
      while (nl !== -1) {
        this.#lines.push(this.#buf.slice(0, nl));
        this.#buf = this.#buf.slice(nl + 2);
        nl = this.#buf.indexOf('\r\n');
      }
      this.#wake();
    });
    socket.on('close', () => { this.closed = true; this.#wake(); });
    socket.on('error', () => undefined);
  }

  static async open(where: number | string, host = '127.0.0.1'): Promise<{ client: WireClient; greeting: string }> {
    const socket = typeof where === 'number' ? connect(where, host) : connect(where);
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
    const client = new WireClient(socket);
    const greeting = await client.reply();
    return { client, greeting };
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  async #line(timeoutMs: number): Promise<string> {
    const until = Date.now() + timeoutMs;
    while (this.#lines.length === 0) {
      if (this.closed) throw new Error('connection closed while waiting for a reply');
      const left = until - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    return this.#lines.shift() as string;
  }

  /** The next complete reply; a multi-line reply's lines joined with "\n". */
  async reply(timeoutMs = 10_000): Promise<string> {
    const lines: string[] = [];
    for (;;) {
      const l = await this.#line(timeoutMs);
      lines.push(l);
      if (l[3] !== '-') return lines.join('\n');
    }
  }

  async replies(n: number, timeoutMs = 10_000): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(await this.reply(timeoutMs));
    return out;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  async cmd(line: string, timeoutMs?: number): Promise<string> {
    this.write(line + '\r\n');
    return this.reply(timeoutMs);
  }

  /** MAIL, RCPTs, DATA, body and dot in one pipelined write; returns every reply in order. */
  async send(from: string, rcpts: string[], body: Buffer, timeoutMs?: number):
    Promise<{ mail: string; rcpt: string[]; data: string; finals: string[] }> {
    this.write([`MAIL FROM:<${from}>`, ...rcpts.map((r) => `RCPT TO:<${r}>`), 'DATA', ''].join('\r\n'));
    const mail = await this.reply(timeoutMs);
    const rcpt = await this.replies(rcpts.length, timeoutMs);
    const data = await this.reply(timeoutMs);
    if (!data.startsWith('354')) return { mail, rcpt, data, finals: [] };
    this.write(Buffer.concat([stuff(body), Buffer.from(body.length && !body.subarray(-2).equals(CRLF) ? '\r\n.\r\n' : '.\r\n')]));
    const accepted = rcpt.filter((r) => r.startsWith('2')).length;
    const finals = await this.replies(accepted, timeoutMs);
    return { mail, rcpt, data, finals };
  }

  close(): void {
    this.socket.destroy();
  }
}

const CRLF = Buffer.from('\r\n');

/** Independent of src/: a "." after any LF (and at the start) is doubled. */
export function stuff(body: Buffer): Buffer {
  return Buffer.from(body.toString('latin1').replace(/(^|\n)\./g, '$1..'), 'latin1');
}
