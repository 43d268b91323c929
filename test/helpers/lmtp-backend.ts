/**
 * A real LMTP backend for tests: smtp-server in LMTP mode on port 0, standing in for a Cyrus
 * lmtpd. Each phase can be told to accept, answer 4xx/5xx, stall or drop the connection, per
 * recipient where that makes sense. Every message is recorded byte-exact (after unstuffing, i.e.
 * what a store would write), with its envelope and the session it came on.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { applySmtpServerPatches } from '../../src/lmtp/smtp-patch.js';

export type Action = 'accept' | 'stall' | 'drop' | { code: number; text: string };

export interface BackendBehaviour {
  /** At connect: stall = never greet, drop = close at once. */
  greeting?: 'accept' | 'stall' | 'drop';
  /** For every MAIL, or per connection (numbered from 1 in accept order). */
  mail?: Action | ((connection: number) => Action);
  /** Per recipient address (as received). */
  rcpt?: (address: string) => Action;
  /** While the message streams: stall = stop reading; drop = close after `dropAfterBytes`. */
  data?: 'accept' | 'stall' | 'drop';
  dropAfterBytes?: number;
  /** After the dot, per recipient. */
  final?: (address: string) => Action;
}

export interface ReceivedMessage {
  connection: number;
  mailFrom: string;
  /** Recipients accepted at RCPT, in order. */
  recipients: string[];
  body: Buffer;
}

export interface LmtpBackend {
  host: string;
  port: number;
  behaviour: BackendBehaviour;
  messages: ReceivedMessage[];
  /** Connections accepted so far. */
  connections(): number;
  /** Connections open now. */
  open(): number;
  close(): Promise<void>;
}

function toError(a: { code: number; text: string }): Error {
  return Object.assign(new Error(a.text), { responseCode: a.code });
}

export async function startLmtpBackend(behaviour: BackendBehaviour = {}, host = '127.0.0.1'): Promise<LmtpBackend> {
  // Like Cyrus, the backend sends exact enhanced codes ("550 5.7.1 …"), not smtp-server's table.
  applySmtpServerPatches();
  const sockets = new Map<number, Socket>(); // by the client's port, which the session knows too
  const connIds = new Map<string, number>();
  let connections = 0;
  const messages: ReceivedMessage[] = [];
  const state = { behaviour };

  const socketOf = (s: SMTPServerSession) => sockets.get(s.remotePort);
  const act = (a: Action | undefined, session: SMTPServerSession, cb: (err?: Error | null) => void) => {
    if (!a || a === 'accept') return cb();
    if (a === 'stall') return undefined;
    if (a === 'drop') { socketOf(session)?.destroy(); return undefined; }
    return cb(toError(a));
  };

  const smtp = new SMTPServer({
    lmtp: true,
    name: 'backend.test',
    logger: false,
    disabledCommands: ['AUTH', 'STARTTLS'],
    hideENHANCEDSTATUSCODES: false,
    disableReverseLookup: true,
    size: 0,
    onConnect(session, cb) {
      connIds.set(session.id, ++connections);
      if (state.behaviour.greeting === 'stall') return;
      cb();
    },
    onMailFrom(_address, session, cb) {
      const m = state.behaviour.mail;
      act(typeof m === 'function' ? m(connIds.get(session.id) ?? 0) : m, session, cb);
    },
    onRcptTo(address, session, cb) { act(state.behaviour.rcpt?.(address.address), session, cb); },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      let got = 0;
      const mode = state.behaviour.data ?? 'accept';
      if (mode === 'stall') return; // never read: backpressure reaches the sender's socket
      stream.on('data', (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        if (mode === 'drop' && got >= (state.behaviour.dropAfterBytes ?? 0)) socketOf(session)?.destroy();
      });
      stream.on('end', () => {
        const recipients = session.envelope.rcptTo.map((r) => r.address);
        messages.push({
          connection: connIds.get(session.id) ?? 0,
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          recipients,
          body: Buffer.concat(chunks),
        });
        const finals = recipients.map((r) => state.behaviour.final?.(r) ?? 'accept');
        if (finals.includes('stall')) return;
        if (finals.includes('drop')) { socketOf(session)?.destroy(); return; }
        cb(null, finals.map((f) => f === 'accept' ? `2.1.5 Delivered to ${recipients.length} mailbox(es)`
          : toError(f as { code: number; text: string })));
      });
    },
  });
  smtp.on('error', () => undefined);

  const server: Server = createServer((socket) => {
    socket.on('error', () => undefined);
    if (state.behaviour.greeting === 'drop') { socket.destroy(); return; }
    const port = socket.remotePort ?? 0;
    sockets.set(port, socket);
    socket.on('close', () => sockets.delete(port));
    smtp.connect(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const addr = server.address();
  const port = addr && typeof addr === 'object' ? addr.port : 0;

  return {
    host,
    port,
    get behaviour() { return state.behaviour; },
    set behaviour(b: BackendBehaviour) { state.behaviour = b; },
    messages,
    connections: () => connections,
    open: () => sockets.size,
    async close() {
      for (const s of sockets.values()) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
