# mailserver: plain Makefile. `make`, `make run`, `make test`,
# `make SANITIZE=address|thread test`, `make fuzz` (clang libFuzzer).

CC ?= cc
SANITIZE ?=
WARN = -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes -Werror
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=gnu11 $(CFLAGS) $(WARN) -pthread -D_GNU_SOURCE -I. -MMD -MP
LDLIBS = -lgnutls -lgnutls-dane -lcurl -lldns -llmdb -lcrypt -lpsl -pthread

ifeq ($(SANITIZE),address)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
BUILD = build/address
else ifeq ($(SANITIZE),thread)
ALL_CFLAGS += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
BUILD = build/thread
else ifeq ($(SANITIZE),)
BUILD = build/default
else
$(error SANITIZE must be address or thread)
endif
# The metrics endpoint (server/metrics_http.c).
LDLIBS += -lmicrohttpd
# TLS report mail, gzipped (relay/tls_rpt_mail.c).
LDLIBS += -lz

PROGRAMS = server/main.c server/mailctl.c
SRCS = $(filter-out $(PROGRAMS),$(wildcard lib/*.c dns/*.c auth/*.c storage/*.c relay/*.c queue/*.c filter/*.c server/*.c))
OBJS = $(SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS = $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
TOOL_SRCS = $(wildcard tests/tools/*.c)
TOOL_BINS = $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)

.SECONDARY:
.PHONY: all run test unit integration fuzz fuzz-regress deps bench clean
# ./mailserver and ./mailctl are the plain build; sanitized builds stay in $(BUILD).
all: $(BUILD)/mailserver $(BUILD)/mailctl
ifeq ($(SANITIZE),)
	@cmp -s $(BUILD)/mailserver mailserver || cp -f $(BUILD)/mailserver mailserver
	@cmp -s $(BUILD)/mailctl mailctl || cp -f $(BUILD)/mailctl mailctl
endif

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libms.a: $(OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/mailserver: $(BUILD)/server/main.o $(BUILD)/libms.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/mailctl: $(BUILD)/server/mailctl.o $(BUILD)/libms.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libms.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcunit $(LDLIBS)

# Fuzz targets built with a standalone driver replay their corpus in `make test`.
$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/driver.o $(BUILD)/libms.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Test drivers (tests/tools/) used by the integration tests.
$(BUILD)/tools/%: $(BUILD)/tests/tools/%.o $(BUILD)/libms.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

deps:
	@bash tests/deps.sh

run: deps all
	./mailserver -c mailserver.conf

unit: $(UNIT_BINS)
	@bash tests/run_unit.sh $(UNIT_BINS)

fuzz-regress: $(FUZZ_BINS)
	@bash tests/run_fuzz_regress.sh $(FUZZ_BINS)

# Faults injected with LD_PRELOAD into test servers (never into ./mailserver).
$(BUILD)/tests/libmsfault.so: tests/fault/msfault.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE -shared -fPIC -o $@ $< -ldl

integration: all $(BUILD)/tests/test_dns_live $(TOOL_BINS) $(BUILD)/tests/libmsfault.so
	@MAILSERVER_BIN=$(abspath $(BUILD)/mailserver) MAILCTL_BIN=$(abspath $(BUILD)/mailctl) \
		AUTHTOOL_BIN=$(abspath $(BUILD)/tools/authtool) \
		DNS_LIVE_BIN=$(abspath $(BUILD)/tests/test_dns_live) \
		FILTER_DRIVER_BIN=$(abspath $(BUILD)/tools/filter_driver) \
		TLS_PROBE_BIN=$(abspath $(BUILD)/tools/tls_probe) \
		MSFAULT_LIB=$(abspath $(BUILD)/tests/libmsfault.so) \
		SANITIZE=$(SANITIZE) bash tests/run_integration.sh

test: deps
	@$(MAKE) --no-print-directory all unit fuzz-regress
	@$(MAKE) --no-print-directory integration

# libFuzzer builds (clang): build/fuzz/<target>; run e.g. build/fuzz/fuzz_smtp_parser tests/fuzz/corpus/smtp_parser
fuzz:
	@mkdir -p build/fuzz
	@for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
		clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. -o build/fuzz/$$n $$f \
		$(SRCS) $(LDLIBS) || exit 1; echo built build/fuzz/$$n; done

bench: all
	@bash bench/accept

clean:
	rm -rf build mailserver mailctl

-include $(OBJS:.o=.d) $(BUILD)/server/main.d $(BUILD)/server/mailctl.d
-include $(UNIT_SRCS:%.c=$(BUILD)/%.d) $(FUZZ_SRCS:%.c=$(BUILD)/%.d) $(BUILD)/tests/fuzz/driver.d
-include $(TOOL_SRCS:%.c=$(BUILD)/%.d)
-include $(BUILD)/tests/integration/tls_probe.d

# Live tests that tests/integration/*.py run (next to $(BUILD)/mailserver).
integration: $(BUILD)/tests/test_dnsbl_live

# make install [PREFIX=/usr/local] [DESTDIR=]: the binaries and manual pages.
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
.PHONY: install
install: $(BUILD)/mailserver $(BUILD)/mailctl
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(BUILD)/mailserver $(BUILD)/mailctl $(DESTDIR)$(SBINDIR)/
	install -m 0644 man/mailserver.8 man/mailctl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 man/mailserver.conf.5 $(DESTDIR)$(MANDIR)/man5/

# The metrics endpoint with known values, scraped by tests/integration/test_metrics.py.
$(BUILD)/tests/metrics_serve: $(BUILD)/tests/integration/metrics_serve.o $(BUILD)/libms.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
integration: $(BUILD)/tests/metrics_serve
-include $(BUILD)/tests/integration/metrics_serve.d
