/*
 * milter_proto: the wire format of the Sendmail/Postfix mail filter
 * protocol, version 6, apart from any socket so that it can be unit-tested
 * byte by byte and fuzzed: command and reply codes, the strict packet
 * decoder, the typed decoding of every reply a filter may send, the
 * option negotiation packet, the packet encoders, and the sanity check of
 * a custom SMTP reply (SMFIR_REPLYCODE).
 *
 * A packet is a 4-byte big-endian length (command byte plus data), the
 * command byte, then the data. Strings are NUL-terminated; integers are
 * 4 bytes big-endian (2 for the port in SMFIC_CONNECT).
 *
 * Errors: functions return a status and a static reason; nothing aborts on
 * bad input, nothing is logged. Out of memory aborts (lib/util.h).
 * Threads: reentrant; a struct belongs to one thread at a time.
 */
#ifndef FILTER_MILTER_PROTO_H
#define FILTER_MILTER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "filter/reply.h"
#include "lib/buf.h"

#define MILTER_PROTO_VERSION	6

/* The largest packet data a filter may send: libmilter sends at most 1 MiB
 * even when it negotiated its largest buffers (SMFIP_MDS_1M), which we
 * never offer. A length field above this is garbage, not a big packet. */
#define MILTER_PACKET_MAX	(1024 * 1024)
/* Body chunks we send (libmilter's default buffer). */
#define MILTER_CHUNK_MAX	65535
/* Room an encoder buffer needs for any packet we send. */
#define MILTER_ENCODE_MAX	(MILTER_CHUNK_MAX + 64 * 1024)

/* Commands from the MTA to the filter. */
#define SMFIC_ABORT	'A'
#define SMFIC_BODY	'B'
#define SMFIC_CONNECT	'C'
#define SMFIC_MACRO	'D'
#define SMFIC_BODYEOB	'E'
#define SMFIC_HELO	'H'
#define SMFIC_QUIT_NC	'K'
#define SMFIC_HEADER	'L'
#define SMFIC_MAIL	'M'
#define SMFIC_EOH	'N'
#define SMFIC_OPTNEG	'O'
#define SMFIC_QUIT	'Q'
#define SMFIC_RCPT	'R'
#define SMFIC_DATA	'T'
#define SMFIC_UNKNOWN	'U'

/* Replies from the filter. */
#define SMFIR_ADDRCPT	'+'
#define SMFIR_DELRCPT	'-'
#define SMFIR_ADDRCPT_PAR '2'
#define SMFIR_SHUTDOWN	'4'
#define SMFIR_ACCEPT	'a'
#define SMFIR_REPLBODY	'b'
#define SMFIR_CONTINUE	'c'
#define SMFIR_DISCARD	'd'
#define SMFIR_CHGFROM	'e'
#define SMFIR_CONN_FAIL	'f'
#define SMFIR_ADDHEADER	'h'
#define SMFIR_INSHEADER	'i'
#define SMFIR_SETSYMLIST 'l'
#define SMFIR_CHGHEADER	'm'
#define SMFIR_PROGRESS	'p'
#define SMFIR_QUARANTINE 'q'
#define SMFIR_REJECT	'r'
#define SMFIR_SKIP	's'
#define SMFIR_TEMPFAIL	't'
#define SMFIR_REPLYCODE	'y'

/* Actions a filter may ask for (SMFIC_OPTNEG, second word). */
#define SMFIF_ADDHDRS	0x001u
#define SMFIF_CHGBODY	0x002u
#define SMFIF_ADDRCPT	0x004u
#define SMFIF_DELRCPT	0x008u
#define SMFIF_CHGHDRS	0x010u
#define SMFIF_QUARANTINE 0x020u
#define SMFIF_CHGFROM	0x040u
#define SMFIF_ADDRCPT_PAR 0x080u
#define SMFIF_SETSYMLIST 0x100u
#define MILTER_ACTIONS_ALL 0x1ffu

/* Protocol steps (SMFIC_OPTNEG, third word): steps not to send, replies
 * the filter will not send, and extras. */
#define SMFIP_NOCONNECT	0x000001u
#define SMFIP_NOHELO	0x000002u
#define SMFIP_NOMAIL	0x000004u
#define SMFIP_NORCPT	0x000008u
#define SMFIP_NOBODY	0x000010u
#define SMFIP_NOHDRS	0x000020u
#define SMFIP_NOEOH	0x000040u
#define SMFIP_NR_HDR	0x000080u
#define SMFIP_NOUNKNOWN	0x000100u
#define SMFIP_NODATA	0x000200u
#define SMFIP_SKIP	0x000400u
#define SMFIP_RCPT_REJ	0x000800u
#define SMFIP_NR_CONN	0x001000u
#define SMFIP_NR_HELO	0x002000u
#define SMFIP_NR_MAIL	0x004000u
#define SMFIP_NR_RCPT	0x008000u
#define SMFIP_NR_DATA	0x010000u
#define SMFIP_NR_UNKN	0x020000u
#define SMFIP_NR_EOH	0x040000u
#define SMFIP_NR_BODY	0x080000u
#define SMFIP_HDR_LEADSPC 0x100000u
#define MILTER_STEPS_ALL 0x1fffffu

/* Address families in SMFIC_CONNECT. */
#define SMFIA_UNKNOWN	'U'
#define SMFIA_UNIX	'L'
#define SMFIA_INET	'4'
#define SMFIA_INET6	'6'

/* Macro stages (SMFIC_OPTNEG's macro lists, SMFIM_*). */
enum milter_stage {
	MILTER_STAGE_CONNECT = 0,
	MILTER_STAGE_HELO = 1,
	MILTER_STAGE_MAIL = 2,
	MILTER_STAGE_RCPT = 3,
	MILTER_STAGE_DATA = 4,
	MILTER_STAGE_EOM = 5,
	MILTER_STAGE_EOH = 6,
	MILTER_STAGES = 7
};

/* ---- decoding ---- */

enum milter_decode_rc {
	MILTER_DECODE_DONE = 0,	/* one packet: *p points into the input */
	MILTER_DECODE_MORE,	/* need more bytes; nothing consumed */
	MILTER_DECODE_ERROR,	/* the length field is 0 or above
				 * MILTER_PACKET_MAX + 1: not the protocol */
};

struct milter_packet {
	unsigned char cmd;
	const unsigned char *data;	/* len bytes, inside the input */
	size_t len;
};

/*
 * Takes the first packet from in[0..len-1]. On DONE, *used_r is the bytes
 * it took (the caller drops them); p->data points into in. The decision on
 * a bad length is made from the first 4 bytes alone, so a hostile length
 * never makes the caller buffer more than MILTER_PACKET_MAX + 5 bytes.
 */
int milter_packet_decode(const unsigned char *in, size_t len, size_t *used_r,
    struct milter_packet *p, const char **why_r);

/* A filter's reply, typed. Strings point into the packet (NUL-terminated
 * there); the packet's bytes must outlive the reply. */
struct milter_reply {
	unsigned char cmd;	/* SMFIR_* */
	uint32_t index;		/* SMFIR_INSHEADER, SMFIR_CHGHEADER */
	const char *s1;		/* header name, address, reply or reason */
	const char *s2;		/* header value, ESMTP args (NULL: none) */
	const unsigned char *body;	/* SMFIR_REPLBODY */
	size_t body_len;
};

/*
 * Checks that p is a reply a filter may send (one of the SMFIR_* above
 * except SMFIR_SETSYMLIST and SMFIR_CONN_FAIL) with exactly the data its
 * type has: none for accept/continue/discard/progress/reject/skip/tempfail/
 * shutdown; one string for replycode, quarantine, addrcpt, delrcpt; one or
 * two for chgfrom and addrcpt_par; index and two strings for insheader and
 * chgheader; two for addheader; any bytes for replbody. A string must end
 * inside the packet and hold no NUL; nothing may follow the last one.
 * Returns 0, or -1 with a static reason.
 */
int milter_reply_decode(const struct milter_packet *p, struct milter_reply *r,
    const char **why_r);

/* The filter's answer to SMFIC_OPTNEG. */
struct milter_optneg {
	uint32_t version;
	uint32_t actions;	/* SMFIF_* it wants */
	uint32_t steps;		/* SMFIP_* */
	/* Macro names it wants per stage ("{a} {b} i"), pointing into the
	 * packet; NULL when it named none for that stage. */
	const char *macros[MILTER_STAGES];
};

/* Decodes an SMFIC_OPTNEG reply: 12 bytes, then pairs of a stage number
 * and a string of macro names (unknown stage numbers are skipped). Returns
 * 0, or -1 with a static reason (wrong command, short, a pair cut off). */
int milter_optneg_decode(const struct milter_packet *p, struct milter_optneg *o,
    const char **why_r);

/* ---- encoding: each appends one whole packet to out, or returns -1 (out
 * unchanged) when out's maximum would be passed. ---- */

/* A command with no data (SMFIC_DATA, SMFIC_EOH, SMFIC_BODYEOB,
 * SMFIC_ABORT, SMFIC_QUIT). */
int milter_encode_simple(struct buf *out, unsigned char cmd);
int milter_encode_optneg(struct buf *out, uint32_t version, uint32_t actions,
    uint32_t steps);
/* SMFIC_MACRO for the command stage_cmd: n pairs of names[i], values[i]. */
int milter_encode_macros(struct buf *out, unsigned char stage_cmd,
    const char *const *names, const char *const *values, size_t n);
/* SMFIC_CONNECT: host, then family (SMFIA_*), and unless SMFIA_UNKNOWN the
 * port (host order here) and address text. */
int milter_encode_connect(struct buf *out, const char *host, char family,
    uint16_t port, const char *addr);
/* One string: SMFIC_HELO, SMFIC_UNKNOWN. */
int milter_encode_string(struct buf *out, unsigned char cmd, const char *s);
/* SMFIC_MAIL, SMFIC_RCPT: the address in angle brackets, then each ESMTP
 * parameter (argv ends with NULL; may be NULL). */
int milter_encode_argv(struct buf *out, unsigned char cmd,
    const char *const *argv);
/* SMFIC_HEADER: name and value. */
int milter_encode_header(struct buf *out, const char *name, const char *value);
/* SMFIC_BODY: len (<= MILTER_CHUNK_MAX) bytes. */
int milter_encode_body(struct buf *out, const void *data, size_t len);

/* The name of a command or reply code for logs ("SMFIR_ADDHEADER"); a
 * static string, "unknown" for others. */
const char *milter_cmd_name(unsigned char cmd, int from_filter);

#endif
