/**
 * Starts the e2e stack by hand (as root, after `npm run build`) and keeps it up until Ctrl-C:
 *   npx tsx scripts/e2e-stack.ts
 * Prints where everything listens and the config file, so storeroute's CLI can be pointed at it:
 *   node dist/cli/index.js --config <printed path> store list
 * Set STOREROUTE_E2E_KEEP=1 to keep the temporary directory (logs, spools) after stopping.
 */
import { startStack, stopStack, USERS, DOMAIN } from '../test/e2e/stack/index.js';

const stack = await startStack();
const sr = stack.storeroute;
console.log(`stack up in ${stack.dir}
  postfix SMTP     127.0.0.1:${stack.postfix.smtpPort}   (domain ${DOMAIN}; log ${stack.postfix.maillog})
  nginx IMAP/POP3  127.0.0.1:${stack.nginx.imapPort} / 127.0.0.1:${stack.nginx.pop3Port}
  storeroute       LMTP 127.0.0.1:${sr.lmtpPort}, auth_http ${sr.authHttp}, admin 127.0.0.1:${sr.adminPort} (token ${sr.adminToken})
                   config ${sr.configFile}, log ${sr.logFile}
  redis            ${stack.redis.url}
  cyrus slots      ${Object.values(stack.slots).map((s) => `${s.name}=${s.ip}`).join(' ')} (admin cyrus, ports 143/110/24/2005)
  users            ${Object.entries(USERS).map(([u, v]) => `${u}/${v.password} on ${v.store}`).join(', ')}
  syslog           ${stack.syslog.file ?? '(system syslog)'}
Ctrl-C to stop.`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  console.log('stopping…');
  void stopStack(stack, false).then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
