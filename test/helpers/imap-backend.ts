/**
 * A tiny IMAP responder standing in for a Cyrus slot behind nginx: greets, accepts LOGIN (quoted,
 * atom or literal arguments — nginx sends `tag LOGIN {n}` literals), says which backend it is in
 * the tagged OK, answers NOOP/CAPABILITY/LOGOUT. Records every login. Binds the address given
 * (port 0 by default).
 */
import { createServer, type Server, type Socket } from 'node:net';

export interface ImapLogin { user: string; pass: string }

export interface ImapBackend {
  name: string;
  host: string;
  port: number;
  logins: ImapLogin[];
  close(): Promise<void>;
}

/** Splits an IMAP argument list where literals were replaced by \uE000<index>\uE000 markers. */
function parseArgs(text: string, literals: string[]): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|\uE000(\d+)\uE000|(\S+)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[1] !== undefined) out.push(m[1].replace(/\\(.)/g, '$1'));
    else if (m[2] !== undefined) out.push(literals[Number(m[2])] ?? '');
    else out.push(m[3]!);
  }
  return out;
}

export async function startImapBackend(name: string, host = '127.0.0.1', port = 0): Promise<ImapBackend> {
  const logins: ImapLogin[] = [];
  const sockets = new Set<Socket>();

  function serve(sock: Socket): void {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let text = '';
    const literals: string[] = [];
    let literalLeft = -1;
    let authed = false;

    const command = (line: string) => {
      const [tag = '*', verb = '', ...args] = parseArgs(line, literals);
      literals.length = 0;
      const v = verb.toUpperCase();
      if (v === 'LOGIN' && !authed && args.length === 2) {
        authed = true;
        logins.push({ user: args[0]!, pass: args[1]! });
        sock.write(`${tag} OK [CAPABILITY IMAP4rev1] LOGIN completed on backend ${name} as ${args[0]}\r\n`);
      } else if (v === 'CAPABILITY') {
        sock.write(`* CAPABILITY IMAP4rev1\r\n${tag} OK CAPABILITY completed\r\n`);
      } else if (v === 'NOOP') {
        sock.write(`${tag} OK NOOP completed on backend ${name}\r\n`);
      } else if (v === 'LOGOUT') {
        sock.end(`* BYE backend ${name} logging out\r\n${tag} OK LOGOUT completed\r\n`);
      } else {
        sock.write(`${tag} BAD unknown command\r\n`);
      }
    };

    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (literalLeft >= 0) {
          if (buf.length < literalLeft) return;
          literals.push(buf.subarray(0, literalLeft).toString('utf8'));
          text += `\uE000${literals.length - 1}\uE000`;
          buf = buf.subarray(literalLeft);
          literalLeft = -1;
          continue;
        }
        const eol = buf.indexOf('\r\n');
        if (eol === -1) return;
        const line = buf.subarray(0, eol).toString('utf8');
        buf = buf.subarray(eol + 2);
        const lit = /\{(\d+)(\+?)\}$/.exec(line);
        if (lit) {
          text += line.slice(0, lit.index);
          literalLeft = Number(lit[1]);
          if (!lit[2]) sock.write('+ go ahead\r\n');
          continue;
        }
        const whole = text + line;
        text = '';
        command(whole);
      }
    });
    sock.write(`* OK [CAPABILITY IMAP4rev1] backend ${name} ready\r\n`);
  }

  const server: Server = createServer(serve);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return {
    name,
    host,
    port: addr && typeof addr === 'object' ? addr.port : port,
    logins,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
