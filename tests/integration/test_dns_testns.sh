#!/usr/bin/env bash
# The live test of dns/: starts ldns-testns on a free loopback port with
# tests/integration/dns/zones.data, runs the CUnit program
# tests/unit/test_dns_live.c against it (DNS_TEST_SERVER=127.0.0.1:PORT),
# stops ldns-testns by its PID, and exits non-zero when anything failed.
#
# It runs only inside a private network namespace, where loopback is the
# only interface, so no query can leave the machine. When started outside
# one it re-runs itself under `unshare --net` (needs root); if that is not
# possible it says "skipped" and exits 0.
#
# Usage: tests/integration/test_dns_testns.sh [TEST_BINARY]
# Without TEST_BINARY the program is compiled from dns/ and lib/ into a
# temporary directory (so a half-built tree does not matter).
set -u
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/../.." || exit 1

in_private_netns() {
	# Only "lo" may exist (/proc/net/dev follows the current namespace;
	# /sys/class/net does not unless sysfs is mounted again).
	[ -r /proc/net/dev ] &&
	    [ "$(awk -F: 'NR > 2 { gsub(/ /, "", $1); print $1 }' /proc/net/dev)" = lo ]
}

if ! in_private_netns; then
	if [ -z "${DNS_TESTNS_INNER:-}" ] && command -v unshare >/dev/null &&
	    unshare --net true 2>/dev/null; then
		exec env DNS_TESTNS_INNER=1 unshare --net bash -c \
		    'ip link set lo up && exec bash "$0" "$@"' "$self" "$@"
	fi
	echo "skipped: $0 needs a private network namespace (unshare --net)"
	exit 0
fi
ip link set lo up 2>/dev/null

command -v ldns-testns >/dev/null || { echo "FAILED: ldns-testns not installed (ldnsutils)"; exit 1; }

tmp=$(mktemp -d /tmp/dns_testns.XXXXXX) || exit 1
testns_pid=
cleanup() {
	[ -n "$testns_pid" ] && kill "$testns_pid" 2>/dev/null && wait "$testns_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

bin=${1:-}
if [ -z "$bin" ]; then
	bin=$tmp/test_dns_live
	gcc -std=gnu11 -O1 -g -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes \
	    -Wstrict-prototypes -Werror -pthread -D_GNU_SOURCE -I. \
	    ${DNS_TEST_CFLAGS:-} \
	    lib/buf.c lib/util.c lib/log.c dns/*.c tests/unit/test_dns_live.c \
	    -o "$bin" -lcunit -lldns || { echo "FAILED: cannot build test_dns_live"; exit 1; }
fi

# A port of the harness's (free_port; ldns-testns' own -r gives up when
# the UDP half of its random port is free but not the TCP half); it
# says "Listening on port N" once bound. Sanitized builds run slower
# beside it: the wait scales as harness.SLOW does.
slow=1
[ -n "${SANITIZE:-}" ] && slow=4
port=
for attempt in 1 2 3 4 5; do
	try=$(cd tests/integration && python3 -c 'import harness; print(harness.free_port())') || break
	ldns-testns -p "$try" tests/integration/dns/zones.data >"$tmp/testns.log" 2>&1 &
	testns_pid=$!
	for _ in $(seq 1 $((100 * slow))); do
		if grep -q "^Listening on port $try\$" "$tmp/testns.log"; then
			port=$try
			break
		fi
		kill -0 "$testns_pid" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$port" ] && break
	kill "$testns_pid" 2>/dev/null && wait "$testns_pid" 2>/dev/null
	testns_pid=
done
if [ -z "$port" ]; then
	echo "FAILED: ldns-testns did not start"
	cat "$tmp/testns.log"
	exit 1
fi

DNS_TEST_SERVER=127.0.0.1:$port "$bin"
rc=$?
if [ $rc -ne 0 ]; then
	echo "FAILED: test_dns_live (exit $rc); ldns-testns log:"
	tail -n 40 "$tmp/testns.log"
	exit 1
fi
echo "ok: dns live test against ldns-testns on port $port"
exit 0
