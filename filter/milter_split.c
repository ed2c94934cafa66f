/*
 * milter_split: the message cut into headers, end of headers, body chunks
 * and the end (see milter_split.h).
 */
#include "filter/milter_split.h"

#include <string.h>

#include "filter/milter_proto.h"
#include "lib/util.h"

void
milter_split_init(struct milter_split *sp)
{
	memset(sp, 0, sizeof *sp);
	buf_init(&sp->line, MILTER_HEADER_MAX + 2);
	buf_init(&sp->header, MILTER_HEADER_MAX);
	buf_init(&sp->chunk, MILTER_CHUNK_MAX);
}

void
milter_split_free(struct milter_split *sp)
{
	buf_free(&sp->line);
	buf_free(&sp->header);
	buf_free(&sp->chunk);
}

void
milter_split_reset(struct milter_split *sp)
{
	sp->in_body = 0;
	sp->in = NULL;
	sp->in_len = 0;
	buf_reset(&sp->line);
	sp->line_ready = 0;
	sp->line_cut = 0;
	sp->body_line = 0;
	buf_reset(&sp->header);
	sp->have_header = 0;
	sp->q_header = 0;
	sp->q_eoh = 0;
	buf_reset(&sp->chunk);
	sp->finish = 0;
	sp->last = MILTER_SPLIT_NONE;
}

void
milter_split_feed(struct milter_split *sp, const void *data, size_t len)
{
	sp->in = data;
	sp->in_len = len;
}

void
milter_split_finish(struct milter_split *sp)
{
	sp->finish = 1;
}

void
milter_split_drop(struct milter_split *sp)
{
	sp->in = NULL;
	sp->in_len = 0;
}

/* The gathered header, ready to go as name and value (in sp->header):
 * 0 when there is none or it has no colon. */
static int
split_header_ready(struct milter_split *sp, const char **name,
    const char **value)
{
	char *h, *colon, *name_end;

	if (!sp->have_header)
		return 0;
	sp->have_header = 0;
	h = sp->header.data;
	colon = h != NULL ? strchr(h, ':') : NULL;
	if (colon == NULL) {
		buf_reset(&sp->header);
		return 0;
	}
	name_end = colon;
	while (name_end > h && (name_end[-1] == ' ' || name_end[-1] == '\t'))
		name_end--;
	*name_end = '\0';
	*name = h;
	*value = colon + 1;
	return 1;
}

/* The whole line in sp->line (with its line end, if any), in the header
 * part. A new header waits there while the one before goes. */
static void
split_header_line(struct milter_split *sp)
{
	const char *line = sp->line.data;
	size_t content = sp->line.len;

	if (content > 0 && line[content - 1] == '\n')
		content--;
	if (content > 0 && line[content - 1] == '\r')
		content--;
	if (content == 0) {
		sp->q_header = sp->q_eoh = 1;
	} else if ((line[0] == ' ' || line[0] == '\t') && sp->have_header) {
		/* Folded. The rest of a header past MILTER_HEADER_MAX is not
		 * seen. */
		(void)buf_puts(&sp->header, "\n");
		(void)buf_append(&sp->header, line,
		    content < sp->header.max - sp->header.len ? content :
		    sp->header.max - sp->header.len);
	} else if (header_name_len(line, content) > 0) {
		if (sp->have_header) {
			sp->q_header = 1;
			return;		/* the line waits */
		}
		(void)buf_append(&sp->header, line,
		    content < sp->header.max ? content : sp->header.max);
		sp->have_header = 1;
	} else {
		/* Not a header: the body starts with this line. */
		sp->q_header = sp->q_eoh = 1;
		sp->line_ready = 0;
		sp->body_line = 1;
		sp->body_off = 0;
		return;
	}
	sp->line_ready = 0;
	buf_reset(&sp->line);
}

/* Moves the next piece of the caller's bytes into sp->line. A line over
 * sp->line.max bytes keeps its first max - 2 and ends in CRLF, however
 * it came in pieces. */
static void
split_read_line(struct milter_split *sp)
{
	const char *nl = memchr(sp->in, '\n', sp->in_len);
	size_t take = nl != NULL ? (size_t)(nl - sp->in) + 1 : sp->in_len;

	if (!sp->line_cut && sp->line.len + take <= sp->line.max) {
		(void)buf_append(&sp->line, sp->in, take);
	} else {
		size_t keep = sp->line.max - 2, room;

		buf_truncate(&sp->line, keep);
		room = keep - sp->line.len;
		(void)buf_append(&sp->line, sp->in, take < room ? take : room);
		sp->line_cut = 1;
	}
	sp->in += take;
	sp->in_len -= take;
	if (nl != NULL) {
		if (sp->line_cut)
			(void)buf_puts(&sp->line, "\r\n");
		sp->line_cut = 0;
		sp->line_ready = 1;
	}
}

/* Fills the body chunk from the line that started the body, then from
 * the caller's bytes. 0 when there is nothing to take. */
static int
split_fill_chunk(struct milter_split *sp)
{
	size_t room = MILTER_CHUNK_MAX - sp->chunk.len, n;

	if (sp->body_line) {
		n = sp->line.len - sp->body_off;
		n = n < room ? n : room;
		(void)buf_append(&sp->chunk, sp->line.data + sp->body_off, n);
		sp->body_off += n;
		if (sp->body_off == sp->line.len) {
			sp->body_line = 0;
			buf_reset(&sp->line);
		}
		return 1;
	}
	if (sp->in_len == 0)
		return 0;
	n = sp->in_len < room ? sp->in_len : room;
	(void)buf_append(&sp->chunk, sp->in, n);
	sp->in += n;
	sp->in_len -= n;
	return 1;
}

static enum milter_split_ev
split_body(struct milter_split *sp, const char **data, size_t *len)
{
	*data = sp->chunk.data;
	*len = sp->chunk.len;
	return MILTER_SPLIT_BODY;
}

enum milter_split_ev
milter_split_next(struct milter_split *sp, const char **name,
    const char **value, const char **data, size_t *len)
{
	/* What the event before pointed to is done with. */
	if (sp->last == MILTER_SPLIT_HEADER)
		buf_reset(&sp->header);
	else if (sp->last == MILTER_SPLIT_BODY)
		buf_reset(&sp->chunk);
	sp->last = MILTER_SPLIT_NONE;
	for (;;) {
		if (sp->q_header) {
			sp->q_header = 0;
			if (split_header_ready(sp, name, value))
				return sp->last = MILTER_SPLIT_HEADER;
			continue;
		}
		if (sp->q_eoh) {
			sp->q_eoh = 0;
			sp->in_body = 1;
			return sp->last = MILTER_SPLIT_EOH;
		}
		if (sp->in_body) {
			if (sp->chunk.len == MILTER_CHUNK_MAX)
				return sp->last = split_body(sp, data, len);
			if (split_fill_chunk(sp))
				continue;
			if (!sp->finish)
				return MILTER_SPLIT_NONE;
			if (sp->chunk.len > 0)
				return sp->last = split_body(sp, data, len);
			sp->finish = 0;
			return MILTER_SPLIT_END;
		}
		if (sp->line_ready)
			split_header_line(sp);
		else if (sp->in_len > 0)
			split_read_line(sp);
		else if (!sp->finish)
			return MILTER_SPLIT_NONE;
		else if (sp->line.len > 0) {
			sp->line_ready = 1;	/* the last line, without its end */
			sp->line_cut = 0;
		}
		else
			sp->q_header = sp->q_eoh = 1;
	}
}
