/**
 * The configuration `npm start` serves (config/storeroute.example.yaml), with its state in a temp
 * dir and every listener on a free port; and a raw LMTP exchange with it.
 */
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../src/config/index.js';

export function exampleConfigInTempDir(): Config {
  const dir = mkdtempSync(join(tmpdir(), 'sr-example-'));
  const config = loadConfig(new URL('../../config/storeroute.example.yaml', import.meta.url).pathname);
  config.directory.embedded.file = join(dir, 'directory.json');
  config.journal.dir = join(dir, 'journal');
  config.lmtp.listen = { host: '127.0.0.1', port: 0 };
  config.auth.listen.port = 0;
  config.admin.listen.port = 0;
  return config;
}

/** Writes `lines` at once and resolves with everything the server said until it closed. */
export function lmtpExchange(port: number, lines: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let out = '';
    sock.on('data', (d) => { out += d.toString(); });
    sock.on('end', () => resolve(out));
    sock.on('error', reject);
    sock.write(lines.map((l) => `${l}\r\n`).join(''));
  });
}
