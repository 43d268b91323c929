/**
 * Status documents and audit events: what both backends check before writing either.
 *
 * Status is what processes report about the world (a slot agent's replication report, one per
 * machine), kept apart from the audited layout: no version, no audit record, no change event, and
 * no path by which a status write could change, block or break a layout write. Redis keeps a hash
 * per kind under its own hash tag, written with a plain HSET; the embedded backend keeps a file
 * per kind and name beside the directory file, written without the directory lock. Each (kind,
 * name) holds the last document published; how old is too old is the reader's call (the agent's
 * reports carry their measuring time).
 *
 * An event is an audit record for something done outside the layout (an agent's repair): appended
 * to the history at the current version, which it does not change.
 */
import { DirectoryRuleError } from '../core/errors.js';
import { STATUS_KIND } from '../core/redis-keys.js';
import { checkActor, NAME } from './checks.js';
import type { AuditEvent, AuditRecord } from './model.js';

/** A status document above this is refused (an agent's report for 64 slots is tens of KB). */
export const MAX_STATUS_BYTES = 4 * 1024 * 1024;

export function checkStatusKind(kind: unknown): string {
  if (typeof kind !== 'string' || !STATUS_KIND.test(kind)) {
    throw new DirectoryRuleError('INVALID_NAME', `status kind ${JSON.stringify(kind)} must match ${STATUS_KIND.source}`);
  }
  return kind;
}

/** Names are machine or instance names: the directory's name rule (a file name and a hash field as is). */
export function checkStatusName(name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new DirectoryRuleError('INVALID_NAME', `status name ${JSON.stringify(name)} must match ${NAME.source}`);
  }
  return name;
}

/** The document as stored: checked names, plain JSON, at most MAX_STATUS_BYTES. */
export function statusText(kind: string, name: string, doc: unknown): string {
  checkStatusKind(kind);
  checkStatusName(name);
  let text: string | undefined;
  try {
    text = JSON.stringify(doc);
  } catch (err) {
    throw new DirectoryRuleError('INVALID_STATUS', `status ${kind}/${name} is not plain JSON: ${(err as Error).message}`);
  }
  if (text === undefined) throw new DirectoryRuleError('INVALID_STATUS', `status ${kind}/${name} is not plain JSON`);
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_STATUS_BYTES) {
    throw new DirectoryRuleError('STATUS_TOO_LARGE', `status ${kind}/${name} is ${bytes} bytes, above the limit of ${MAX_STATUS_BYTES}`);
  }
  return text;
}

function eventText(what: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 200) {
    throw new DirectoryRuleError('INVALID_EVENT', `event ${what} must be a non-empty string of at most 200 characters`);
  }
  return value;
}

/** The record an event becomes (version and time filled in by the backend), without them. */
export function eventBody(event: AuditEvent): Omit<AuditRecord, 'version' | 'at'> {
  const actor = checkActor(event.actor);
  const action = eventText('action', event.action);
  const target = eventText('target', event.target);
  const detail = event.detail ?? null;
  let text: string | undefined;
  try {
    text = JSON.stringify(detail);
  } catch (err) {
    throw new DirectoryRuleError('INVALID_EVENT', `event detail is not plain JSON: ${(err as Error).message}`);
  }
  if (text === undefined) throw new DirectoryRuleError('INVALID_EVENT', 'event detail is not plain JSON');
  // Stored as JSON on both backends: what comes back from history() is what JSON keeps.
  return { actor, action, target, before: null, after: null, detail: JSON.parse(text) as unknown };
}
