import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';

/** A silent logger (set STOREROUTE_TEST_LOG=debug to see it) and a fresh registry per test. */
export function testLogger(): Logger {
  return pino({ level: process.env.STOREROUTE_TEST_LOG ?? 'silent' });
}

export function testRegistry(): Registry {
  return new Registry();
}
