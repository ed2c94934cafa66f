/*
 * maildir: writes messages into Maildirs durably (contract in
 * storage/maildir.h): CRLF -> LF into an unnamed O_TMPFILE file in new/,
 * fsync, then linkat gives it its unique name there, so it appears whole
 * and at once; where the file system lacks O_TMPFILE, the classic way: a
 * tmp/ file with the unique name, fsync, rename into new/. Then one fsync
 * per distinct new/ directory per batch.
 *
 * Unique names: SEC.MUSECPPIDQCOUNTERRRANDOM.HOST, the Maildir spec's
 * modern form; COUNTER is a process-wide atomic, so two threads never make
 * the same name, and RANDOM guards against pid reuse within a microsecond.
 * linkat never replaces an existing file, nor does the rename where the
 * file system can say so (renameat2 RENAME_NOREPLACE), so even a
 * collision loses nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"
#include "storage/maildir.h"

#define MD_COMPONENT_MAX 255	/* NAME_MAX */
#define MD_ADDRESS_MAX 2048	/* sender, recipient in the prefix headers */
#define MD_HOST_MAX 100		/* escaped hostname in file names */
#define MD_CHUNK (64 * 1024)	/* write(2) size */

/* Fault injection state (tests only). Atomics, not a lock: the hot path
 * pays one relaxed load. */
static atomic_int md_fault_countdown[MAILDIR_FAULT_NOPS];
static atomic_int md_fault_errno[MAILDIR_FAULT_NOPS];
/* Deliveries by this process: the Q part of unique names. */
static atomic_ulong md_counter;

void
maildir_fault_set(enum maildir_fault_op op, int nth, int err)
{
	if ((int)op < 0 || op >= MAILDIR_FAULT_NOPS)
		return;
	atomic_store(&md_fault_errno[op], err);
	atomic_store(&md_fault_countdown[op], nth > 0 ? nth : 0);
}

void
maildir_fault_clear(void)
{
	for (int i = 0; i < MAILDIR_FAULT_NOPS; i++)
		atomic_store(&md_fault_countdown[i], 0);
}

/* 1 when this call of op must fail; errno is then set to the fault's. */
static int
md_fault(enum maildir_fault_op op)
{
	if (atomic_load_explicit(&md_fault_countdown[op],
	    memory_order_relaxed) <= 0)
		return 0;
	if (atomic_fetch_sub(&md_fault_countdown[op], 1) != 1)
		return 0;
	errno = atomic_load(&md_fault_errno[op]);
	return 1;
}

/* What an errno means for the message: permanent or worth a retry. Only
 * a name that can never fit is permanent; a mailbox that cannot be written
 * now (permissions, a file where a directory belongs, a full disk) is an
 * administrator's to fix, and the mail waits for that (README). */
static enum maildir_status
md_class(int err)
{
	switch (err) {
	case ENAMETOOLONG:
		return MAILDIR_PERM;
	default:
		return MAILDIR_TEMP;
	}
}

static void
md_fail(struct maildir_item *it, enum maildir_status st, const char *what,
    int err)
{
	char ebuf[128];
	int n;

	it->status = st;
	it->name[0] = '\0';
	if (err != 0)
		n = snprintf(it->error, sizeof it->error, "maildir: %s: %s",
		    what, strerror_r(err, ebuf, sizeof ebuf));
	else
		n = snprintf(it->error, sizeof it->error, "maildir: %s", what);
	if (n < 0)
		it->error[0] = '\0';	/* truncation is fine, failure is not */
}

static void
md_fail_errno(struct maildir_item *it, const char *what, int err)
{
	md_fail(it, md_class(err), what, err);
}

/*
 * Copies a domain or local part into out[MD_COMPONENT_MAX + 1] lower-cased,
 * if it is safe as one path component. Returns 0 or -1.
 */
static int
md_component(const char *s, char *out)
{
	size_t n;

	if (s == NULL || s[0] == '\0' || s[0] == '.')
		return -1;
	n = strnlen(s, MD_COMPONENT_MAX + 1);
	if (n > MD_COMPONENT_MAX)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '/' || c < 0x20 || c == 0x7f)
			return -1;
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') :
		    (char)c;
	}
	out[n] = '\0';
	return 0;
}

/* An envelope address is safe in a header: bounded, no line breaks. */
static int
md_header_value_ok(const char *s)
{
	size_t n = strnlen(s, MD_ADDRESS_MAX + 1);

	if (n > MD_ADDRESS_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\r' || s[i] == '\n')
			return 0;
	return 1;
}

/* Escapes hostname for file names (Maildir spec: '/' and ':' as \ooo). */
static void
md_escape_host(const char *host, char *out, size_t outsize)
{
	size_t o = 0;

	if (host == NULL || host[0] == '\0')
		host = "localhost";
	for (const char *p = host; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c >= 0x7f || c == '/' || c == ':' ||
		    c == ',' || c == '\\') {
			if (o + 4 >= outsize)
				break;
			out[o++] = '\\';
			out[o++] = (char)('0' + ((c >> 6) & 7));
			out[o++] = (char)('0' + ((c >> 3) & 7));
			out[o++] = (char)('0' + (c & 7));
		} else {
			if (o + 1 >= outsize)
				break;
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

static int
md_fsync_dir(const char *path, int is_new_dir)
{
	int fd, rc, saved;

	if (is_new_dir && md_fault(MAILDIR_FAULT_DIRSYNC))
		return -1;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* fsyncs the directory holding path (path has no trailing '/'). */
static int
md_fsync_parent(const char *path)
{
	char parent[PATH_MAX];
	char *slash;

	if (str_copy(parent, path, sizeof parent) != 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	slash = strrchr(parent, '/');
	if (slash == NULL)
		return md_fsync_dir(".", 0);
	if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	return md_fsync_dir(parent, 0);
}

/*
 * Makes directory path and any missing parent (mode 0700); each directory
 * created has its parent fsynced, so the new entry is durable. Returns 0,
 * or -1 with errno.
 */
static int
md_mkdir_p(const char *path, int depth)
{
	struct stat st;

	if (depth > PATH_MAX / 2) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (md_fault(MAILDIR_FAULT_MKDIR))
		return -1;
	if (mkdir(path, 0700) == 0)
		return md_fsync_parent(path);
	if (errno == EEXIST) {
		if (stat(path, &st) != 0)
			return -1;
		if (!S_ISDIR(st.st_mode)) {
			errno = ENOTDIR;
			return -1;
		}
		return 0;
	}
	if (errno == ENOENT) {
		char parent[PATH_MAX];
		char *slash;

		if (str_copy(parent, path, sizeof parent) != 0) {
			errno = ENAMETOOLONG;
			return -1;
		}
		slash = strrchr(parent, '/');
		while (slash != NULL && slash > parent && slash[1] == '\0') {
			*slash = '\0';
			slash = strrchr(parent, '/');
		}
		if (slash == NULL || slash == parent)
			return -1;	/* errno is still ENOENT */
		*slash = '\0';
		if (md_mkdir_p(parent, depth + 1) != 0)
			return -1;
		if (md_fault(MAILDIR_FAULT_MKDIR))
			return -1;
		if (mkdir(path, 0700) == 0)
			return md_fsync_parent(path);
		if (errno == EEXIST)
			return 0;
	}
	return -1;
}

/* Makes sure maildir/{tmp,new,cur} exist. Returns 0 or -1 with errno. */
static int
md_prepare(const char *maildir)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	char path[PATH_MAX];
	int created = 0;

	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
		int n = snprintf(path, sizeof path, "%s/%s", maildir, subs[i]);
		if (n < 0 || (size_t)n >= sizeof path) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (md_fault(MAILDIR_FAULT_MKDIR))
			return -1;
		if (mkdir(path, 0700) == 0) {
			created = 1;
			continue;
		}
		if (errno == EEXIST)
			continue;
		if (errno != ENOENT || md_mkdir_p(maildir, 0) != 0)
			return -1;
		if (mkdir(path, 0700) == 0)
			created = 1;
		else if (errno != EEXIST)
			return -1;
	}
	if (created && md_fsync_dir(maildir, 0) != 0)
		return -1;
	return 0;
}

static void
md_unique(char *out, size_t outsize, const char *host)
{
	struct timespec ts;
	unsigned long q = atomic_fetch_add(&md_counter, 1) + 1;
	unsigned int rnd = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
		rnd = (unsigned int)gettid() ^ (unsigned int)ts.tv_nsec;
	/* Cannot be cut: the parts are bounded and outsize is large. */
	(void)snprintf(out, outsize, "%lld.M%06ldP%ldQ%luR%08x.%s",
	    (long long)ts.tv_sec, ts.tv_nsec / 1000, (long)getpid(), q, rnd,
	    host);
}

/* Writes all n bytes. Returns 0 or -1 with errno. */
static int
md_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		size_t want = n;
		ssize_t w;

		if (md_fault(MAILDIR_FAULT_WRITE)) {
			if (errno != 0)
				return -1;
			want = 1;	/* injected short write */
		}
		w = write(fd, p, want);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Output of md_write_message: a chunk buffer written when full. */
struct md_out {
	int fd;
	char *chunk;
	size_t used, total;
};

static int
md_emit(struct md_out *o, const char *p, size_t n)
{
	while (n > 0) {
		size_t take = MD_CHUNK - o->used;

		if (take > n)
			take = n;
		memcpy(o->chunk + o->used, p, take);
		o->used += take;
		p += take;
		n -= take;
		if (o->used == MD_CHUNK) {
			if (md_write_all(o->fd, o->chunk, o->used) != 0)
				return -1;
			o->total += o->used;
			o->used = 0;
		}
	}
	return 0;
}

/*
 * Writes the prefix headers and the body (CRLF -> LF), read from its
 * start, to fd. Sets *size_r to the bytes written. Returns 0, -1 with
 * errno (a write failed), or -2 (the body could not be read).
 */
static int
md_write_message(int fd, const struct maildir_item *it, char *chunk,
    size_t *size_r)
{
	const struct body_reader *r = it->body;
	struct md_out o = { fd, chunk, 0, 0 };
	int n, pending_cr = 0;

	n = snprintf(chunk, MD_CHUNK, "Return-Path: <%s>\nDelivered-To: <%s>\n",
	    it->sender ? it->sender : "", it->recipient ? it->recipient : "");
	if (n < 0 || n >= MD_CHUNK) {
		errno = EINVAL;
		return -1;
	}
	o.used = (size_t)n;
	if (r->rewind(r->arg) != 0)
		return -2;
	for (;;) {
		const char *b, *end;
		size_t len;

		if (r->next(r->arg, &b, &len) != 0)
			return -2;
		if (len == 0)
			break;
		end = b + len;
		/* A CR that ended the last piece: dropped before its LF. */
		if (pending_cr && *b != '\n' && md_emit(&o, "\r", 1) != 0)
			return -1;
		pending_cr = 0;
		while (b < end) {
			const char *cr = memchr(b, '\r', (size_t)(end - b));
			size_t seg = cr ? (size_t)(cr - b) : (size_t)(end - b);

			if (md_emit(&o, b, seg) != 0)
				return -1;
			if (cr == NULL)
				break;
			b = cr + 1;
			if (b == end)
				pending_cr = 1;
			else if (*b != '\n' && md_emit(&o, "\r", 1) != 0)
				return -1;	/* a lone CR is kept */
		}
	}
	if (pending_cr && md_emit(&o, "\r", 1) != 0)
		return -1;
	if (o.used > 0) {
		if (md_write_all(fd, chunk, o.used) != 0)
			return -1;
		o.total += o.used;
	}
	*size_r = o.total;
	return 0;
}

static int
md_rename_noreplace(const char *from, const char *to)
{
	if (md_fault(MAILDIR_FAULT_RENAME))
		return -1;
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	return rename(from, to);
}

/* A Maildir seen in this batch. */
struct md_dir {
	char *path;
	int prepared;
};

struct md_batch {
	struct md_dir *dirs;
	size_t ndirs;
};

static size_t
md_batch_dir(struct md_batch *bt, const char *path)
{
	for (size_t i = 0; i < bt->ndirs; i++)
		if (strcmp(bt->dirs[i].path, path) == 0)
			return i;
	bt->dirs = xrealloc(bt->dirs, (bt->ndirs + 1) * sizeof *bt->dirs);
	bt->dirs[bt->ndirs].path = xstrdup(path);
	bt->dirs[bt->ndirs].prepared = 0;
	return bt->ndirs++;
}

/* Takes back a file that failed before its name in new/: its descriptor
 * (fd >= 0) and, when it has one, its tmp/ name. */
static void
md_discard(int fd, int unnamed, const char *tmp)
{
	if (fd >= 0)
		close(fd);
	if (!unnamed)
		(void)unlink(tmp);
}

/* One item between its write and its name in new/. */
struct md_pending {
	int fd;			/* -1: none (failed, or done with) */
	int unnamed;		/* O_TMPFILE: linkat names it; else tmp/ */
	size_t size;
	char maildir[PATH_MAX], tmp[PATH_MAX];
	char name[MAILDIR_NAME_MAX];
};

/*
 * Writes one item into its file and starts the file's writeback, so that
 * the fsyncs that follow for the whole batch find most data on its way
 * (and one journal commit may serve several files). Returns the index of
 * its Maildir in bt with pd->fd open, or -1 with the item's status set to
 * a failure.
 */
static long
md_write_one(struct md_batch *bt, const char *mail_dir, const char *host,
    struct maildir_item *it, char *chunk, struct md_pending *pd)
{
	char domain[MD_COMPONENT_MAX + 1], user[MD_COMPONENT_MAX + 1];
	char *maildir = pd->maildir, *tmp = pd->tmp, *name = pd->name;
	size_t di;
	int fd = -1, n, attempts = 0, unnamed = 0;

	it->status = MAILDIR_TEMP;
	it->error[0] = '\0';
	it->name[0] = '\0';
	if (mail_dir == NULL || mail_dir[0] == '\0') {
		md_fail(it, MAILDIR_PERM, "no mail_dir", 0);
		return -1;
	}
	if (md_component(it->domain, domain) != 0) {
		md_fail(it, MAILDIR_PERM, "bad domain name for a mailbox", 0);
		return -1;
	}
	if (md_component(it->user, user) != 0) {
		md_fail(it, MAILDIR_PERM, "bad user name for a mailbox", 0);
		return -1;
	}
	if ((it->sender && !md_header_value_ok(it->sender)) ||
	    (it->recipient && !md_header_value_ok(it->recipient))) {
		md_fail(it, MAILDIR_PERM, "bad envelope address", 0);
		return -1;
	}
	if (it->body == NULL) {
		md_fail(it, MAILDIR_PERM, "no message body", 0);
		return -1;
	}
	pd->fd = -1;
	n = snprintf(maildir, sizeof pd->maildir, "%s/%s/%s", mail_dir, domain,
	    user);
	if (n < 0 || (size_t)n >= sizeof pd->maildir - 64) {
		md_fail_errno(it, "mailbox path", ENAMETOOLONG);
		return -1;
	}
	di = md_batch_dir(bt, maildir);
	if (!bt->dirs[di].prepared) {
		if (md_prepare(maildir) != 0) {
			md_fail_errno(it, "create mailbox", errno);
			return -1;
		}
		bt->dirs[di].prepared = 1;
	}

	/* Fast path: an unnamed file in new/ (O_TMPFILE) that gets its name
	 * by linkat once written and fsynced: the file appears whole, at
	 * once, with no tmp/ entry and no rename between directories. */
	n = snprintf(tmp, sizeof pd->tmp, "%s/new", maildir);
	if (n < 0 || (size_t)n >= sizeof pd->tmp) {
		md_fail_errno(it, "new directory name", ENAMETOOLONG);
		return -1;
	}
	fd = md_fault(MAILDIR_FAULT_OPEN) ? -1 :
	    open(tmp, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd >= 0) {
		unnamed = 1;
		md_unique(name, sizeof pd->name - 32, host);
	} else if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
		md_fail_errno(it, "open tmp file", errno);
		return -1;
	}
	while (fd < 0) {
		md_unique(name, sizeof pd->name - 32, host);
		n = snprintf(tmp, sizeof pd->tmp, "%s/tmp/%s", maildir, name);
		if (n < 0 || (size_t)n >= sizeof pd->tmp) {
			md_fail_errno(it, "tmp file name", ENAMETOOLONG);
			return -1;
		}
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (fd < 0 && (errno != EEXIST || ++attempts >= 3)) {
			md_fail_errno(it, "open tmp file", errno);
			return -1;
		}
	}
	pd->size = 0;
	if ((n = md_write_message(fd, it, chunk, &pd->size)) != 0) {
		if (n == -2)
			md_fail(it, MAILDIR_TEMP, "cannot read the message", 0);
		else
			md_fail_errno(it, "write", errno);
		goto fail;
	}
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	pd->fd = fd;
	pd->unnamed = unnamed;
	return (long)di;
fail:
	md_discard(fd, unnamed, tmp);
	return -1;
}

/*
 * fsyncs the file md_write_one wrote and gives it its name in new/.
 * Returns 0, or -1 with the item's status set to a failure (nothing of it
 * left behind).
 */
static int
md_name_one(struct maildir_item *it, struct md_pending *pd)
{
	char dst[PATH_MAX];
	const char *maildir = pd->maildir, *tmp = pd->tmp;
	int fd = pd->fd, unnamed = pd->unnamed, n;

	pd->fd = -1;
	if (md_fault(MAILDIR_FAULT_FSYNC) || fsync(fd) != 0) {
		md_fail_errno(it, "fsync", errno);
		goto fail;
	}
	n = snprintf(dst, sizeof dst, "%s/new/%s,S=%zu", maildir, pd->name, pd->size);
	if (n < 0 || (size_t)n >= sizeof dst ||
	    (size_t)n - strlen(maildir) - 5 >= sizeof it->name) {
		md_fail_errno(it, "new file name", ENAMETOOLONG);
		goto fail;
	}
	if (unnamed) {
		char proc[64];

		snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
		if (md_fault(MAILDIR_FAULT_RENAME) ||
		    linkat(AT_FDCWD, proc, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) != 0) {
			md_fail_errno(it, "move into new", errno);
			goto fail;
		}
	}
	n = close(fd);
	fd = -1;
	if (n != 0) {
		md_fail_errno(it, "close", errno);
		if (unnamed)
			(void)unlink(dst);
		goto fail;
	}
	if (!unnamed && md_rename_noreplace(tmp, dst) != 0) {
		md_fail_errno(it, "move into new", errno);
		goto fail;
	}
	(void)str_copy(it->name, dst + strlen(maildir) + 5, sizeof it->name);
	return 0;
fail:
	md_discard(fd, unnamed, tmp);
	return -1;
}

size_t
maildir_deliver_batch(const char *mail_dir, const char *hostname,
    struct maildir_item *items, size_t n)
{
	struct md_batch bt = { NULL, 0 };
	struct md_pending *pd;
	char host[MD_HOST_MAX + 1];
	char path[PATH_MAX];
	long *where;
	char *chunk;
	size_t ok = 0;

	if (n == 0)
		return 0;
	md_escape_host(hostname, host, sizeof host);
	chunk = xmalloc(MD_CHUNK);
	where = xcalloc(n, sizeof *where);
	pd = xcalloc(n, sizeof *pd);
	/* All files written first, then each fsynced and named: the writes
	 * of the whole batch go to the disk together. */
	for (size_t i = 0; i < n; i++)
		where[i] = md_write_one(&bt, mail_dir, host, &items[i], chunk, &pd[i]);
	for (size_t i = 0; i < n; i++)
		if (where[i] >= 0 && md_name_one(&items[i], &pd[i]) != 0)
			where[i] = -1;
	free(pd);

	/* One fsync per new/ directory makes all its renames durable. */
	for (size_t d = 0; d < bt.ndirs; d++) {
		int used = 0, len;
		for (size_t i = 0; i < n && !used; i++)
			used = where[i] == (long)d;
		if (!used)
			continue;
		len = snprintf(path, sizeof path, "%s/new", bt.dirs[d].path);
		if (len < 0 || (size_t)len >= sizeof path ||
		    md_fsync_dir(path, 1) != 0) {
			int err = (len < 0 || (size_t)len >= sizeof path) ?
			    ENAMETOOLONG : errno;
			for (size_t i = 0; i < n; i++) {
				if (where[i] != (long)d)
					continue;
				/* Not known durable: take it back so the
				 * retry does not deliver twice. */
				len = snprintf(path, sizeof path, "%s/new/%s",
				    bt.dirs[d].path, items[i].name);
				if (len > 0 && (size_t)len < sizeof path)
					(void)unlink(path);
				md_fail_errno(&items[i], "fsync new", err);
				where[i] = -1;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (where[i] >= 0) {
			items[i].status = MAILDIR_OK;
			items[i].error[0] = '\0';
			ok++;
		}
	}
	for (size_t d = 0; d < bt.ndirs; d++)
		free(bt.dirs[d].path);
	free(bt.dirs);
	free(where);
	free(chunk);
	return ok;
}

enum maildir_status
maildir_deliver(const char *mail_dir, const char *hostname,
    const char *domain, const char *user, const char *sender,
    const char *recipient, const char *body, size_t body_len, char *err,
    size_t errsize)
{
	struct maildir_item it;
	struct body_reader r;
	struct body_mem m;

	memset(&it, 0, sizeof it);
	body_reader_mem(&r, &m, body, body_len, 0);
	it.domain = domain;
	it.user = user;
	it.sender = sender;
	it.recipient = recipient;
	it.body = body != NULL || body_len == 0 ? &r : NULL;
	(void)maildir_deliver_batch(mail_dir, hostname, &it, 1);
	if (err != NULL && errsize > 0)
		(void)str_copy(err, it.error, errsize);
	return it.status;
}
