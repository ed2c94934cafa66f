/* sdnotify: the sd_notify datagram protocol over AF_UNIX (see sdnotify.h). */
#include "server/sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SDNOTIFY_MESSAGE_MAX 512

int
sdnotify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len, slen = strlen(state);
	socklen_t salen;
	ssize_t sent;
	int fd, saved;

	if (path == NULL || path[0] == '\0')
		return 0;
	len = strlen(path);
	/* An absolute path, or '@' for the abstract namespace (a NUL). */
	if ((path[0] != '/' && path[0] != '@') || len < 2 || len >= sizeof sun.sun_path) {
		errno = EINVAL;
		return -1;
	}
	memcpy(sun.sun_path, path, len);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
	    (path[0] == '/' ? 1 : 0));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	sent = sendto(fd, state, slen, MSG_NOSIGNAL, (struct sockaddr *)&sun, salen);
	saved = errno;
	close(fd);
	errno = saved;
	return sent == (ssize_t)slen ? 1 : -1;
}

/* "KEY=" and text made one line of at most SDNOTIFY_STATUS_MAX bytes. */
static void
sdnotify_line(char *out, size_t outsize, const char *key, const char *text)
{
	size_t o = (size_t)snprintf(out, outsize, "%s=", key);

	for (size_t i = 0; text[i] != '\0' && i < SDNOTIFY_STATUS_MAX && o + 2 < outsize; i++)
		out[o++] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? ' ' : text[i];
	out[o++] = '\n';
	out[o] = '\0';
}

static int
sdnotify_with_status(const char *first, const char *status)
{
	char msg[SDNOTIFY_MESSAGE_MAX];
	size_t n = (size_t)snprintf(msg, sizeof msg, "%s\n", first);

	if (status != NULL)
		sdnotify_line(msg + n, sizeof msg - n, "STATUS", status);
	return sdnotify_send(msg);
}

int
sdnotify_ready(const char *status)
{
	return sdnotify_with_status("READY=1", status);
}

int
sdnotify_stopping(const char *status)
{
	return sdnotify_with_status("STOPPING=1", status);
}

int
sdnotify_reloading(void)
{
	struct timespec ts;
	char msg[64];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu\n",
	    (unsigned long long)ts.tv_sec * 1000000ull +
	    (unsigned long long)ts.tv_nsec / 1000ull);
	return sdnotify_send(msg);
}

int
sdnotify_status(const char *fmt, ...)
{
	char text[SDNOTIFY_STATUS_MAX + 1], msg[SDNOTIFY_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	sdnotify_line(msg, sizeof msg, "STATUS", text);
	return sdnotify_send(msg);
}
