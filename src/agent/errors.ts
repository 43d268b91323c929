/**
 * The slot agent's errors: one class, a stable `code` per failure and the facts that explain it
 * (which slot, which file, which exit code), so logs, the HTTP answer and tests key on the code
 * and never on the message text.
 *
 * Not a StorerouteError: those stand for an LMTP/auth_http reply, and nothing the agent does is
 * answered on those wires. (core/errors.ts's ErrorCode union could absorb these codes later.)
 */
export type AgentErrorCode =
  /** imapd.conf does not exist or cannot be read. */
  | 'IMAPD_CONF_UNREADABLE'
  /** imapd.conf has a line Cyrus itself would refuse (Cyrus exits on these too). */
  | 'IMAPD_CONF_INVALID'
  /** imapd.conf has no `configdirectory` (Cyrus: "configdirectory option not specified"). */
  | 'IMAPD_CONF_NO_CONFIGDIRECTORY'
  /** The agent's own settings cannot work (no machine name, channel not logged, …). */
  | 'AGENT_CONFIG_INVALID'
  /** A configured slot the directory does not know. */
  | 'AGENT_SLOT_UNKNOWN'
  /** A configured slot the directory places on another machine. */
  | 'AGENT_SLOT_ELSEWHERE'
  /** An operation that is not on the allow-list. */
  | 'OP_UNKNOWN'
  /** An operation's arguments failed validation: nothing was run. */
  | 'OP_BAD_ARGUMENT'
  /** Valid, but not allowed now (slot is not its store's current master, …): nothing was run. */
  | 'OP_REFUSED'
  /** The command this operation needs is not configured on this machine. */
  | 'OP_NOT_CONFIGURED'
  /** Another repair or operation holds this slot. */
  | 'SLOT_BUSY'
  /** A command ran and failed (exit code, signal or spawn error in the facts). */
  | 'COMMAND_FAILED'
  /** A command or operation did not finish within its deadline (the command was killed). */
  | 'COMMAND_TIMEOUT'
  /** A command template uses a placeholder with no value here. */
  | 'COMMAND_TEMPLATE'
  /** (client) Nothing answers at the agent's address: the agent is not running there. */
  | 'AGENT_UNREACHABLE'
  /** (client) The agent refused the token. */
  | 'AGENT_UNAUTHORIZED';

export class AgentError extends Error {
  readonly code: AgentErrorCode;
  readonly facts: Readonly<Record<string, unknown>>;
  constructor(code: AgentErrorCode, message: string, facts: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentError';
    this.code = code;
    this.facts = facts;
  }
}

/** The errno-style code of a Node fs/spawn error ("ENOENT"), or "UNKNOWN". */
export function errnoCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}
