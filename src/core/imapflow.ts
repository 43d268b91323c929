/**
 * imapflow, loaded on first use rather than at import: it is the heaviest module the CLI loads
 * (~0.3 s and ~25 MB), and most commands that import its users (`failover` for its verify phase,
 * `status`, `store`) never open an IMAP connection, or open one only after the part an operator
 * waits for. Both users (replay/presence.ts, check/imap.ts) sit above core/, hence here.
 */
let loading: Promise<typeof import('imapflow')> | null = null;

export function loadImapFlow(): Promise<typeof import('imapflow')> {
  loading ??= import('imapflow');
  return loading;
}
