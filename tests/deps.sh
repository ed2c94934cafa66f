#!/usr/bin/env bash
# Installs the Debian packages mailserver builds and tests with, if any is
# missing. Postfix (for smtp-source/smtp-sink) is installed unconfigured, so
# no Postfix daemon starts; nor do OpenDKIM, clamd or freshclam (test
# peers), thanks to the policy-rc.d below.
set -eu
pkgs="build-essential clang libgnutls28-dev libldns-dev liblmdb-dev libcunit1-dev
      libcrypt-dev lmdb-utils postfix ldnsutils gnutls-bin swaks dovecot-imapd
      python3 python3-yaml iproute2 util-linux procps
      libpsl-dev publicsuffix python3-dkim python3-nacl opendkim opendkim-tools
      libcurl4-gnutls-dev nsd unbound testssl.sh
      python3-milter postgrey postfix-policyd-spf-python rspamd
      clamav-daemon clamav-milter"
missing=""
# The metrics endpoint and its tests (curl scrapes, promtool checks), man pages.
pkgs="$pkgs libmicrohttpd-dev zlib1g-dev curl prometheus groff-base man-db logrotate"
# LMTP delivery tests: Dovecot's LMTP server with Sieve.
pkgs="$pkgs dovecot-lmtpd dovecot-sieve"
# bench/mailauth: Postfix with the OpenDKIM and OpenDMARC milters.
pkgs="$pkgs opendmarc"
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
# policy-rc.d keeps package scripts from starting daemons (postfix, dovecot).
policy=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod +x "$policy"
	created=1
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
[ "$created" = 1 ] && $SUDO rm -f "$policy"
exit 0
