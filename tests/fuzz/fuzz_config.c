/*
 * fuzz_config: feeds arbitrary bytes to config_load as a config file (held
 * in a memfd and opened as /proc/self/fd/N) and, when they load, to the
 * lookups. Diagnostics go to a memory stream so their formatting is
 * exercised too. Corpus: tests/fuzz/corpus/config/.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "server/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_lookups(const struct config *cfg)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };

	sin6.sin6_addr.s6_addr[15] = 1;
	(void)config_is_local_domain(cfg, "localhost.");
	(void)config_is_relay_domain(cfg, "Example.ORG");
	(void)config_route_for(cfg, "example.com");
	(void)config_client_may_relay(cfg, (const struct sockaddr *)&sin);
	(void)config_client_may_relay(cfg, (const struct sockaddr *)&sin6);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], *errs = NULL;
	size_t errlen = 0, off = 0;
	struct config *cfg;
	FILE *f;
	int fd, n;

	fd = memfd_create("fuzz_config", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);
		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	n = snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	if (n < 0 || (size_t)n >= sizeof path)
		abort();
	f = open_memstream(&errs, &errlen);
	if (f == NULL)
		abort();
	cfg = config_load(path, f);
	fclose(f);
	/* a load either succeeds silently or fails saying why */
	if ((cfg != NULL) != (errlen == 0))
		abort();
	if (cfg != NULL) {
		fuzz_lookups(cfg);
		config_unref(&cfg);
	}
	free(errs);
	close(fd);
	return 0;
}
