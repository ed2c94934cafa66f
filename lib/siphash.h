/*
 * siphash: SipHash-2-4 (Aumasson and Bernstein), a keyed 64-bit hash for
 * hash tables whose keys an attacker chooses (client addresses, names):
 * without the 128-bit key nobody can aim many keys at one bucket.
 *
 * Threads: reentrant.
 */
#ifndef LIB_SIPHASH_H
#define LIB_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* Fills a key (or any secret) of n bytes with random bytes (getrandom);
 * early in boot, without entropy, with a weaker one still unknown
 * outside. */
void siphash_key_random(uint8_t *out, size_t n);

/* SipHash-2-4 of data[0..len) under key (16 bytes, as in the paper). */
uint64_t siphash24(const uint8_t key[16], const void *data, size_t len);

#endif
