/**
 * A TCP proxy with a gate, for making a real peer slow on purpose: while held, the bytes clients
 * send are kept (in order, nothing lost) instead of being forwarded; release() lets them through.
 * Put in front of redis-server it turns the directory's next lookups into lookups that finish
 * exactly when the test says so: no timers, no mocks. Listens on port 0.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface GateProxy {
  port: number;
  /** Bytes sent while held, not forwarded yet. */
  readonly heldBytes: number;
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

export async function startGateProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<GateProxy> {
  let holding = false;
  const held: Array<{ to: Socket; chunk: Buffer }> = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('data', (chunk: Buffer) => {
      if (holding) held.push({ to: upstream, chunk });
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    get heldBytes() { return held.reduce((n, h) => n + h.chunk.length, 0); },
    hold() { holding = true; },
    release() {
      holding = false;
      for (const { to, chunk } of held.splice(0)) if (!to.destroyed) to.write(chunk);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
