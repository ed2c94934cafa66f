# bench/common.sh: shared pieces of the benchmark scripts (sourced, not run).
# shellcheck shell=bash disable=SC2034
#
# Everything here stays on loopback: each script re-executes itself inside a
# private network namespace (unshare --net) that holds only `lo`, and every
# server it starts listens on 127.0.0.1. Every wait is bounded.
#
# Environment knobs common to all scripts:
#   MAILSERVER_BIN   mailserver binary (default: build/default/mailserver)
#   MAILCTL_BIN      mailctl binary (default: build/default/mailctl, if built)
#   BENCH_KEEP=1     keep the temp dir (configs, logs) for inspection
#   BENCH_PORT_BASE  first TCP port used (default 30025)

# ---- entering the private network namespace ------------------------------

# Call first thing in a script: bench_enter_netns "$@"
# Re-executes the calling script under `unshare --net` (root needed), brings
# loopback up and raises the fd limit.
bench_enter_netns() {
	if [ "${BENCH_IN_NETNS:-}" != 1 ]; then
		exec unshare --net env BENCH_IN_NETNS=1 bash "$0" "$@"
	fi
	ip link set lo up
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
	# Only loopback may exist in here; refuse to run otherwise.
	local ifs
	ifs=$(ip -o link show | awk -F': ' '{print $2}' | grep -v '^lo$' || true)
	if [ -n "$ifs" ]; then
		echo "bench: network namespace has interfaces besides lo: $ifs" >&2
		exit 1
	fi
}

# ---- paths, temp dir, cleanup --------------------------------------------

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_REPO=$(cd "$BENCH_DIR/.." && pwd)
BENCH_PORT_BASE=${BENCH_PORT_BASE:-30025}

BENCH_TMP=""
BENCH_MS_PIDS=()	# mailservers started (pid)
BENCH_PF_DIRS=()	# private Postfix config dirs started
BENCH_SINK_PIDS=()	# smtp-sinks started
BENCH_OTHER_PIDS=()	# anything else started in the background
BENCH_MILTER_PIDS=()	# libmilter daemons started (pid): SIGKILL at the end

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

now() { date +%s.%N; }
# elapsed START END -> seconds, 3 decimals
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# rate COUNT SECONDS -> msgs/s, no decimals
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "-" }'; }
# ratio A B -> A/B, 2 decimals, "-" when undefined
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b;
		else print "-" }'
}

bench_init() {
	BENCH_TMP=$(mktemp -d /tmp/mailbench.XXXXXX)
	chmod 755 "$BENCH_TMP"	# postfix and nobody must traverse it
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM HUP

	local ms=${MAILSERVER_BIN:-$BENCH_REPO/build/default/mailserver}
	[ -x "$ms" ] || die "no mailserver binary at $ms (make build/default/mailserver)"
	# Private copies: others may rebuild the tree during a run.
	mkdir -p "$BENCH_TMP/bin"
	cp "$ms" "$BENCH_TMP/bin/mailserver"
	BENCH_MS_BIN=$BENCH_TMP/bin/mailserver
	local mc=${MAILCTL_BIN:-$BENCH_REPO/build/default/mailctl}
	BENCH_MAILCTL=""
	if [ -x "$mc" ]; then
		cp "$mc" "$BENCH_TMP/bin/mailctl"
		BENCH_MAILCTL=$BENCH_TMP/bin/mailctl
	fi
	for t in smtp-source smtp-sink postfix postsuper postconf; do
		command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] ||
			die "$t not found (apt-get install postfix; see NOTES.md)"
	done
	export PATH="$PATH:/usr/sbin:/sbin"
}

bench_cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	set +e
	local p d
	for p in "${BENCH_OTHER_PIDS[@]}"; do stop_pid "$p" 5; done
	for p in "${BENCH_MS_PIDS[@]}"; do stop_pid "$p" 35; done
	for d in "${BENCH_PF_DIRS[@]}"; do pf_stop "$d"; done
	for p in "${BENCH_MILTER_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	for p in "${BENCH_SINK_PIDS[@]}"; do stop_pid "$p" 5; done
	if [ -n "$BENCH_TMP" ] && [ -d "$BENCH_TMP" ]; then
		if [ "${BENCH_KEEP:-}" = 1 ]; then
			log "kept $BENCH_TMP"
		else
			rm -rf "$BENCH_TMP"
		fi
	fi
	exit "$rc"
}

# stop_pid PID GRACE: SIGTERM, wait up to GRACE seconds, then SIGKILL.
stop_pid() {
	local pid=$1 grace=${2:-10} i
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < grace * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid still running after ${grace}s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

# forget PID ARRAYNAME: drop a stopped pid from a tracking array.
forget_pid() {
	local pid=$1 name=$2 p
	local -n arr=$name
	local keep=()
	for p in "${arr[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	arr=("${keep[@]}")
}

# wait_port HOST PORT SECONDS: until something accepts connections there.
wait_port() {
	local host=$1 port=$2 secs=${3:-20} i
	for ((i = 0; i < secs * 10; i++)); do
		if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# ---- mailserver ----------------------------------------------------------

# ms_write_config DIR PORT [extra config lines...]: writes DIR/mailserver.conf
ms_write_config() {
	local dir=$1 port=$2
	shift 2
	mkdir -p "$dir"
	{
		echo "# generated by bench/common.sh"
		echo "hostname = bench.test"
		echo "listen = 127.0.0.1:$port smtp"
		echo "queue_dir = $dir/queue"
		echo "mail_dir = $dir/mail"
		echo "log_file = $dir/mailserver.log"
		echo "log_level = ${BENCH_MS_LOG_LEVEL:-warn}"
		echo "dns_server = ${BENCH_MS_DNS:-127.0.0.1:1}"
		echo "local_domains = localhost"
		local l
		for l in "$@"; do echo "$l"; done
		# BENCH_MS_EXTRA: more config lines, for A/B runs of one setting
		[ -z "${BENCH_MS_EXTRA:-}" ] || printf '%s\n' "$BENCH_MS_EXTRA"
	} >"$dir/mailserver.conf"
	"$BENCH_MS_BIN" -t -c "$dir/mailserver.conf" >/dev/null 2>"$dir/check.err" || {
		cat "$dir/check.err" >&2
		die "mailserver -t rejected $dir/mailserver.conf"
	}
}

# ms_start DIR PORT: starts mailserver on DIR/mailserver.conf; sets MS_PID.
ms_start() {
	local dir=$1 port=$2
	"$BENCH_MS_BIN" -c "$dir/mailserver.conf" >>"$dir/stderr.log" 2>&1 &
	MS_PID=$!
	BENCH_MS_PIDS+=("$MS_PID")
	if ! wait_port 127.0.0.1 "$port" 20; then
		tail -20 "$dir/stderr.log" "$dir/mailserver.log" >&2 2>/dev/null
		die "mailserver did not listen on 127.0.0.1:$port within 20s"
	fi
	kill -0 "$MS_PID" 2>/dev/null || die "mailserver exited at start (see $dir/stderr.log)"
}

# ms_stop: SIGTERM to MS_PID, bounded wait.
ms_stop() {
	[ -n "${MS_PID:-}" ] || return 0
	stop_pid "$MS_PID" 35
	forget_pid "$MS_PID" BENCH_MS_PIDS
	MS_PID=""
}

# ms_reset DIR PORT: stop, set the queue and Maildirs aside, start again.
# They are moved, not deleted: on ext4 without a journal the kernel skips
# inodes freed in the last ~35 s when it allocates one, so deleting the
# last run's 20,000 files would make every file the next run creates up to
# ten times dearer. bench_cleanup deletes them all at the end.
BENCH_RESETS=0
ms_reset() {
	ms_stop
	BENCH_RESETS=$((BENCH_RESETS + 1))
	mkdir -p "$BENCH_TMP/old/$BENCH_RESETS"
	[ ! -e "$1/queue" ] || mv "$1/queue" "$BENCH_TMP/old/$BENCH_RESETS/"
	[ ! -e "$1/mail" ] || mv "$1/mail" "$BENCH_TMP/old/$BENCH_RESETS/"
	ms_start "$1" "$2"
}

# ms_received DIR: messages the queue holds/received, or "?" if unknown.
# Prefers `mailctl --json stats` (received counter); falls back to the
# number of records in the LMDB `msg` sub-database (mdb_stat).
ms_received() {
	local dir=$1 out n
	if [ -n "$BENCH_MAILCTL" ]; then
		out=$(timeout 30 "$BENCH_MAILCTL" -c "$dir/mailserver.conf" --json stats 2>/dev/null || true)
		n=$(printf '%s' "$out" | grep -o '"received":[0-9]*' | head -1 | cut -d: -f2)
		if [ -n "$n" ]; then echo "$n"; return; fi
	fi
	if command -v mdb_stat >/dev/null && [ -d "$dir/queue" ]; then
		n=$(timeout 30 mdb_stat -s msg "$dir/queue" 2>/dev/null |
			awk '/Entries:/ { print $2; exit }')
		if [ -n "$n" ]; then echo "$n"; return; fi
	fi
	echo "?"
}

# ms_delivered_maildir DIR: files in every Maildir new/ under DIR/mail.
ms_delivered_maildir() {
	local d=$1/mail
	[ -d "$d" ] || { echo 0; return; }
	find "$d" -path '*/new/*' -type f 2>/dev/null | wc -l
}

# ---- private Postfix -----------------------------------------------------

# pf_setup DIR PORT MODE [SINKPORT]
#   MODE hold:    accept and park in the hold queue (acceptance only)
#   MODE relay:   relay everything to [127.0.0.1]:SINKPORT
#   MODE maildir: deliver mail for maildir.test into DIR/vmail/<user>/ Maildirs
#                 (virtual(8), as user nobody)
# Mail for DOMAIN (BENCH_PF_DOMAIN, default bench.test) is what the benches send.
pf_setup() {
	local dir=$1 port=$2 mode=$3 sinkport=${4:-}
	# DIR/conf: main.cf, master.cf (postfix -c DIR/conf); the queue and the
	# data directory live beside it, not inside (postfix-script's ownership
	# checks walk the config directory).
	mkdir -p "$dir/conf" "$dir/queue" "$dir/data" "$dir/log"
	chown postfix:postfix "$dir/data"
	chown root:root "$dir/queue" "$dir/conf"
	chmod 755 "$dir" "$dir/conf" "$dir/queue" "$dir/log"
	local extra=""
	case "$mode" in
	hold)
		extra="smtpd_recipient_restrictions = check_recipient_access inline:{hold.test=HOLD}, permit_mynetworks, reject_unauth_destination"
		;;
	relay)
		[ -n "$sinkport" ] || die "pf_setup relay needs SINKPORT"
		extra="relayhost = [127.0.0.1]:$sinkport"
		;;
	maildir)
		mkdir -p "$dir/vmail"
		chown nobody:nogroup "$dir/vmail"
		extra="virtual_mailbox_domains = maildir.test
virtual_mailbox_base = $dir/vmail
virtual_mailbox_maps = static:rcpt/
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(getent group nogroup | cut -d: -f3)
virtual_minimum_uid = 100"
		;;
	*) die "pf_setup: unknown mode $mode" ;;
	esac
	cat >"$dir/conf/main.cf" <<EOF
# generated by bench/common.sh (mode $mode)
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps =
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtpd_banner = \$myhostname ESMTP
biff = no
append_dot_mydomain = no
maillog_file = $dir/log/maillog
maillog_file_prefixes = $dir/log
# enough smtpd processes for 100+ concurrent sessions
default_process_limit = ${BENCH_PF_PROCESS_LIMIT:-250}
$extra
EOF
	awk -v port="$port" '
		/^#/ || /^[ \t]/ || NF < 8 { print; next }
		$1 == "smtp" && $2 == "inet" {
			print "127.0.0.1:" port " inet n - n - - smtpd"; next }
		{ $5 = "n"; print }
	' /etc/postfix/master.cf >"$dir/conf/master.cf"
}

# pf_start DIR PORT
pf_start() {
	local dir=$1 port=$2
	postfix -c "$dir/conf" check >"$dir/check.log" 2>&1 || {
		cat "$dir/check.log" >&2
		die "postfix -c $dir check failed"
	}
	postfix -c "$dir/conf" start >"$dir/start.log" 2>&1 || {
		cat "$dir/start.log" >&2
		tail -20 "$dir/log/maillog" >&2 2>/dev/null
		die "postfix -c $dir start failed"
	}
	BENCH_PF_DIRS+=("$dir")
	wait_port 127.0.0.1 "$port" 30 || {
		tail -20 "$dir/log/maillog" >&2 2>/dev/null
		die "private postfix did not listen on 127.0.0.1:$port"
	}
}

# pf_stop DIR: `postfix -c DIR stop`, bounded; `abort` if it hangs.
pf_stop() {
	local dir=$1 i pidf
	[ -f "$dir/conf/main.cf" ] || return 0
	pidf=$dir/queue/pid/master.pid
	[ -f "$pidf" ] || return 0
	timeout 30 postfix -c "$dir/conf" stop >/dev/null 2>&1 ||
		timeout 30 postfix -c "$dir/conf" abort >/dev/null 2>&1
	for ((i = 0; i < 100; i++)); do
		[ -f "$pidf" ] && kill -0 "$(tr -d ' ' <"$pidf")" 2>/dev/null || break
		sleep 0.1
	done
	forget_pid "$dir" BENCH_PF_DIRS
}

# pf_held DIR: messages in the hold queue
pf_held() { find "$1/queue/hold" -type f 2>/dev/null | wc -l; }

# pf_queued DIR: messages anywhere in the queue (incoming active deferred hold maildrop)
pf_queued() {
	find "$1/queue/incoming" "$1/queue/active" "$1/queue/deferred" \
		"$1/queue/hold" "$1/queue/maildrop" -type f 2>/dev/null | wc -l
}

# pf_empty DIR: delete every queued message
pf_empty() {
	local dir=$1
	postsuper -c "$dir/conf" -d ALL >/dev/null 2>&1 || true
}

# pf_delivered_maildir DIR
pf_delivered_maildir() {
	find "$1/vmail" -path '*/new/*' -type f 2>/dev/null | wc -l
}

# pf_add_milters DIR MILTER...: Postfix DIR passes every message through
# the milters (inet:127.0.0.1:PORT ...), in that order; a milter that
# fails tempfails the message (Postfix's default), so nothing unchecked is
# counted as accepted.
pf_add_milters() {
	local dir=$1
	shift
	local IFS=,
	postconf -c "$dir/conf" -e "smtpd_milters = $*" "milter_default_action = tempfail" ||
		die "postconf -c $dir/conf: smtpd_milters"
}

# ---- milters (OpenDKIM, OpenDMARC) ----------------------------------------

# bench_resolv_conf DIR DNSADDR: writes DIR/resolv.conf naming only DNSADDR
# (a loopback address: the libc resolver cannot take a port, so the
# server must listen on 53 of the private namespace).
bench_resolv_conf() {
	printf 'nameserver %s\noptions attempts:1 timeout:2\n' "$2" >"$1/resolv.conf"
}

# milter_start NAME DIR PORT RESOLVCONF CMD...: runs CMD (a daemon in the
# foreground, output to DIR/NAME.out) in a private mount namespace where
# /etc/resolv.conf is RESOLVCONF, so every libc lookup it makes goes to the
# loopback DNS named there. Waits until it listens on 127.0.0.1:PORT.
# libmilter daemons linger 5 s after SIGTERM and keep nothing that needs a
# clean stop: bench_cleanup SIGKILLs them by PID.
milter_start() {
	local name=$1 dir=$2 port=$3 resolv=$4 pid
	shift 4
	# unshare and sh exec, so $! is the daemon's own PID.
	# shellcheck disable=SC2016 # sh expands them
	unshare --mount --propagation private -- sh -c \
		'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' sh "$resolv" "$@" \
		>"$dir/$name.out" 2>&1 </dev/null &
	pid=$!
	BENCH_MILTER_PIDS+=("$pid")
	wait_port 127.0.0.1 "$port" 20 || {
		tail -20 "$dir/$name.out" >&2
		die "$name did not listen on 127.0.0.1:$port"
	}
	kill -0 "$pid" 2>/dev/null || die "$name exited at start (see $dir/$name.out)"
}

# ---- smtp-sink -----------------------------------------------------------

# sink_start DIR PORT: a sink with a running counter to DIR/sink.out; sets
# SINK_PID. BENCH_SINK=c (the default): bench/sink.c, built here, a thread
# per connection; BENCH_SINK=smtp-sink: Postfix's, one process (at about
# 135 MiB/s of 1 MiB messages it is the limit of an end-to-end run).
sink_start() {
	local dir=$1 port=$2
	mkdir -p "$dir"
	: >"$dir/sink.out"
	if [ "${BENCH_SINK:-c}" = smtp-sink ]; then
		smtp-sink -u nobody -c -m 1000 127.0.0.1:"$port" 1000 >"$dir/sink.out" 2>"$dir/sink.err" &
	else
		mkdir -p "$BENCH_TMP/bin"
		cc -std=gnu11 -O2 -Wall -Wextra -Werror -pthread -o "$BENCH_TMP/bin/sink" \
			"$BENCH_DIR/sink.c" || die "cannot build bench/sink.c"
		"$BENCH_TMP/bin/sink" "$port" >"$dir/sink.out" 2>"$dir/sink.err" &
	fi
	SINK_PID=$!
	BENCH_SINK_PIDS+=("$SINK_PID")
	wait_port 127.0.0.1 "$port" 10 || die "smtp-sink did not listen on $port"
	# wait_port's probe counts as a session, not as a message
}

sink_stop() {
	[ -n "${SINK_PID:-}" ] || return 0
	stop_pid "$SINK_PID" 5
	forget_pid "$SINK_PID" BENCH_SINK_PIDS
	SINK_PID=""
}

# sink_count DIR: messages ("." received) so far
sink_count() {
	local n
	n=$(tail -c 200 "$1/sink.out" 2>/dev/null | tr '\r' '\n' |
		grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2)
	echo "${n:-0}"
}

# ---- load ----------------------------------------------------------------

# run_source PORT SESSIONS COUNT SIZE RCPT -> sets SRC_SECS (wall time), SRC_RC
# smtp-source is bounded by BENCH_SOURCE_TIMEOUT (default 600s).
run_source() {
	local port=$1 sessions=$2 count=$3 size=$4 rcpt=$5 t0 t1
	t0=$(now)
	set +e
	# BENCH_SOURCE_FILE: a whole message to send instead (smtp-source -F); BENCH_SENDER: its MAIL FROM
	timeout "${BENCH_SOURCE_TIMEOUT:-600}" smtp-source -s "$sessions" -m "$count" \
		$([ -n "${BENCH_SOURCE_FILE:-}" ] && echo "-F $BENCH_SOURCE_FILE" || echo "-l $size") \
		-f "${BENCH_SENDER:-sender@bench.test}" -t "$rcpt" 127.0.0.1:"$port" \
		>"$BENCH_TMP/source.out" 2>&1
	SRC_RC=$?
	set -e
	t1=$(now)
	SRC_SECS=$(elapsed "$t0" "$t1")
	if [ "$SRC_RC" != 0 ]; then
		log "smtp-source exited $SRC_RC after ${SRC_SECS}s$([ "$SRC_RC" = 124 ] && echo ' (timeout)'):"
		tail -5 "$BENCH_TMP/source.out" >&2
	fi
	return 0
}

# wait_count FUNC ARG TARGET TIMEOUT STALL: polls `FUNC ARG` until it reaches
# TARGET. Gives up after TIMEOUT seconds in all, or after STALL seconds
# without progress. Sets WAIT_N (last count) and WAIT_T (now() when last
# count was first seen).
wait_count() {
	local fn=$1 arg=$2 target=$3 tmo=$4 stall=$5
	local start last_change n t
	start=$(now)
	WAIT_N=$("$fn" "$arg")
	WAIT_T=$(now)
	last_change=$WAIT_T
	while [ "$WAIT_N" -lt "$target" ]; do
		sleep 0.1
		n=$("$fn" "$arg")
		t=$(now)
		if [ "$n" != "$WAIT_N" ]; then
			WAIT_N=$n
			WAIT_T=$t
			last_change=$t
		fi
		awk -v a="$start" -v b="$t" -v m="$tmo" 'BEGIN { exit !(b - a > m) }' && break
		awk -v a="$last_change" -v b="$t" -v m="$stall" 'BEGIN { exit !(b - a > m) }' && break
	done
	return 0
}

size_label() {
	awk -v b="$1" 'BEGIN { if (b >= 1024 && b % 1024 == 0) printf "%dKiB", b / 1024; else printf "%dB", b }'
}

# ---- end-to-end (delivery) benchmarks: bench/local, bench/relay ----------

# e2e_run NAME PORT SESSIONS COUNT SIZE RCPT COUNTFN COUNTARG
# Starts the clock, runs smtp-source, then waits until COUNTFN COUNTARG has
# grown by COUNT (bounded: BENCH_DELIVER_TIMEOUT total, default 600s, and
# BENCH_STALL seconds without progress, default 20s). Sets:
#   E2E_ACC   acceptance msgs/s (smtp-source wall time)
#   E2E_RATE  end-to-end msgs/s (start to last delivery), or "-" if incomplete
#   E2E_DONE  messages delivered in this run
E2E_ACC="-" E2E_RATE="-" E2E_DONE=0
e2e_run() {
	local name=$1 port=$2 s=$3 count=$4 size=$5 rcpt=$6 fn=$7 arg=$8
	local base t0 secs
	base=$("$fn" "$arg")
	t0=$(now)
	run_source "$port" "$s" "$count" "$size" "$rcpt"
	E2E_ACC=$(rate "$count" "$SRC_SECS")
	wait_count "$fn" "$arg" $((base + count)) "${BENCH_DELIVER_TIMEOUT:-600}" "${BENCH_STALL:-20}"
	E2E_DONE=$((WAIT_N - base))
	secs=$(elapsed "$t0" "$WAIT_T")
	if [ "$E2E_DONE" -ge "$count" ]; then
		E2E_RATE=$(rate "$count" "$secs")
		log "$name: accepted in ${SRC_SECS}s ($E2E_ACC msgs/s); all $count delivered after ${secs}s: $E2E_RATE msgs/s"
	else
		E2E_RATE="-"
		log "$name: accepted in ${SRC_SECS}s ($E2E_ACC msgs/s, smtp-source rc=$SRC_RC); only $E2E_DONE of $count delivered (gave up: no progress for ${BENCH_STALL:-20}s or ${BENCH_DELIVER_TIMEOUT:-600}s in all)"
	fi
}

# e2e_print_table TITLE: prints E2E_RESULTS rows
# (size sessions ms_e2e pf_e2e ratio ms_accept pf_accept)
e2e_print_table() {
	echo
	echo "$1"
	printf '%-8s %8s %14s %14s %8s %12s %12s\n' size sessions "mailserver" "postfix" ratio "ms accept" "pf accept"
	local r
	for r in "${E2E_RESULTS[@]}"; do
		# shellcheck disable=SC2086
		printf '%-8s %8s %14s %14s %8s %12s %12s\n' $r
	done
	echo "(mailserver/postfix: end-to-end msgs/s from smtp-source start until the last"
	echo " message was delivered; accept: msgs/s while smtp-source ran)"
	if [ ${#E2E_NOTES[@]} -gt 0 ]; then
		echo "notes:"
		for r in "${E2E_NOTES[@]}"; do echo "  $r"; done
	fi
}

# e2e_bench TITLE MS_RCPT MS_COUNTFN MS_COUNTARG PF_RCPT PF_COUNTFN PF_COUNTARG
# The loop shared by bench/local and bench/relay. Needs MS_DIR MS_PORT
# PF_DIR PF_PORT COUNT SESSIONS SIZES ONLY set and the servers started.
E2E_RESULTS=()
E2E_NOTES=()
e2e_bench() {
	local title=$1 ms_rcpt=$2 ms_fn=$3 ms_arg=$4 pf_rcpt=$5 pf_fn=$6 pf_arg=$7
	local size s ms_e2e ms_acc pf_e2e pf_acc ms_works=1
	for size in $SIZES; do
		for s in $SESSIONS; do
			ms_e2e="-" ms_acc="-" pf_e2e="-" pf_acc="-"
			if [ "$ONLY" != postfix ]; then
				if [ "$ms_works" = 1 ]; then
					ms_reset "$MS_DIR" "$MS_PORT"
					log "mailserver: $COUNT x $(size_label "$size"), $s sessions"
					e2e_run mailserver "$MS_PORT" "$s" "$COUNT" "$size" "$ms_rcpt" "$ms_fn" "$ms_arg"
					ms_acc=$E2E_ACC
					if [ "$E2E_DONE" = 0 ]; then
						ms_works=0
						ms_e2e="none"
						echo "mailserver: no delivery (not built yet)"
						E2E_NOTES+=("mailserver: no delivery (not built yet): nothing delivered within ${BENCH_STALL:-20}s after acceptance; queue received=$(ms_received "$MS_DIR"); later runs skip mailserver")
					elif [ "$E2E_RATE" = "-" ]; then
						ms_e2e="partial"
						E2E_NOTES+=("mailserver $(size_label "$size")/$s: only $E2E_DONE of $COUNT delivered")
					else
						ms_e2e=$E2E_RATE
					fi
				else
					ms_e2e="none"
				fi
			fi
			if [ "$ONLY" != mailserver ]; then
				pf_empty "$PF_DIR"
				log "postfix: $COUNT x $(size_label "$size"), $s sessions"
				e2e_run postfix "$PF_PORT" "$s" "$COUNT" "$size" "$pf_rcpt" "$pf_fn" "$pf_arg"
				pf_acc=$E2E_ACC
				if [ "$E2E_RATE" = "-" ]; then
					pf_e2e="partial"
					E2E_NOTES+=("postfix $(size_label "$size")/$s: only $E2E_DONE of $COUNT delivered; queue still holds $(pf_queued "$PF_DIR")")
				else
					pf_e2e=$E2E_RATE
				fi
				pf_empty "$PF_DIR"
			fi
			E2E_RESULTS+=("$(size_label "$size") $s $ms_e2e $pf_e2e $(ratio "$ms_e2e" "$pf_e2e") $ms_acc $pf_acc")
		done
	done
	e2e_print_table "$title"
}

# disk_probe: one line about the disk under BENCH_TMP (absolute figures
# drift; printed so that a table can be read against the disk of the day).
disk_probe() {
	python3 - "$BENCH_TMP" <<'PY' || true
import os, sys, time
d = os.path.join(sys.argv[1], "diskprobe"); os.mkdir(d)
t = time.time(); n = 0
while time.time() - t < 1:
    p = f"{d}/f{n}"; fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, b"x" * 1500); os.fsync(fd); os.close(fd); os.rename(p, p + "r"); n += 1
a = n / (time.time() - t)
fd = os.open(f"{d}/app", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
t = time.time(); n = 0
while time.time() - t < 1:
    os.write(fd, b"x" * 4096); os.fsync(fd); n += 1
b = n / (time.time() - t)
os.close(fd)
for f in os.listdir(d): os.unlink(os.path.join(d, f))
os.rmdir(d)
print(f"disk: {a:.0f} new files fsynced/s, {b:.0f} appends fsynced/s (one thread); load average: {open('/proc/loadavg').read().split()[0]}")
PY
}
