/**
 * A raw LMTP backend written against the socket, for what smtp-server cannot play: Cyrus lmtpd's
 * exact reply lines (its three-line "550-Mailbox unknown …" for a missing mailbox), a 354 held
 * back until the test releases it, and every line it received recorded as it came off the wire
 * (so a test can pin the exact MAIL/RCPT lines, or prove that no command was written into a
 * message). Like Cyrus without SMTPUTF8, a command line with 8-bit bytes gets 501 5.5.4. Any reply
 * can be a 421, after which the backend closes the connection as RFC 5321 §3.8 requires.
 */
import { createServer, type Server, type Socket } from 'node:net';

/** Cyrus 3.x lmtpd's answer to RCPT for a mailbox that does not exist (imap/lmtpengine.c). */
export const CYRUS_MAILBOX_UNKNOWN = [
  '550-Mailbox unknown.  Either there is no mailbox associated with this',
  '550-name or you do not have authorization to see it.',
  '550 5.1.1 User unknown',
];

export interface RawBackendOptions {
  /** Reply lines for one RCPT (default `250 2.1.5 ok`). */
  rcpt?: (address: string, conn: RawConnection) => string[];
  /** Reply lines for MAIL (default `250 2.1.0 ok`). */
  mail?: (conn: RawConnection) => string[];
  /** Reply lines for DATA instead of its 354 (null or absent: the 354). */
  data?: (conn: RawConnection) => string[] | null;
  /** The reply line after the dot for each accepted recipient (default `250 2.1.5 Ok SESSIONID=<raw>`). */
  final?: (address: string, conn: RawConnection) => string;
  /** Hold every 354 until release354() is called. */
  holdData?: boolean;
}

export interface RawConnection {
  id: number;
  socket: Socket;
  /** Every line received, in order; DATA content lines included, the final dot as ".". */
  lines: string[];
}

export interface RawBackend {
  port: number;
  connections: RawConnection[];
  /** Message bodies received (still dot-stuffed, without the final dot). */
  messages: Buffer[];
  /** Connections open now. */
  open(): number;
  /** Sends the 354 for every DATA held so far (and stops holding). */
  release354(): void;
  close(): Promise<void>;
}

export async function startRawBackend(opts: RawBackendOptions = {}): Promise<RawBackend> {
  const connections: RawConnection[] = [];
  const messages: Buffer[] = [];
  const open = new Set<Socket>();
  let holding = opts.holdData === true;
  const held: Array<() => void> = [];

  const server: Server = createServer((socket) => {
    const conn: RawConnection = { id: connections.length + 1, socket, lines: [] };
    connections.push(conn);
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => undefined);
    socket.write('220 raw.test LMTP Cyrus v3.6.1 ready\r\n');
    let buf = Buffer.alloc(0);
    let inData = false;
    let body: Buffer[] = [];
    let accepted: string[] = [];
    const reply = (...lines: string[]) => {
      if (socket.destroyed || socket.writableEnded) return;
      socket.write(lines.map((l) => l + '\r\n').join(''));
      if (lines.some((l) => l.startsWith('421 '))) socket.end(); // the server closes the channel after 421
    };
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      let nl = buf.indexOf('\r\n');
      while (nl !== -1) {
        const raw = buf.subarray(0, nl);
        buf = buf.subarray(nl + 2);
        const line = raw.toString('latin1');
        conn.lines.push(line);
        nl = buf.indexOf('\r\n');
        if (inData) {
          if (line === '.') {
            inData = false;
            messages.push(Buffer.concat(body));
            body = [];
            for (const a of accepted) reply(opts.final?.(a, conn) ?? '250 2.1.5 Ok SESSIONID=<raw>');
            accepted = [];
          } else {
            body.push(raw, Buffer.from('\r\n'));
          }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (raw.some((b) => b > 0x7f)) reply('501 5.5.4 Syntax error in parameters');
        else if (verb === 'LHLO') reply('250-raw.test', '250-8BITMIME', '250-ENHANCEDSTATUSCODES', '250-PIPELINING', '250 SIZE');
        else if (verb === 'MAIL') reply(...(opts.mail?.(conn) ?? ['250 2.1.0 ok']));
        else if (verb === 'RCPT') {
          const address = /<([^>]*)>/.exec(line)?.[1] ?? '';
          const r = opts.rcpt?.(address, conn) ?? ['250 2.1.5 ok'];
          if (r[r.length - 1]?.startsWith('2')) accepted.push(address);
          reply(...r);
        } else if (verb === 'DATA') {
          const refusal = opts.data?.(conn);
          if (refusal) { reply(...refusal); continue; }
          inData = true;
          const go = () => reply('354 go ahead');
          if (holding) held.push(go); else go();
        } else if (verb === 'RSET') { accepted = []; reply('250 2.0.0 ok'); }
        else if (verb === 'QUIT') { socket.end('221 2.0.0 bye\r\n'); }
        else reply('500 5.5.2 Unrecognized command');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    connections,
    messages,
    open: () => open.size,
    release354() {
      holding = false;
      for (const go of held.splice(0)) go();
    },
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Every line the backend received on all connections, in connection order. */
export function allLines(be: RawBackend): string[] {
  return be.connections.flatMap((c) => c.lines);
}
