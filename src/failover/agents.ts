/**
 * The agents' published reports as the runner needs them: which machine's agent is reporting,
 * where to ask it for operations, and a store's verdict. Read and validated by agent/view.ts,
 * exactly as `status` reads them (silence or a malformed report is unknown, never caught-up); a
 * status the directory cannot give is a directory failure here, not an unknown store.
 */
import { readReplication, storeReplication, type AgentSeen, type ReplicationView, type StoreVerdict } from '../agent/index.js';
import type { Config } from '../config/index.js';
import { DirectoryUnavailableError } from '../core/errors.js';
import type { Directory, Store } from '../directory/index.js';

export interface AgentsView extends ReplicationView {
  machines: Map<string, AgentSeen>;
}

export async function readAgents(dir: Directory, config: Config['agent'], now = Date.now()): Promise<AgentsView> {
  const view = await readReplication(dir, config, now);
  if (view.unreadable) throw new DirectoryUnavailableError(view.unreadable);
  return { ...view, machines: new Map(view.agents.map((a) => [a.machine, a])) };
}

export function verdictOf(view: AgentsView, store: Store): StoreVerdict {
  return storeReplication(view, store);
}
