/*
 * log: one line per event, to stderr, a file or syslog.
 *
 * Lines are written with a single write(2) each, so lines from different
 * threads never interleave. A file target is opened in append mode and can
 * be reopened after rotation (SIGUSR2).
 *
 * Errors: a failed write is dropped silently (logging must never stop mail).
 * Threads: every function may be called from any thread.
 */
#ifndef LIB_LOG_H
#define LIB_LOG_H

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* Chooses the target: NULL or "" = stderr, "syslog", or a file path.
 * Returns 0, or -1 with errno when the file cannot be opened (the previous
 * target stays). */
int log_open(const char *target);

/* Reopens the current file target (no-op for stderr and syslog). */
int log_reopen(void);

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parses "debug", "info", "warn", "error"; -1 when unknown. */
int log_level_parse(const char *s);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

#endif
