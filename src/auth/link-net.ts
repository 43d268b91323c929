/**
 * The node:net socket layer for the auth_http reader (see ./link.ts): one net.Socket per
 * connection. The fallback and escape hatch; link-handle.ts is the default (and says why).
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Link, LinkEvents, Listener } from './link.js';

const LINK = Symbol('auth-http-link');
type LinkedSocket = Socket & { [LINK]: NetLink };

class NetLink implements Link {
  events!: LinkEvents;
  readonly remoteAddress: string | undefined;

  constructor(readonly socket: Socket) {
    this.remoteAddress = socket.remoteAddress;
  }

  write(data: string): boolean { return this.socket.write(data, 'latin1'); }
  get queued(): number { return this.socket.writableLength; }
  end(): void { this.socket.end(); }
  destroy(): void { this.socket.destroy(); }
  get destroyed(): boolean { return this.socket.destroyed; }
  setNoDelay(): void { this.socket.setNoDelay(true); }
  pause(): void { this.socket.pause(); }
  resume(): void { this.socket.resume(); }
  get paused(): boolean { return this.socket.isPaused(); }
  onceDrained(callback: () => void): void { this.socket.once('drain', callback); }
}

// Shared listeners (no closures per connection): the socket finds its link by symbol.
function onSocketData(this: LinkedSocket, chunk: Buffer): void { this[LINK].events.data(chunk.toString('latin1')); }
function onSocketEnd(this: LinkedSocket): void { this[LINK].events.end(); }
function onSocketError(this: LinkedSocket): void { this.destroy(); } // a reset peer: nothing to answer
function onSocketClose(this: LinkedSocket): void { this[LINK].events.close(); }

export function createNetListener(accept: (link: Link) => LinkEvents): Listener {
  // allowHalfOpen: a client that sends its request and then shuts down its side still gets the answer.
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    const link = new NetLink(socket);
    (socket as LinkedSocket)[LINK] = link;
    link.events = accept(link);
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
  });
  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const addr = server.address();
          resolve({ port: addr && typeof addr === 'object' ? addr.port : port });
        });
      });
    },
    close() {
      return new Promise<void>((resolve) => { server.close(() => resolve()); });
    },
  };
}
