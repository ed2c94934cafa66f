/*
 * control: the daemon's local control socket, <queue_dir>/control (a Unix
 * stream socket, mode 0600: only the daemon's user, and root, may use it),
 * through which mailctl asks what only the running daemon knows or does
 * (mailctl sessions, mailctl tls-report --send). Everything mailctl can learn from the queue it reads there
 * instead.
 *
 * The protocol: the client sends one request line, at most
 * CONTROL_REQUEST_MAX bytes with its LF, within CONTROL_TIMEOUT_MS; the
 * daemon answers with text up to CONTROL_ANSWER_MAX bytes and closes. An
 * unknown or overlong request gets "error: unknown request\n". One client
 * is served at a time, by one thread: the socket is for an administrator,
 * not for load.
 *
 * Errors: control_start fails with a message (path too long, bind error);
 * a client that errs is logged at debug and dropped.
 * Threads: control_start and control_stop on the main thread; the handler
 * runs on the control thread.
 */
#ifndef SERVER_CONTROL_H
#define SERVER_CONTROL_H

#include <stddef.h>
#include <stdio.h>

#define CONTROL_REQUEST_MAX 320	/* "tls-report send", a name, a date */
#define CONTROL_ANSWER_MAX (16u << 20)
#define CONTROL_TIMEOUT_MS 5000
#define CONTROL_SOCKET "control"	/* in queue_dir */

enum control_request {
	CONTROL_BAD = 0,
	CONTROL_SESSIONS,		/* "sessions": a text table */
	CONTROL_SESSIONS_JSON,		/* "sessions json": one JSON document */
	CONTROL_TLS_REPORT_SEND,	/* "tls-report send DOMAIN YYYY-MM-DD":
					 * mail that report (one line back) */
};

#define CONTROL_ARG_MAX 300	/* the argument of a request, with its NUL */

/* The request in p[0..n) (one line, its LF or CRLF included or not).
 * Anything else, a NUL or a second line included, is CONTROL_BAD. */
enum control_request control_parse_request(const char *p, size_t n);

/* The argument of the request in p[0..n) into arg (CONTROL_ARG_MAX
 * bytes): for CONTROL_TLS_REPORT_SEND the two words after "tls-report
 * send " (letters, digits, '.', '-', '_', one space between), else "". */
void control_parse_arg(const char *p, size_t n, char arg[CONTROL_ARG_MAX]);

/* Writes the answer to req (never CONTROL_BAD) with its argument (""
 * for none) to out. */
typedef void control_handler(enum control_request req, const char *reqarg,
    FILE *out, void *arg);

struct control;

/* Binds <queue_dir>/control (a stale socket there is replaced) and starts
 * the thread. NULL with a message in err. */
struct control *control_start(const char *queue_dir, control_handler *fn, void *arg,
    char *err, size_t errsize);

/* Stops the thread (after the client being served, if any), removes the
 * socket and frees *cp (NULL then). */
void control_stop(struct control **cp);

/* mailctl's side: sends req (a request line without its LF) to the
 * daemon of queue_dir and copies the answer to out. Returns 0, or -1 with
 * a message in err (no daemon runs, or it did not answer in time). */
int control_ask(const char *queue_dir, const char *req, FILE *out, char *err,
    size_t errsize);

#endif
