/**
 * What the auth_http reader (./http.ts) needs from a TCP connection and a listener, so that it can
 * run over either of two socket layers:
 * - `handle` (./link-handle.ts, the default): libuv's TCP handle as node:net itself uses it,
 *   without a net.Socket per connection;
 * - `net` (./link-net.ts): plain node:net, the fallback when the handle binding is not usable and
 *   the operator's escape hatch (`auth.socketLayer: net`).
 * Both behave the same on the wire; test/auth runs its wire tests over both.
 */
import { createHandleListener, handleBindingProblem } from './link-handle.js';
import { createNetListener } from './link-net.js';

/** One accepted connection. Strings are latin1 (one char per byte) both ways. */
export interface Link {
  /** The peer's address (read once, at accept). */
  readonly remoteAddress: string | undefined;
  /** Sends bytes; false when the caller should wait for onceDrained() before sending more. */
  write(data: string): boolean;
  /** Non-zero while something handed to write() waits for the kernel (bytes for node:net, writes for the handle layer). */
  readonly queued: number;
  /** Sends what is queued, then a FIN; the link closes once the peer has closed its side too. */
  end(): void;
  /** close(2) now (anything still queued is dropped); idempotent. */
  destroy(): void;
  readonly destroyed: boolean;
  setNoDelay(): void;
  pause(): void;
  resume(): void;
  readonly paused: boolean;
  /** Calls back once, when everything queued has been written (after write() returned false). */
  onceDrained(callback: () => void): void;
}

/** What a link reports, in this order: data*, then end (the peer's FIN) at most once, then close once. */
export interface LinkEvents {
  data(chunk: string): void;
  end(): void;
  close(): void;
}

export interface Listener {
  listen(port: number, host: string): Promise<{ port: number }>;
  /** Stops accepting; open links are the caller's to close. */
  close(): Promise<void>;
}

export type SocketLayer = 'handle' | 'net';

/**
 * The listener for `wanted`; `handle` falls back to `net` (calling onFallback with the reason) when
 * this Node does not offer the handle binding in the shape link-handle.ts was written against.
 */
export function createListener(wanted: SocketLayer, accept: (link: Link) => LinkEvents,
  onFallback: (reason: string) => void = () => undefined): Listener {
  if (wanted === 'handle') {
    const problem = handleBindingProblem();
    if (problem === null) return createHandleListener(accept);
    onFallback(problem);
  }
  return createNetListener(accept);
}
