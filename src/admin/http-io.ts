/**
 * The small pieces of plain-HTTP handling both operator endpoints share (this admin API and the
 * slot agent's port): a bearer check in constant time, a body read with a size limit, JSON out.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

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
