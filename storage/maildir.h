/*
 * maildir: durable delivery of messages into Maildirs
 * (cr.yp.to/proto/maildir.html).
 *
 * Mail for user@domain goes to <mail_dir>/<domain>/<user>/, whose tmp/,
 * new/ and cur/ (and any missing parent, mail_dir included) are created
 * with mode 0700; files are created with mode 0600. Domain and user are
 * lower-cased (userdb compares both case-insensitively, so one user has one
 * mailbox). A name that is not safe as a single path component (empty,
 * longer than 255 bytes, containing '/', a control character or DEL, or
 * starting with '.') is refused with MAILDIR_PERM.
 *
 * A delivered file holds "Return-Path: <sender>\n", "Delivered-To:
 * <recipient>\n", then the message with every CRLF turned into LF (every
 * other byte, lone CR and 8-bit bytes included, is kept; a CRLF split
 * between two pieces of the reader is one line end). The message is read
 * piece by piece through its body_reader (lib/body_reader.h), from its
 * first byte for each item, so it is never whole in memory. The file is
 * written in tmp/ under a unique name, fsynced, renamed into new/ as
 * NAME,S=<file size>, and new/ is fsynced; only then is the delivery
 * MAILDIR_OK (DESIGN.md durability contract). On any failure no file is
 * left in tmp/ or new/.
 *
 * Error policy: nothing here is fatal and nothing is logged; each message
 * gets a status and a one-line diagnostic for the caller's log and DSN.
 * Threads: every function may be called from any thread at the same time,
 * also for the same Maildir (names are unique within the host).
 */
#ifndef STORAGE_MAILDIR_H
#define STORAGE_MAILDIR_H

#include <stddef.h>

#include "lib/body_reader.h"

enum maildir_status {
	MAILDIR_OK = 0,
	/* May pass later: defer (ENOSPC, EDQUOT, EIO, EMFILE, EACCES, a
	 * regular file where a directory must be (ENOTDIR), a message that
	 * its reader cannot read now, ...). */
	MAILDIR_TEMP = 1,
	/* Will not pass: bad user or domain for a path, a path too long
	 * (ENAMETOOLONG), no mail_dir. Bounce. */
	MAILDIR_PERM = 2,
};

#define MAILDIR_ERROR_MAX 256
#define MAILDIR_NAME_MAX 256

struct maildir_item {
	/* Inputs, owned by the caller, unchanged by delivery. */
	const char *domain;	/* recipient domain (a local domain) */
	const char *user;	/* recipient local part */
	const char *sender;	/* envelope sender, "" for <>; no CR/LF */
	const char *recipient;	/* for Delivered-To; no CR/LF */
	const struct body_reader *body;	/* the message, CRLF line ends,
					 * unstuffed (read from its start;
					 * items may share one) */
	/* Outputs, set by delivery. */
	enum maildir_status status;
	char error[MAILDIR_ERROR_MAX];	/* "" on success, else e.g.
					 * "maildir: write: No space left on device" */
	char name[MAILDIR_NAME_MAX];	/* file name in new/ on success */
};

/*
 * Delivers n items. Each item is written, fsynced and renamed into its
 * new/ on its own; then each distinct new/ directory is fsynced once, and
 * an item is MAILDIR_OK only after its directory's fsync succeeded (on a
 * failure there its file is removed from new/ again and it becomes
 * MAILDIR_TEMP). mail_dir is the Maildir root; hostname (NULL or "" =
 * "localhost") goes into the unique names, with '/', ':', ',', '\' and
 * unprintable bytes escaped as \ooo and cut to 100 bytes.
 * Returns the number of items that are MAILDIR_OK; every item's status,
 * error and name are set. Blocks on disk I/O.
 */
size_t maildir_deliver_batch(const char *mail_dir, const char *hostname,
    struct maildir_item *items, size_t n);

/*
 * One message in memory, body[0..body_len): as maildir_deliver_batch with
 * one item. Returns its status; the diagnostic (or "") goes to
 * err[errsize] when err is not NULL.
 */
enum maildir_status maildir_deliver(const char *mail_dir,
    const char *hostname, const char *domain, const char *user,
    const char *sender, const char *recipient, const char *body,
    size_t body_len, char *err, size_t errsize);

/*
 * Tests only: fault injection (the SQLite fault.c idea). After
 * maildir_fault_set(op, nth, err) the nth following call of op in this
 * process (any thread) fails with errno err, once. For MAILDIR_FAULT_WRITE
 * an err of 0 means a short write of at most one byte instead (the
 * delivery must go on correctly). maildir_fault_clear() disarms all.
 * Never used by the server; costs one atomic load per call when unarmed.
 */
enum maildir_fault_op {
	MAILDIR_FAULT_OPEN,	/* open of the tmp/ file */
	MAILDIR_FAULT_WRITE,	/* each write(2) of file data */
	MAILDIR_FAULT_FSYNC,	/* fsync of the file */
	MAILDIR_FAULT_RENAME,	/* tmp/ -> new/ */
	MAILDIR_FAULT_DIRSYNC,	/* fsync of new/ */
	MAILDIR_FAULT_MKDIR,	/* creating a missing directory */
	MAILDIR_FAULT_NOPS
};
void maildir_fault_set(enum maildir_fault_op op, int nth, int err);
void maildir_fault_clear(void);

#endif
