/*
 * netaddr: IPv4/IPv6 networks in CIDR notation, matching a client's socket
 * address against them (a v4-mapped IPv6 client counts as IPv4), and the
 * numeric text and port of a socket address; address literals of mail
 * domains, and whether one names an address of a given set.
 *
 * Everything here is pure computation on the caller's memory: reentrant,
 * no allocation, no global state.
 */
#include "lib/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

/* Longest accepted input: a bracketed IPv6 address with an IPv4 tail and
 * a prefix, "[ffff:...:255.255.255.255]/128", with room to spare. */
#define CIDR_TEXT_MAX 64

static const uint8_t netaddr_v4mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* Parses the decimal prefix length in s (1 to 3 digits, nothing else). */
static int
netaddr_parse_prefix(const char *s, int max)
{
	int v = 0;
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 3)
			return -1;
		v = v * 10 + (s[n] - '0');
	}
	if (n == 0 || v > max)
		return -1;
	return v;
}

int
cidr_parse(const char *s, struct cidr *out)
{
	char text[CIDR_TEXT_MAX];
	char *addr, *slash;
	struct cidr c;
	size_t len;

	if (s == NULL || out == NULL)
		return -1;
	if (str_copy(text, s, sizeof text) != 0)
		return -1;
	memset(&c, 0, sizeof c);
	addr = text;
	slash = strchr(text, '/');
	if (slash != NULL)
		*slash = '\0';
	/* "[::1]/128" is accepted as well, as Postfix writes it. */
	len = strlen(addr);
	if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
		addr[len - 1] = '\0';
		addr++;
		if (strchr(addr, ':') == NULL)
			return -1;
	}
	if (strchr(addr, ':') != NULL) {
		c.family = AF_INET6;
		if (inet_pton(AF_INET6, addr, c.addr) != 1)
			return -1;
	} else {
		c.family = AF_INET;
		if (inet_pton(AF_INET, addr, c.addr) != 1)
			return -1;
	}
	c.prefix = c.family == AF_INET ? 32 : 128;
	if (slash != NULL) {
		c.prefix = netaddr_parse_prefix(slash + 1, c.prefix);
		if (c.prefix < 0)
			return -1;
	}
	*out = c;
	return 0;
}

/* Do the first bits bits of a and b agree? */
static int
netaddr_prefix_equal(const uint8_t *a, const uint8_t *b, int bits)
{
	int whole = bits / 8, rest = bits % 8;

	if (whole > 0 && memcmp(a, b, (size_t)whole) != 0)
		return 0;
	if (rest != 0) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		if ((a[whole] & mask) != (b[whole] & mask))
			return 0;
	}
	return 1;
}

int
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	uint8_t addr[16];
	int family;

	if (c == NULL || sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
		memcpy(addr, &sin->sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(addr, &sin6->sin6_addr, 16);
		family = AF_INET6;
		if (c->family == AF_INET &&
		    memcmp(addr, netaddr_v4mapped_prefix, sizeof netaddr_v4mapped_prefix) == 0) {
			memmove(addr, addr + 12, 4);
			family = AF_INET;
		}
	} else {
		return 0;
	}
	/* A plain IPv4 client inside an IPv6 network such as ::ffff:0:0/96. */
	if (family == AF_INET && c->family == AF_INET6) {
		memmove(addr + 12, addr, 4);
		memcpy(addr, netaddr_v4mapped_prefix, sizeof netaddr_v4mapped_prefix);
		family = AF_INET6;
	}
	if (family != c->family)
		return 0;
	if (c->prefix < 0 || c->prefix > (family == AF_INET ? 32 : 128))
		return 0;
	return netaddr_prefix_equal(addr, c->addr, c->prefix);
}

char *
sockaddr_ntop(const struct sockaddr *sa, char *out, size_t outsize)
{
	const void *src = NULL;

	if (out == NULL || outsize == 0)
		return out;
	if (sa != NULL && sa->sa_family == AF_INET)
		src = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa != NULL && sa->sa_family == AF_INET6)
		src = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (src == NULL || outsize > (socklen_t)-1 ||
	    inet_ntop(sa->sa_family, src, out, (socklen_t)outsize) == NULL)
		str_copy(out, "?", outsize);
	return out;
}

uint16_t
sockaddr_port(const struct sockaddr *sa)
{
	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	return 0;
}

int
ip_addr_from_sockaddr(const struct sockaddr *sa, struct ip_addr *out)
{
	memset(out, 0, sizeof *out);
	if (sa != NULL && sa->sa_family == AF_INET) {
		out->family = AF_INET;
		memcpy(out->addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return 0;
	}
	if (sa == NULL || sa->sa_family != AF_INET6)
		return -1;
	memcpy(out->addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
	out->family = AF_INET6;
	if (memcmp(out->addr, netaddr_v4mapped_prefix, sizeof netaddr_v4mapped_prefix) == 0) {
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = AF_INET;
	}
	return 0;
}

int
ip_addr_in(const struct ip_addr *a, const struct ip_addr *set, size_t n)
{
	size_t len = a->family == AF_INET ? 4 : 16;

	for (size_t i = 0; i < n; i++)
		if (set[i].family == a->family && memcmp(set[i].addr, a->addr, len) == 0)
			return 1;
	return 0;
}

int
ip_literal_parse(const char *domain, struct ip_addr *out)
{
	char text[CIDR_TEXT_MAX];
	size_t len;

	if (domain == NULL || domain[0] != '[')
		return -1;
	len = strlen(domain);
	if (len < 3 || len - 2 >= sizeof text || domain[len - 1] != ']')
		return -1;
	memcpy(text, domain + 1, len - 2);
	text[len - 2] = '\0';
	memset(out, 0, sizeof *out);
	if (strncasecmp(text, "IPv6:", 5) == 0) {
		struct sockaddr_in6 sin6;

		memset(&sin6, 0, sizeof sin6);
		sin6.sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, text + 5, &sin6.sin6_addr) != 1)
			return -1;
		return ip_addr_from_sockaddr((const struct sockaddr *)&sin6, out);
	}
	out->family = AF_INET;
	return inet_pton(AF_INET, text, out->addr) == 1 ? 0 : -1;
}

int
ip_literal_in(const char *domain, const struct ip_addr *set, size_t n)
{
	struct ip_addr a;

	return n > 0 && ip_literal_parse(domain, &a) == 0 && ip_addr_in(&a, set, n);
}
