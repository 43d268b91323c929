#!/usr/bin/env bash
# Installs the Debian packages the e2e suite starts (redis, postfix, nginx + mail module, Cyrus IMAP
# with POP3, replication and admin tools, SASL tools). Idempotent: installs only what is missing,
# and runs `apt-get update` only then. Noninteractive; postfix is preseeded to "No configuration"
# so nothing is written to /etc/postfix/main.cf and no system postfix is started (the suite runs
# its own instance from a temporary config directory).
set -euo pipefail

packages=(redis-server postfix nginx libnginx-mod-mail cyrus-imapd cyrus-replication cyrus-pop3d
  cyrus-admin sasl2-bin)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=''
if [ "$(id -u)" -ne 0 ]; then sudo='sudo'; fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
echo 'postfix postfix/main_mailer_type select No configuration' | $sudo debconf-set-selections
# The packages' maintainer scripts would start the system daemons (Cyrus on *:143 would then keep
# the suite's per-slot addresses from binding). policy-rc.d answering 101 forbids that during the
# install; an existing policy-rc.d is left alone.
policy=/usr/sbin/policy-rc.d
added_policy=''
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  added_policy=1
fi
cleanup() { if [ -n "$added_policy" ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
