/**
 * The small pieces of plain-HTTP handling both operator endpoints share (this admin API and the
 * slot agent's port): a bearer check in constant time, a body read with a size limit, JSON out.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Bearer-token check in constant time. Both sides are hashed first so that the comparison does
 * not leak the token's length either (timingSafeEqual needs equal lengths). No token configured:
 * nothing matches.
 */
export function bearerMatches(header: string | undefined, token: string | undefined): boolean {
  if (!header || !token) return false;
  const m = /^Bearer\s+(.+)$/i.exec(header.trim());
  if (!m || !m[1]) return false;
  const a = createHash('sha256').update(m[1]).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

/** The request body as text, or null once it passes `maxBytes` (the rest is not read). */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        req.pause();
        req.removeAllListeners('data');
        resolve(null);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function send(res: ServerResponse, status: number, body: string, type: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, JSON.stringify(value) + '\n', 'application/json');
}

export interface HttpListener {
  /** Binds; `url` is `http://host:port` (IPv6 hosts bracketed), or `advertiseUrl` when given. */
  listen(): Promise<{ port: number; url: string }>;
  /** Stops accepting and drops open (kept-alive) connections. */
  close(): Promise<void>;
}

/**
 * A node:http server around `handle`: a handler that throws is logged (`event`) and answered 500,
 * never left hanging.
 */
export function serveHttp(opts: {
  listen: { host: string; port: number };
  advertiseUrl?: string | undefined;
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  onCrash: (err: unknown) => void;
  crashBody: unknown;
}): HttpListener {
  let server: Server | null = null;
  return {
    listen() {
      return new Promise((resolve, reject) => {
        const s = createServer((req, res) => {
          opts.handle(req, res).catch((err: unknown) => {
            opts.onCrash(err);
            if (!res.headersSent) sendJson(res, 500, opts.crashBody);
          });
        });
        s.once('error', reject);
        s.listen(opts.listen.port, opts.listen.host, () => {
          server = s;
          const port = (s.address() as AddressInfo).port;
          const host = opts.listen.host.includes(':') ? `[${opts.listen.host}]` : opts.listen.host;
          resolve({ port, url: opts.advertiseUrl ?? `http://${host}:${port}` });
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        if (!server) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
        server = null;
      });
    },
  };
}
