/**
 * The suite's temporary directory: world-traversable (the `cyrus` and `postfix` users must reach
 * their parts of it), removed after the run unless STOREROUTE_E2E_KEEP=1 (for debugging).
 */
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function makeWorkDir(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `storeroute-e2e-${tag}-`));
  chmodSync(dir, 0o755);
  return dir;
}

export function removeWorkDir(dir: string): void {
  if (process.env.STOREROUTE_E2E_KEEP === '1') {
    console.log(`e2e: kept ${dir}`);
    return;
  }
  rmSync(dir, { recursive: true, force: true });
}
