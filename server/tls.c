/* tls: GnuTLS credentials and non-blocking server sessions. */
#include "server/tls.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/util.h"

struct tls_creds {
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	atomic_int refs;
};

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void
tls_global_init(void)
{
	gnutls_global_init();
}

struct tls_creds *
tls_creds_load(const char *cert_file, const char *key_file, char *err,
    size_t errsize)
{
	struct tls_creds *c;
	int r;

	pthread_once(&tls_once, tls_global_init);
	c = xcalloc(1, sizeof *c);
	if ((r = gnutls_certificate_allocate_credentials(&c->cred)) < 0)
		goto fail;
	r = gnutls_certificate_set_x509_key_file(c->cred, cert_file, key_file,
	    GNUTLS_X509_FMT_PEM);
	if (r < 0)
		goto fail;
	if ((r = gnutls_priority_init(&c->prio, "NORMAL:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1", NULL)) < 0)
		goto fail;
	atomic_init(&c->refs, 1);
	return c;
fail:
	snprintf(err, errsize, "TLS %s / %s: %s", cert_file, key_file,
	    gnutls_strerror(r));
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
	free(c);
}

gnutls_session_t
tls_server_new(struct tls_creds *c, int fd)
{
	gnutls_session_t s;

	if (gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0)
		return NULL;
	if (gnutls_priority_set(s, c->prio) < 0 ||
	    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, c->cred) < 0) {
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
