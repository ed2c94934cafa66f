/* siphash: SipHash-2-4, written from the paper's description (see siphash.h). */
#include "lib/siphash.h"

#include <sys/random.h>
#include <time.h>

void
siphash_key_random(uint8_t *out, size_t n)
{
	if (getrandom(out, n, GRND_NONBLOCK) == (ssize_t)n)
		return;
	/* Early boot without entropy: a weaker key, still unknown outside. */
	for (size_t i = 0; i < n; i++) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		out[i] = (uint8_t)(ts.tv_nsec ^ (ts.tv_nsec >> 8) ^ (uintptr_t)out ^ i);
	}
}

static uint64_t
sip_load64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t
sip_rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

struct sip_state {
	uint64_t v0, v1, v2, v3;
};

static void
sip_round(struct sip_state *s)
{
	s->v0 += s->v1;
	s->v1 = sip_rotl(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = sip_rotl(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = sip_rotl(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = sip_rotl(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = sip_rotl(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = sip_rotl(s->v2, 32);
}

static void
sip_compress(struct sip_state *s, uint64_t m)
{
	s->v3 ^= m;
	sip_round(s);
	sip_round(s);
	s->v0 ^= m;
}

uint64_t
siphash24(const uint8_t key[16], const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t k0 = sip_load64(key), k1 = sip_load64(key + 8);
	struct sip_state s = {
		0x736f6d6570736575ull ^ k0, 0x646f72616e646f6dull ^ k1,
		0x6c7967656e657261ull ^ k0, 0x7465646279746573ull ^ k1,
	};
	uint64_t last = (uint64_t)len << 56;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8)
		sip_compress(&s, sip_load64(p + i));
	for (size_t j = 0; i + j < len; j++)
		last |= (uint64_t)p[i + j] << (8 * j);
	sip_compress(&s, last);
	s.v2 ^= 0xff;
	for (int r = 0; r < 4; r++)
		sip_round(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}
