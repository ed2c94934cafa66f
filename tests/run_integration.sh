#!/usr/bin/env bash
# Runs the integration tests inside a private network namespace with only
# loopback, so no test can send traffic off this machine.
set -eu
cd "$(dirname "$0")/.."
# A private mount namespace too, where it can be had: the fault tests mount
# small tmpfs file systems there (tests/integration/faults.py).
if [ "${MS_IN_NETNS:-}" != 1 ] && unshare --net --mount true 2>/dev/null; then
	exec unshare --net --mount env MS_IN_NETNS=1 MS_IN_MOUNTNS=1 bash -c 'ip link set lo up && exec bash tests/run_integration.sh "$@"' -- "$@"
fi
if [ "${MS_IN_NETNS:-}" != 1 ] && unshare --net true 2>/dev/null; then
	exec unshare --net env MS_IN_NETNS=1 bash -c 'ip link set lo up && exec bash tests/run_integration.sh "$@"' -- "$@"
fi
[ "${MS_IN_NETNS:-}" = 1 ] || echo "warning: no private network namespace (unshare failed); running on the host's loopback"
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1"
export ASAN_OPTIONS="detect_leaks=0 abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1"
status=0
if [ $# -eq 0 ] && [ -n "${DNS_LIVE_BIN:-}" ]; then
	bash tests/integration/test_dns_testns.sh "$DNS_LIVE_BIN" || status=1
fi
python3 tests/integration/run.py "$@" || status=1
exit $status
