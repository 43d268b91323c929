/**
 * A TCP proxy for one test that can turn chosen connections into black holes: bytes stop flowing
 * both ways but neither side sees a FIN or RST, as when a network path dies silently (a firewall
 * dropping state, a cable pulled between two switches). Listens on port 0.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface ProxiedConnection {
  /** The first bytes the client sent (enough to see e.g. ioredis' CLIENT SETNAME). */
  readonly sent: string;
  blackholed: boolean;
}

export interface BlackholeProxy {
  port: number;
  readonly connections: readonly ProxiedConnection[];
  /** Silently drops all traffic of the open connections `match` picks. Returns how many. */
  blackhole(match: (c: ProxiedConnection) => boolean): number;
  close(): Promise<void>;
}

export async function startBlackholeProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<BlackholeProxy> {
  const connections: (ProxiedConnection & { sockets: Socket[]; sentText: string })[] = [];
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    const conn = {
      sentText: '', blackholed: false, sockets: [client, upstream],
      get sent() { return this.sentText; },
    };
    connections.push(conn);
    client.on('data', (chunk: Buffer) => {
      if (conn.sentText.length < 4096) conn.sentText += chunk.toString('latin1');
      if (!conn.blackholed) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!conn.blackholed) client.write(chunk);
    });
    // A real end/close is passed on, unless the connection is a black hole (then nothing is).
    client.on('close', () => { if (!conn.blackholed) upstream.destroy(); });
    upstream.on('close', () => { if (!conn.blackholed) client.destroy(); });
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('proxy has no port');
  return {
    port: address.port,
    connections,
    blackhole(match) {
      let n = 0;
      for (const c of connections) {
        if (!c.blackholed && !c.sockets[0]?.destroyed && match(c)) {
          c.blackholed = true;
          n++;
        }
      }
      return n;
    },
    async close() {
      for (const c of connections) for (const s of c.sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
