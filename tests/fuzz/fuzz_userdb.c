/*
 * Fuzz target for storage/userdb: the input is written to a memfd and
 * loaded through /proc/self/fd/N as a users file, as an aliases file and
 * as both; when it loads, the text before the first ':' of each of the
 * first lines is looked up and expanded. Password checks are left out:
 * crypt cost is set by the (fuzzed) hash and would only measure crypt.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "storage/userdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
fuzz_is_local(const char *domain, void *arg)
{
	(void)arg;
	return strcasecmp(domain, "x") == 0 ||
	    strcasecmp(domain, "localhost") == 0;
}

static void
fuzz_use(const struct userdb *db, const uint8_t *data, size_t size)
{
	size_t pos = 0;

	(void)userdb_has_users(db);
	for (int line = 0; line < 16 && pos < size; line++) {
		char addr[512];
		size_t n = 0;
		char **list = NULL;
		int count;

		while (pos < size && data[pos] != '\n' && data[pos] != ':' &&
		    n < sizeof addr - 1)
			addr[n++] = (char)data[pos++];
		addr[n] = '\0';
		while (pos < size && data[pos++] != '\n')
			;
		(void)userdb_lookup(db, addr);
		count = userdb_expand(db, addr, fuzz_is_local, NULL, &list);
		if (count >= 0)
			userdb_list_free(list, count);
		count = userdb_expand(db, addr, NULL, NULL, &list);
		if (count >= 0)
			userdb_list_free(list, count);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	FILE *errs;
	struct userdb *db;
	int fd;

	if (size > 1 << 20)
		return 0;
	fd = memfd_create("fuzz_userdb", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (size > 0 && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	if (snprintf(path, sizeof path, "/proc/self/fd/%d", fd) >=
	    (int)sizeof path) {
		close(fd);
		return 0;
	}
	errs = fopen("/dev/null", "we");

	db = userdb_load(path, NULL, errs);
	if (db != NULL)
		fuzz_use(db, data, size);
	userdb_free(&db);

	db = userdb_load(NULL, path, errs);
	if (db != NULL)
		fuzz_use(db, data, size);
	userdb_free(&db);

	db = userdb_load(path, path, errs);
	if (db != NULL)
		fuzz_use(db, data, size);
	userdb_free(&db);

	if (errs != NULL)
		fclose(errs);
	close(fd);
	return 0;
}
