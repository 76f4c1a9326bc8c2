# Quality harness (issue 6): libFuzzer harnesses, valgrind, lint, failing allocator.
# Included by the Makefile; every variable of the Makefile (BUILD, WARN, COMMON_SRC,
# ENGINE_SRC, GEN_C, GEN_H, LDLIBS_*, ALL_LIBS ...) is visible here. docs/quality.md
# says what each target covers and the figures measured.
#
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_ONLY="request schema"]  each harness N seconds
#   make fuzz-ci                  each harness FUZZ_CI_SECONDS (20) seconds, for CI
#   make fuzz-build               only build the harnesses (build-fuzz/bin/fuzz_*)
#   make test-valgrind            unit and e2e suites under valgrind memcheck
#   make test-oom                 the failing-allocator suites (tests/oom)
#   make lint                     clang-tidy and cppcheck, with the checked-in configuration

.PHONY: fuzz fuzz-ci fuzz-build test-valgrind test-valgrind-ci test-oom lint lint-tidy lint-cppcheck

# ---- libFuzzer harnesses ----------------------------------------------------------
# Objects are compiled again with clang and coverage instrumentation into
# build-fuzz/ (never mixed with the gcc build). Generated protobuf-c sources come
# from the normal build's $(BUILD)/gen.
FUZZ_DIR ?= build-fuzz
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_CI_SECONDS ?= 20
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -fno-strict-aliasing $(WARN) \
	-I. -I$(BUILD)/gen -I/usr/include/lua5.4 $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_LDFLAGS := $(FUZZ_SAN) -fsanitize=fuzzer

# Harnesses that need only common/ and $(FUZZ_SUP_SRC), and those that need
# the worker engine (built once worker/engine.c and worker/luaval.c exist).
FUZZ_BASE := request from_worker manifest schema json_value grants trace
FUZZ_WORKER := $(if $(and $(wildcard worker/engine.c),$(wildcard worker/luaval.c)),to_worker value_lua) \
	$(if $(wildcard worker/snapshot.c),snapshot)
FUZZ_NAMES := $(FUZZ_BASE) $(FUZZ_WORKER)
FUZZ_ONLY ?= $(FUZZ_NAMES)
FUZZ_BINS := $(patsubst %,$(FUZZ_DIR)/bin/fuzz_%,$(FUZZ_NAMES))

fobj = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(1))
FUZZ_GEN_OBJ := $(patsubst $(BUILD)/gen/%.c,$(FUZZ_DIR)/obj/gen/%.o,$(GEN_C))
FUZZ_GEN_H := $(filter %.pb-c.h,$(GEN_H))
FUZZ_LIBCOMMON := $(FUZZ_DIR)/lib/libfcommon.a
FUZZ_LIBENGINE := $(FUZZ_DIR)/lib/libfengine.a

$(FUZZ_DIR)/obj/%.o: %.c $(FUZZ_GEN_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
$(FUZZ_DIR)/obj/gen/%.o: $(BUILD)/gen/%.c $(FUZZ_GEN_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(filter-out -Wmissing-prototypes -Wshadow,$(FUZZ_CFLAGS)) -c $< -o $@
# The supervisor's checks of untrusted bytes that need no other supervisor module:
# requests (reqcheck), worker queries (query), snapshot headers (ilog).
FUZZ_SUP_SRC := supervisor/reqcheck.c supervisor/wreply.c $(wildcard supervisor/query.c supervisor/ilog.c)
$(FUZZ_LIBCOMMON): $(FUZZ_GEN_OBJ) $(call fobj,$(COMMON_SRC) $(FUZZ_SUP_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(FUZZ_LIBENGINE): $(call fobj,$(ENGINE_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

FUZZ_LDLIBS := $(LDLIBS_NNG) $(LDLIBS_COMMON)
$(patsubst %,$(FUZZ_DIR)/bin/fuzz_%,$(FUZZ_BASE)): $(FUZZ_DIR)/bin/fuzz_%: \
		$(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIBCOMMON)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $@ $^ $(FUZZ_LDLIBS)
$(patsubst %,$(FUZZ_DIR)/bin/fuzz_%,$(FUZZ_WORKER)): $(FUZZ_DIR)/bin/fuzz_%: \
		$(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIBENGINE) $(FUZZ_LIBCOMMON)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $@ $^ $(FUZZ_LDLIBS) $(LDLIBS_LUA) -lseccomp

fuzz-build: deps-check $(FUZZ_BINS)

# Runs each harness $(1) seconds over a scratch copy of its seed corpus (new inputs
# land in build-fuzz/corpus/<name>, crashes in build-fuzz/artifacts/), then prints
# one line per harness: executions, exec/s, coverage (edges) and features.
# The seeds in tests/fuzz/corpus/<name> (regression inputs included) run first.
define fuzz_run
	@mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/artifacts $(FUZZ_DIR)/logs
	@fail=0; summary=""; for n in $(FUZZ_ONLY); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$n; log=$(FUZZ_DIR)/logs/fuzz_$$n.log; \
	  echo "== fuzz_$$n: $(1) s (log $$log)"; \
	  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
	  $(FUZZ_DIR)/bin/fuzz_$$n -max_total_time=$(1) -timeout=20 -rss_limit_mb=2048 \
	    -max_len=65536 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/artifacts/$$n- \
	    $(FUZZ_DIR)/corpus/$$n tests/fuzz/corpus/$$n >$$log 2>&1; rc=$$?; \
	  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log); \
	  rate=$$(sed -n 's/^stat::average_exec_per_sec: *//p' $$log); \
	  cov=$$(grep -aoE 'cov: [0-9]+ ft: [0-9]+' $$log | tail -1); \
	  units=$$(ls $(FUZZ_DIR)/corpus/$$n | wc -l); \
	  line=$$(printf '%-18s %10s execs %7s exec/s  %-22s corpus %5s  %s' fuzz_$$n "$${execs:-?}" \
	    "$${rate:-?}" "$${cov:-cov: ?}" $$units "$$( [ $$rc = 0 ] && echo ok || echo FAILED rc=$$rc)"); \
	  echo "$$line"; summary="$$summary$$line\n"; \
	  if [ $$rc != 0 ]; then fail=1; grep -aE 'ERROR|SUMMARY|Test unit written' $$log | head -5; fi; \
	done; printf "\n== fuzz summary ($(1) s each)\n$$summary"; exit $$fail
endef

fuzz: fuzz-build
	$(call fuzz_run,$(FUZZ_SECONDS))

fuzz-ci: fuzz-build
	$(call fuzz_run,$(FUZZ_CI_SECONDS))

# ---- valgrind -----------------------------------------------------------------------
# tests/lint/vg-wrap.sh runs a suite under memcheck with --trace-children=yes
# (Criterion re-executes itself for each test, e2e tests exec moonpend), one log
# per process, and fails the suite when any log holds an error or a definite or
# indirect leak: Criterion reports a test passed before its process exits, so
# valgrind's --error-exitcode alone would be lost. Workers are not traced (they
# confine themselves with seccomp) unless VALGRIND_SKIP= is given together with
# a supervisor that runs its workers under valgrind (docs/quality.md).
# test_seccomp_probe and test_spawn test what the kernel enforces (seccomp filters,
# rlimits): valgrind cannot run under a seccomp filter and refuses RLIMIT_NOFILE
# changes, so they run natively and under ASan; their code runs under valgrind
# through the e2e suites (moonpend spawning valgrind-wrapped workers).
VG_KERNEL_SUITES := %/test_seccomp_probe %/test_spawn
VG_SUITES = $(filter-out $(VG_KERNEL_SUITES),$(filter $(BUILD)/tests/unit/% $(BUILD)/tests/e2e/%,$(TEST_BINS)))

# The CI subset (.ci/run): the supervisor and worker suites, about 10 minutes
# on 2 cores instead of 35 for everything (make test-valgrind).
VG_CI_SUITES = $(addprefix $(BUILD)/tests/,unit/test_engine unit/test_snapshot unit/test_store \
	e2e/test_api e2e/test_isolation e2e/test_recovery e2e/test_query)
test-valgrind-ci:
	$(MAKE) test-valgrind VG_SUITES="$(VG_CI_SUITES)"

# Each suite runs through a generated wrapper ($(BUILD)/vg/tests/<suite>), so
# tests/run-tests.sh reports it as usual.
test-valgrind: deps-check $(BINS) $(VG_SUITES)
	@for t in $(VG_SUITES); do w=$(BUILD)/vg/$${t#$(BUILD)/}; mkdir -p $$(dirname $$w); \
	  printf '#!/bin/sh\nexec %s %s "$$@"\n' "$$(realpath tests/lint/vg-wrap.sh)" \
	    "$$(realpath $$t)" >$$w; chmod +x $$w; done
	@BUILD=$(BUILD) TEST_JOBS=1 TEST_TIMEOUT=1800 TEST_LOG_DIR=$(BUILD)/test-logs-valgrind \
	  tests/run-tests.sh $(patsubst $(BUILD)/%,$(BUILD)/vg/%,$(VG_SUITES))

# ---- failing allocator --------------------------------------------------------------
# tests/oom/test_oom_*.c are Criterion suites linked with tests/oom/failmalloc.c,
# which defines malloc/calloc/realloc/free (delegating to glibc's __libc_*) with a
# "fail the Nth call" switch. Not an ASan build: the sanitizer owns malloc.
OOM_SRC := $(wildcard tests/oom/test_oom_*.c)
OOM_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(OOM_SRC))
$(BUILD)/tests/oom/%: $(BUILD)/obj/tests/oom/%.o $(BUILD)/obj/tests/oom/failmalloc.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $< $(BUILD)/obj/tests/oom/failmalloc.o $(ALL_LIBS) $(ALL_LDLIBS)

test-oom: deps-check $(BINS) $(OOM_BINS)
ifeq ($(SAN),1)
	@echo "test-oom: not with SAN=1 (the sanitizer owns malloc)"; exit 1
endif
	@BUILD=$(BUILD) TEST_LOG_DIR=$(BUILD)/test-logs-oom tests/run-tests.sh $(OOM_BINS)

# ---- lint ---------------------------------------------------------------------------
# clang-tidy reads .clang-tidy; compile flags are given directly (the same as the
# build's, so no compile_commands.json is needed). cppcheck: warnings,
# performance and portability, suppressions in tests/lint/cppcheck-suppressions.txt.
LINT_SRC := $(wildcard common/*.c supervisor/*.c worker/*.c client/*.c tools/*.c tools/*/*.c)
LINT_FLAGS := -std=c11 -D_GNU_SOURCE -I. -I$(BUILD)/gen -I/usr/include/lua5.4
CLANG_TIDY ?= clang-tidy
CPPCHECK ?= cppcheck

lint: lint-tidy lint-cppcheck
	@echo "lint: clean"

lint-tidy: $(FUZZ_GEN_H)
	@echo "clang-tidy: $(words $(LINT_SRC)) files"
	@fail=0; for f in $(LINT_SRC); do \
	  $(CLANG_TIDY) --quiet $$f -- $(LINT_FLAGS) 2>/dev/null >$(BUILD)/lint-tidy.out || fail=1; \
	  grep -E 'warning:|error:' $(BUILD)/lint-tidy.out && fail=1; \
	done; rm -f $(BUILD)/lint-tidy.out; exit $$fail

lint-cppcheck: $(FUZZ_GEN_H)
	@echo "cppcheck: $(words $(LINT_SRC)) files"
	@$(CPPCHECK) --quiet --std=c11 --enable=warning,performance,portability --error-exitcode=1 \
	  --inline-suppr --suppressions-list=tests/lint/cppcheck-suppressions.txt \
	  -D_GNU_SOURCE -DPROTOBUF_C_VERSION_NUMBER=1004001 -DPROTOBUF_C_MIN_COMPILER_VERSION=1000000 \
	  -I. -I$(BUILD)/gen --template='{file}:{line}: {severity}: {message} [{id}]' \
	  $(LINT_SRC)
