# moonpen — build, test and install. `make help` lists the targets.
# Every target that needs a Debian package runs `make deps` first.

PREFIX ?= /usr/local
BUILD ?= build
SAN ?=
CC ?= cc

DEB_PACKAGES := build-essential pkg-config liblua5.4-dev libseccomp-dev libnng-dev \
	libprotobuf-c-dev protobuf-c-compiler libsodium-dev libjansson-dev \
	libcriterion-dev libsqlite3-dev libcap-dev protobuf-compiler nng-utils \
	clang-format clang libclang-rt-14-dev clang-tidy cppcheck valgrind

LUA_A := $(shell pkg-config --variable=libdir lua5.4 2>/dev/null || echo /usr/lib/x86_64-linux-gnu)/liblua5.4.a

WARN := -Wall -Wextra -Werror -Wmissing-prototypes -Wshadow -Wformat=2 -Wvla
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -O2 -g -fno-strict-aliasing $(WARN) \
	-I. -I$(BUILD)/gen -I/usr/include/lua5.4
ifeq ($(SAN),1)
CFLAGS_BASE += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-DMP_SANITIZED=1
LDFLAGS_SAN := -fsanitize=address,undefined
endif
CFLAGS += $(CFLAGS_BASE)
LDLIBS_COMMON := -lprotobuf-c -ljansson -lsodium -lpthread -lm
LDLIBS_NNG := -lnng -lpthread
LDLIBS_LUA := $(LUA_A) -lm -ldl

PROTOS := $(wildcard proto/*.proto)
GEN_C := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
GEN_H := $(GEN_C:.c=.h)

COMMON_SRC := $(wildcard common/*.c)
ENGINE_SRC := $(filter-out worker/main.c,$(wildcard worker/*.c))
SUP_SRC := $(filter-out supervisor/main.c,$(wildcard supervisor/*.c))
CLIENT_SRC := $(filter-out client/moonpenctl.c,$(wildcard client/*.c))
SPK_SRC := $(filter-out tools/spk/main.c,$(wildcard tools/spk/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIBCOMMON := $(BUILD)/lib/libmpcommon.a
LIBENGINE := $(BUILD)/lib/libmpengine.a
LIBSUP := $(BUILD)/lib/libmpsup.a
LIBMOONPEN := $(BUILD)/lib/libmoonpen.a
LIBTEST := $(BUILD)/lib/libmptest.a
LIBSPK := $(BUILD)/lib/libmpspk.a
TEST_SUPPORT_SRC := $(wildcard tests/support/*.c)

BINS := $(BUILD)/bin/moonpend $(BUILD)/bin/moonpen-worker $(BUILD)/bin/moonpenctl \
	$(BUILD)/bin/game-server $(if $(SPK_SRC),$(BUILD)/bin/spk)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
E2E_SRC := $(wildcard tests/e2e/test_*.c)
ADV_SRC := $(wildcard tests/adversarial/test_*.c)
TEST_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRC) $(E2E_SRC) $(ADV_SRC))
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(wildcard tests/bench/*.c))

.PHONY: all deps test demo install format format-check clean help bench test-asan
all: deps-check $(BINS)

help:
	@echo "make deps | all | test | demo | bench | install PREFIX=... | format-check | test-asan | clean"

# ---- dependencies ---------------------------------------------------------
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "make deps: all Debian packages present"; fi

# Quiet check used by the build targets: only runs apt when something is missing.
deps-check:
	@for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || { $(MAKE) --no-print-directory deps; break; }; \
	done

# ---- generated code -------------------------------------------------------
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto $(PROTOS) | deps-check
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

# Sanitizer builds append the rules their runtime needs (never in production).
SECCOMP_POLICY := policy/seccomp.allow $(if $(filter 1,$(SAN)),policy/seccomp-sanitizer.allow)
$(BUILD)/gen/seccomp_allow.h: $(SECCOMP_POLICY) policy/gen-seccomp.awk
	@mkdir -p $(BUILD)/gen
	awk -f policy/gen-seccomp.awk $(SECCOMP_POLICY) > $@.tmp && mv $@.tmp $@

# Only the worker's confinement reads the generated seccomp table.
$(BUILD)/obj/worker/confine.o: $(BUILD)/gen/seccomp_allow.h

# ---- objects and archives ---------------------------------------------------
$(BUILD)/obj/%.o: %.c $(GEN_H) | deps-check
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# Generated protobuf-c code is compiled without our extra warnings.
$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Wmissing-prototypes -Wshadow,$(CFLAGS)) -c $< -o $@

GEN_OBJ := $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(GEN_C))

$(LIBCOMMON): $(GEN_OBJ) $(call obj,$(COMMON_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(LIBENGINE): $(call obj,$(ENGINE_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(LIBSUP): $(call obj,$(SUP_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(LIBSPK): $(call obj,$(SPK_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(LIBTEST): $(call obj,$(TEST_SUPPORT_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(LIBMOONPEN): $(GEN_OBJ) $(call obj,$(CLIENT_SRC) $(COMMON_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

# ---- programs ---------------------------------------------------------------
$(BUILD)/bin/moonpend: $(call obj,supervisor/main.c) $(LIBSUP) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS_NNG) $(LDLIBS_COMMON) -lsqlite3 -lseccomp
$(BUILD)/bin/moonpen-worker: $(call obj,worker/main.c) $(LIBENGINE) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS_NNG) $(LDLIBS_COMMON) $(LDLIBS_LUA) -lseccomp
$(BUILD)/bin/moonpenctl: $(call obj,client/moonpenctl.c) $(LIBMOONPEN)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS_NNG) $(LDLIBS_COMMON)
# spk: the pack author's tool; runs packs in real confined workers (wchan, spawn).
$(BUILD)/bin/spk: $(call obj,tools/spk/main.c) $(LIBSPK) $(LIBSUP) $(LIBENGINE) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS_NNG) $(LDLIBS_COMMON) $(LDLIBS_LUA) -lsqlite3 -lseccomp
$(BUILD)/bin/game-server: $(call obj,examples/game-server/main.c) $(LIBMOONPEN)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS_NNG) $(LDLIBS_COMMON)

# Tests link every archive; the linker keeps what each test uses.
ALL_LIBS := $(LIBTEST) $(LIBSPK) $(LIBSUP) $(LIBENGINE) $(LIBMOONPEN) $(LIBCOMMON)
ALL_LDLIBS := $(LDLIBS_NNG) $(LDLIBS_COMMON) $(LDLIBS_LUA) -lsqlite3 -lseccomp -lcriterion
$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $< $(ALL_LIBS) $(ALL_LDLIBS)
$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $< $(ALL_LIBS) $(ALL_LDLIBS)

# Quality targets (fuzz, valgrind, lint, failing allocator) live in mk/*.mk.
-include mk/*.mk

# The failing-allocator suites replace malloc: not under the sanitizers.
ifneq ($(SAN),1)
TEST_BINS += $(OOM_BINS)
endif

# ---- the README's two commands ----------------------------------------------
test: deps-check $(BINS) $(TEST_BINS)
	@BUILD=$(BUILD) tests/run-tests.sh $(TEST_BINS)

demo: deps-check $(BINS)
	@BUILD=$(BUILD) examples/demo.sh

bench: deps-check $(BINS) $(BENCH_BINS)
	@for b in $(BENCH_BINS); do echo "== $$b"; BUILD=$(BUILD) $$b || exit 1; done

test-asan:
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lint/lsan.supp:print_suppressions=0 \
	  $(MAKE) BUILD=build-asan SAN=1 test

# ---- install ------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/libexec/moonpen \
	  $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/share/moonpen/policy \
	  $(DESTDIR)$(PREFIX)/share/moonpen/packs
	install -m 0755 $(BUILD)/bin/moonpend $(BUILD)/bin/moonpenctl $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(BUILD)/bin/moonpen-worker $(DESTDIR)$(PREFIX)/libexec/moonpen/
	install -d $(DESTDIR)$(PREFIX)/include/common
	install -m 0644 client/moonpen.h $(BUILD)/gen/moonpen.pb-c.h $(DESTDIR)$(PREFIX)/include/
	install -m 0644 common/val.h $(DESTDIR)$(PREFIX)/include/common/
	install -m 0644 $(LIBMOONPEN) $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 policy/host_api.json policy/seccomp.allow $(DESTDIR)$(PREFIX)/share/moonpen/policy/
	cp -R examples/packs/. $(DESTDIR)$(PREFIX)/share/moonpen/packs/

# ---- formatting -----------------------------------------------------------------
FMT_SRC = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(FMT_SRC)
format-check:
	@clang-format --dry-run --Werror $(FMT_SRC) && echo "format-check: clean"

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
.SECONDARY:
