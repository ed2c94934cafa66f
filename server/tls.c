/* tls: GnuTLS credentials (files read here, so a lack of permission is
 * known as such) and non-blocking server sessions. */
#include "server/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

#define TLS_FILE_MAX (1024 * 1024)	/* a PEM file larger than this is junk */

struct tls_creds {
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	gnutls_datum_t ticket_key;	/* session tickets, made at load */
	atomic_int refs;
};

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void
tls_global_init(void)
{
	gnutls_global_init();
}

/* Reads a whole (small) file; -1 with errno. */
static int
tls_read_file(const char *path, gnutls_datum_t *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	unsigned char *data = NULL;
	size_t len = 0;
	struct stat st;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > TLS_FILE_MAX) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	data = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, data + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	data[len] = '\0';
	out->data = data;
	out->size = (unsigned)len;
	return 0;
}

static void
tls_datum_wipe(gnutls_datum_t *d)
{
	if (d->data) {
		explicit_bzero(d->data, d->size);
		free(d->data);
	}
	d->data = NULL;
	d->size = 0;
}

int
tls_priority_check(const char *priority, char *err, size_t errsize)
{
	gnutls_priority_t p;
	const char *pos = NULL;
	int r;

	pthread_once(&tls_once, tls_global_init);
	if ((r = gnutls_priority_init(&p, priority, &pos)) < 0) {
		snprintf(err, errsize, "%s at '%.20s'", gnutls_strerror(r),
		    pos ? pos : priority);
		return -1;
	}
	gnutls_priority_deinit(p);
	return 0;
}

struct tls_creds *
tls_creds_load(const char *cert_file, const char *key_file, const char *priority,
    int *no_access_r, char *err, size_t errsize)
{
	gnutls_datum_t cert = { NULL, 0 }, key = { NULL, 0 };
	struct tls_creds *c;
	const char *what = cert_file, *pos = NULL;
	int r = 0;

	pthread_once(&tls_once, tls_global_init);
	if (no_access_r)
		*no_access_r = 0;
	if (tls_read_file(cert_file, &cert) == 0) {
		what = key_file;
		if (tls_read_file(key_file, &key) == 0)
			what = NULL;
	}
	if (what != NULL) {
		int e = errno;

		if (no_access_r)
			*no_access_r = e == EACCES || e == EPERM;
		snprintf(err, errsize, "TLS %s: %s", what, strerror(e));
		tls_datum_wipe(&cert);
		return NULL;
	}
	c = xcalloc(1, sizeof *c);
	if ((r = gnutls_certificate_allocate_credentials(&c->cred)) < 0)
		goto fail;
	what = key_file;
	r = gnutls_certificate_set_x509_key_mem2(c->cred, &cert, &key,
	    GNUTLS_X509_FMT_PEM, NULL, 0);
	if (r < 0)
		goto fail;
	what = "tls_priority";
	if ((r = gnutls_priority_init(&c->prio, priority ? priority : TLS_PRIORITY_DEFAULT,
	    &pos)) < 0)
		goto fail;
	what = "session ticket key";
	if ((r = gnutls_session_ticket_key_generate(&c->ticket_key)) < 0)
		goto fail;
	tls_datum_wipe(&cert);
	tls_datum_wipe(&key);
	atomic_init(&c->refs, 1);
	return c;
fail:
	snprintf(err, errsize, "TLS %s / %s: %s: %s", cert_file, key_file, what,
	    gnutls_strerror(r));
	tls_datum_wipe(&cert);
	tls_datum_wipe(&key);
	if (c->prio)
		gnutls_priority_deinit(c->prio);
	if (c->cred)
		gnutls_certificate_free_credentials(c->cred);
	free(c);
	return NULL;
}

struct tls_creds *
tls_creds_ref(struct tls_creds *c)
{
	atomic_fetch_add(&c->refs, 1);
	return c;
}

void
tls_creds_unref(struct tls_creds **cp)
{
	struct tls_creds *c = *cp;

	*cp = NULL;
	if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	gnutls_priority_deinit(c->prio);
	gnutls_certificate_free_credentials(c->cred);
	if (c->ticket_key.data) {
		explicit_bzero(c->ticket_key.data, c->ticket_key.size);
		gnutls_free(c->ticket_key.data);
	}
	free(c);
}

gnutls_session_t
tls_server_new(struct tls_creds *c, int fd)
{
	gnutls_session_t s;

	if (gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0)
		return NULL;
	if (gnutls_priority_set(s, c->prio) < 0 ||
	    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, c->cred) < 0 ||
	    gnutls_session_ticket_enable_server(s, &c->ticket_key) < 0) {
		gnutls_deinit(s);
		return NULL;
	}
	gnutls_certificate_server_set_request(s, GNUTLS_CERT_IGNORE);
	gnutls_transport_set_int(s, fd);
	gnutls_handshake_set_timeout(s, 0);
	return s;
}

int
tls_handshake(gnutls_session_t s)
{
	int r = gnutls_handshake(s);

	if (r == GNUTLS_E_INTERRUPTED)
		r = GNUTLS_E_AGAIN;
	if (r < 0 && r != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(r))
		r = GNUTLS_E_AGAIN;
	return r;
}

int
tls_wants_write(gnutls_session_t s)
{
	return gnutls_record_get_direction(s) == 1;
}

void
tls_describe(gnutls_session_t s, char *out, size_t outsize)
{
	gnutls_cipher_algorithm_t cipher = gnutls_cipher_get(s);
	size_t bits = gnutls_cipher_get_key_size(cipher) * 8;
	const char *suite = gnutls_ciphersuite_get(s);

	snprintf(out, outsize, "%s with cipher %s (%zu/%zu bits)",
	    gnutls_protocol_get_name(gnutls_protocol_get_version(s)),
	    suite ? suite : gnutls_cipher_get_name(cipher), bits, bits);
}
