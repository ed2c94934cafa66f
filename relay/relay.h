/*
 * relay: the outbound SMTP client (RFC 5321), used by the delivery
 * threads to hand one message to the MX hosts of one destination domain,
 * or to a fixed host (routes, relayhost).
 *
 * What one relay_deliver call does:
 *  - finds the addresses to try: the MX targets of the domain (dns/,
 *    at most max_addrs, best first), or the A/AAAA addresses of a fixed
 *    host (no MX lookup). A permanent DNS failure bounces (5.1.10 null MX,
 *    5.1.2 no such domain); a temporary one defers. An MX host is this
 *    server itself when its name is helo_name or one of its addresses is
 *    an address this server listens on at smtp_port (settings.self), by
 *    name also when that name has no address: then only MX hosts of a
 *    better preference are tried, and with none that has an address the
 *    mail bounces (5.4.6, it would loop back to us; RFC 5321 5.1), or
 *    defers (4.4.3) when a better host's address lookup failed for now. An
 *    address of a fixed host (an address literal, a route, the
 *    relayhost) that is ours at its port is never tried either; when
 *    every address is, the mail bounces the same way.
 *  - tries them in order. It moves on to the next address after a refused
 *    or timed-out connection, a 4xx/5xx greeting, a 4xx/5xx to EHLO and
 *    HELO, a 4xx to MAIL FROM, a 421 at any point (the server is closing:
 *    recipients it took in this transaction go to the next host too), a
 *    lost connection or timeout before the message body was sent, or a TLS
 *    failure. A server that lacks what the message needs (SMTPUTF8, a SIZE
 *    big enough) is skipped too: the message bounces for it (5.6.7, 5.3.4)
 *    only when every address tried lacked it. Recipients still pending
 *    when no address is left are deferred with the last error.
 *  - the whole call is bounded by attempt_timeout_ms, over all addresses:
 *    every wait is cut to the time left, and no address is tried after it.
 *  - the TLS policy of the destination (relay/tls_policy.h), once its
 *    hosts are known: per MX host (or the fixed host) a level, from the
 *    tls_policy context of the settings (tls_policy map, DANE, MTA-STS,
 *    verify), or from tls_outbound alone when there is no context. A
 *    destination the policy defers (a bogus MX RRset) is tried nowhere
 *    (4.7.5); a host it skips (MTA-STS enforce and a host outside the
 *    policy, a bogus TLSA answer, dane-only without DANE) is not
 *    connected to, and when every host is skipped the recipients are
 *    deferred (4.7.5). Every result is recorded for TLS reports (RFC
 *    8460) when the context has a store.
 *  - EHLO (HELO when EHLO gets a 5xx), then STARTTLS per the host's level:
 *      none: never;
 *      may: when offered. A STARTTLS command refused by the server
 *        continues in plaintext on the same connection; a failed
 *        handshake is retried once in plaintext on a new connection to
 *        the same address (Postfix's "may"). MTA-STS testing is may.
 *      encrypt, and every level that authenticates (dane, verify,
 *        MTA-STS enforce): STARTTLS not offered, refused, or a failed
 *        handshake skips the host: nothing of the message is ever sent
 *        in plaintext; with no host left the recipients are deferred
 *        (4.7.4 not offered, 4.7.5 handshake failed).
 *    The server name (SNI) is the host name. Right after the handshake,
 *    before EHLO is sent again, the session is judged by the host policy
 *    (tls_policy_check_session): a session that fails it (a certificate
 *    that matches no TLSA record, does not verify, or names another
 *    host) gets QUIT and the next host is tried (4.7.5). Each TLS
 *    connection is logged at info level as Postfix does ("Verified TLS
 *    connection established to HOST[ADDR]:PORT: TLSv1.3 with cipher ...
 *    (dane)"), and each result says what protected it (tls). Whatever
 *    was received before the handshake is thrown away and EHLO is sent
 *    again: only the capabilities given over TLS count (no response
 *    injection).
 *  - REQUIRETLS (RFC 8689), for msg->requiretls (a notice about such a
 *    message too, with the null path): only a host whose policy authenticates it (DANE,
 *    MTA-STS enforce, verify) is tried, only over a verified session, and
 *    only when it offers REQUIRETLS over TLS; MAIL FROM then carries
 *    REQUIRETLS. A host that cannot authenticate is lacking (5.7.10), one
 *    without REQUIRETLS too (5.7.30): when every host tried lacked it,
 *    the message bounces; failures that may pass (a certificate that does
 *    not verify, a lost connection) defer. A message whose header has
 *    `TLS-Required: No` (RFC 8689 5) goes with every host at may
 *    (tls_dest_policy_relax), and its results are not reported; the
 *    field does not count under REQUIRETLS.
 *  - one transaction for all recipients: MAIL FROM with SIZE=n (SIZE
 *    offered), BODY=8BITMIME (8BITMIME offered and msg->eightbit),
 *    SMTPUTF8 (offered, and msg->smtputf8 or needed), RET= and ENVID= (DSN
 *    offered); RCPT TO with NOTIFY= and ORCPT= (DSN offered); DATA. With
 *    PIPELINING (RFC 2920) MAIL, the RCPTs and DATA go out as one group
 *    (groups of at most 100 commands for very many recipients) and the
 *    replies are read in order. A message larger than the server's SIZE is
 *    not offered to it. SMTPUTF8 is needed (RFC 6531 3.4) when the sender
 *    or a recipient is not ASCII, or msg->smtputf8 is set and the header
 *    section holds a non-ASCII byte; a message that was given SMTPUTF8 but
 *    needs none of it goes to a server without SMTPUTF8 as plain mail. A
 *    msg->eightbit message to a server without 8BITMIME is sent anyway,
 *    without BODY= (as Postfix does; most servers take 8-bit data).
 *  - per recipient: 2xx at RCPT goes on to DATA, 4xx defers, 5xx bounces,
 *    except 552, which is taken as 452 (RFC 5321 4.5.3.1.10). Recipients
 *    refused with 452 or 552 ("too many recipients") while others were
 *    taken are sent again in a new transaction on the same connection.
 *    After the data: 2xx -> every accepted recipient SENT; 4xx, a lost
 *    connection or a timeout -> DEFERRED; 5xx -> BOUNCED. A 4xx or 5xx to
 *    DATA itself defers or bounces the accepted recipients. No accepted
 *    recipient: no DATA is sent (with pipelining, a DATA that still got
 *    354 is ended with an empty message and its reply ignored).
 *  - what goes out: commands never contain CR, LF or another control
 *    byte: a sender or recipient with one (or longer than
 *    RELAY_ADDR_MAX) bounces without being sent (5.1.7 sender, 5.1.3
 *    recipient); ORCPT and ENVID are xtext-encoded. The body is sent
 *    with CRLF line ends only (a bare CR or bare LF becomes CRLF),
 *    dot-stuffed, and no line longer than 998 octets: a longer line is
 *    folded by inserting CRLF SPACE in the header (a folded header stays
 *    a header) and CRLF in the body (as Postfix's smtp_line_length_limit).
 *    A body without a final line end gets one before ".".
 *  - replies are parsed defensively (relay/relay_proto.h): at most 100
 *    lines of at most 4096 octets, a 3-digit code 2xx..5xx, the same code
 *    on every line. Anything else is a protocol error: the host is
 *    skipped as for a lost connection.
 *  - timeouts (RFC 5321 4.5.3.2) with poll() on non-blocking sockets:
 *    connect, greeting, each command, DATA initiation, each data block,
 *    final reply; values from relay_settings.
 *  - connections are reused: after a transaction a healthy connection is
 *    kept idle in the context (keyed by destination), and the next
 *    relay_deliver to the same destination sends RSET on it instead of
 *    connecting again. Idle connections are closed after idle_ms, when
 *    more than max_idle are kept, or after 100 transactions.
 *  - at most max_per_destination relay_deliver calls run at once for one
 *    destination (domain, or fixed host and port); a further call waits up
 *    to dest_wait_ms (within attempt_timeout_ms) for a slot, then defers
 *    everything with 4.4.5.
 *
 * Results read like Postfix's: relay "mx1.example.test[127.0.0.2]:25",
 * diag "host mx1.example.test[127.0.0.2] said: 550 5.1.1 <x@y>: Recipient
 * address rejected (in reply to RCPT TO command)" or "connect to
 * mx1.example.test[127.0.0.2]:25: Connection refused". dsn is the reply's
 * enhanced status code when it gave one of the right class, else X.0.0
 * from the reply code, or our own code for local conditions.
 *
 * Errors: relay_deliver never fails as a whole: every outcome is in the
 * results. Out of memory aborts (lib/util.h). Nothing is logged above
 * debug level (the conversation is logged at debug) but the TLS
 * connection line; the caller logs the results.
 * Threads: relay_ctx_new/relay_ctx_free on one thread while no delivery
 * runs. relay_deliver and relay_ctx_expire_idle may run on any number of
 * threads at once on one context.
 */
#ifndef RELAY_RELAY_H
#define RELAY_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/body_reader.h"

struct dns_resolver;
struct tls_policy_ctx;

#define RELAY_ADDR_MAX 512	/* longest sender or recipient sent */

enum relay_tls { RELAY_TLS_NONE = 0, RELAY_TLS_MAY = 1, RELAY_TLS_ENCRYPT = 2 };

/* A listening address of this server (AF_INET or AF_INET6, with port). */
struct relay_self_addr {
	struct sockaddr_storage sa;
	socklen_t salen;
};

/* Tunables. relay_settings_default fills the values in brackets; a 0
 * left in a field also means its default. Times in milliseconds. */
struct relay_settings {
	const char *helo_name;		/* EHLO/HELO name, copied ["localhost"] */
	uint16_t smtp_port;		/* port of MX hosts [25] */
	int tls_outbound;		/* enum relay_tls [RELAY_TLS_MAY]: used
					 * only without tls_policy */
	struct tls_policy_ctx *tls_policy;	/* the outbound TLS policy
					 * (borrowed: it must outlive the
					 * context); NULL: tls_outbound alone,
					 * nothing verified or reported */
	unsigned connect_timeout_ms;	/* TCP connect [30000] */
	unsigned greeting_timeout_ms;	/* 220 greeting [300000] */
	unsigned command_timeout_ms;	/* EHLO, STARTTLS (handshake), MAIL,
					 * RCPT, RSET, QUIT replies [300000] */
	unsigned data_init_timeout_ms;	/* reply to DATA [120000] */
	unsigned data_block_timeout_ms;	/* each block of data written [180000] */
	unsigned data_final_timeout_ms;	/* reply to "." [600000] */
	size_t max_addrs;		/* addresses tried, 1..DNS_MAX_TARGETS [5] */
	unsigned max_per_destination;	/* simultaneous deliveries [20] */
	unsigned dest_wait_ms;		/* wait for a destination slot [10000] */
	unsigned idle_ms;		/* idle connection kept at most [10000] */
	unsigned max_idle;		/* idle connections kept, all
					 * destinations [32]; set
					 * RELAY_NO_REUSE to keep none */
	unsigned attempt_timeout_ms;	/* one relay_deliver call, all its
					 * addresses [1800000] */
	/* Addresses this server listens on (copied): an MX address equal to
	 * one at port smtp_port, or any address of this host when one is the
	 * wildcard (0.0.0.0, ::) at that port, is this server. */
	const struct relay_self_addr *self;
	size_t nself;
};


#define RELAY_NO_REUSE ((unsigned)-1)

/* Fills st with the defaults above. Thread-safe. */
void relay_settings_default(struct relay_settings *st);

/* st = in (NULL: the defaults), with the default in every field left 0. */
void relay_settings_fill(struct relay_settings *st,
    const struct relay_settings *in);

struct relay_ctx;

/*
 * Makes a context: settings (copied; NULL for defaults) and the resolver
 * used for every lookup (borrowed: it must outlive the context; it is only
 * used when a delivery needs DNS, so it may be NULL for tests that give IP
 * literal destinations). Loads the TLS client credentials. Returns NULL
 * with a message in err (errsize > 0) when a setting is out of range or
 * GnuTLS cannot be set up.
 */
struct relay_ctx *relay_ctx_new(const struct relay_settings *st,
    struct dns_resolver *dns, char *err, size_t errsize);

/* Closes every idle connection (with QUIT) and frees the context; sets
 * *ctxp to NULL. NULL is fine. No relay_deliver may run. */
void relay_ctx_free(struct relay_ctx **ctxp);

/* Closes idle connections older than idle_ms. relay_deliver does this
 * itself on each call; a caller may also call it from a timer. */
void relay_ctx_expire_idle(struct relay_ctx *ctx);

/* Idle connections held now (for tests and statistics). */
size_t relay_ctx_idle_count(struct relay_ctx *ctx);

/* DSN NOTIFY (RFC 3461) of one recipient: these bits, 0 = not given. */
enum relay_notify {
	RELAY_NOTIFY_NEVER = 1,
	RELAY_NOTIFY_SUCCESS = 2,
	RELAY_NOTIFY_FAILURE = 4,
	RELAY_NOTIFY_DELAY = 8,
};

/* DSN RET of the message. */
enum relay_ret { RELAY_RET_UNSET = 0, RELAY_RET_FULL = 1, RELAY_RET_HDRS = 2 };

/* One recipient. notify: enum relay_notify bits. orcpt: "type;address"
 * xtext-decoded, or NULL. */
struct relay_rcpt {
	const char *addr;	/* without <> */
	const char *orcpt;
	unsigned notify;
};

/* The message. envid: xtext-decoded ENVID or NULL; body: the reader of
 * the whole message (header and body), CRLF line ends, dot-stuffing
 * undone, read in pieces from its start for each host it goes to (and
 * once for its header section): the message is never whole in memory,
 * and the encoding (line ends, dot-stuffing, folding) keeps its state
 * across pieces. A reader that fails before the data defers every
 * recipient (4.3.0); after it, the connection is dropped without the
 * final "." (nothing half-sent is ever delivered) and they are deferred
 * too. All borrowed for the call. */
struct relay_msg {
	const char *sender;	/* "" for the null path <> */
	int eightbit;		/* received with BODY=8BITMIME */
	int smtputf8;		/* received with SMTPUTF8 */
	int requiretls;		/* received with REQUIRETLS (RFC 8689) */
	enum relay_ret ret;
	const char *envid;
	const struct body_reader *body;	/* its size goes into SIZE= */
};

enum relay_status { RELAY_SENT, RELAY_DEFERRED, RELAY_BOUNCED };

struct relay_result {
	enum relay_status status;
	char dsn[16];		/* "2.0.0", "4.4.1", "5.1.1" */
	char diag[512];		/* reply or local reason, one line, printable */
	char relay[300];	/* "HOST[IP]:PORT", or "none" */
	char tls[200];		/* what protected the session that gave the
				 * result: "Verified TLSv1.3 with cipher ...
				 * (256/256 bits) (dane)", "plaintext (may)";
				 * "" when no session did */
	int dsn_passed;		/* SENT to a server that offered DSN: NOTIFY
				 * and ORCPT went with the recipient, so the
				 * next hop reports on it (RFC 3461 5.2.2) */
};

/*
 * Delivers msg to rcpts[0..n-1] (one destination domain) and fills
 * results[0..n-1] (one per recipient, in the same order).
 *   domain: the recipients' domain; the MX lookup name when dest_host is
 *     NULL, and the concurrency/reuse key otherwise too.
 *   dest_host: NULL for MX delivery, or a fixed host: a name (A/AAAA
 *     lookup, no MX), an IP literal, either possibly in brackets
 *     ("[127.0.0.3]"). dest_port: its port (0 = smtp_port).
 * Blocks for at most attempt_timeout_ms (plus a DNS lookup, bounded by the
 * resolver's own limits).
 * Thread: any; many threads may call it at once on one context.
 */
void relay_deliver(struct relay_ctx *ctx, const char *domain,
    const char *dest_host, uint16_t dest_port, const struct relay_msg *msg,
    const struct relay_rcpt *rcpts, size_t n, struct relay_result *results);

/* "sent", "deferred", "bounced". */
const char *relay_status_str(enum relay_status st);

#endif
