import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

/**
 * What every long-lived component is handed at construction: the one logger and the one metrics
 * registry, both created in main.ts. No module creates its own.
 */
export interface Observability {
  logger: Logger;
  metrics: Registry;
}
