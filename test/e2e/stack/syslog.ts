/**
 * Cyrus logs only to syslog, and this machine (like most CI containers) runs none: without a
 * listener on /dev/log a failing Cyrus is silent. When no live listener is there, this starts a
 * tiny one (Perl, which cyrus-admin already depends on; Node has no unix datagram sockets) that
 * appends every datagram to a file the suite prints on failure. A live system syslog is left alone.
 */
import { existsSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnDaemon, run, tail, type Daemon } from './proc.js';
import { waitFor } from '../../helpers/ports.js';

const DEV_LOG = '/dev/log';

const LISTENER = `
use strict; use Socket; use IO::Handle;
my ($path, $out) = @ARGV;
unlink $path;
socket(my $s, PF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
bind($s, pack_sockaddr_un($path)) or die "bind: $!";
chmod 0666, $path;
open(my $fh, '>>', $out) or die "open $out: $!"; $fh->autoflush(1);
while (1) { my $buf; defined(recv($s, $buf, 65536, 0)) or next; $buf =~ s/\\0$//; print $fh "$buf\\n"; }
`;

export interface SyslogCapture {
  /** The file Cyrus's log lines go to, or null when a system syslog owns /dev/log. */
  file: string | null;
  tail(lines?: number): string;
  close(): Promise<void>;
}

async function devLogIsLive(): Promise<boolean> {
  if (!existsSync(DEV_LOG) || !statSync(DEV_LOG).isSocket()) return false;
  try {
    await run('logger', ['--socket-errors=on', '-u', DEV_LOG, '-t', 'storeroute-e2e', 'probe'], { timeoutMs: 5_000 });
    return true;
  } catch {
    return false;
  }
}

export async function startSyslog(dir: string): Promise<SyslogCapture> {
  if (await devLogIsLive()) {
    return { file: null, tail: () => '(Cyrus logs went to the system syslog)', close: async () => undefined };
  }
  const file = join(dir, 'syslog.log');
  const script = join(dir, 'syslog.pl');
  writeFileSync(script, LISTENER);
  writeFileSync(file, '');
  const daemon: Daemon = spawnDaemon('syslog', 'perl', [script, DEV_LOG, file], { logFile: join(dir, 'syslog.out') });
  await waitFor(async () => {
    if (daemon.dead) throw new Error(`syslog listener exited: ${tail(join(dir, 'syslog.out'))}`);
    return devLogIsLive();
  }, 10_000, 'the /dev/log listener');
  return {
    file,
    tail: (lines = 60) => tail(file, lines),
    close: async () => {
      await daemon.stop(1_000);
      try {
        unlinkSync(DEV_LOG);
      } catch {
        // Someone else removed it: fine, it was ours and it is gone.
      }
    },
  };
}
