# flashmoe build. `make` builds build/release; `make check` runs every test
# (release + sanitizer build + reference); `make demo` runs the demo.
# BUILD=release|asan|tsan|debug selects the flavour, each in build/<BUILD>/.

BUILD ?= release
O ?= build/$(BUILD)
CC ?= cc
ARCH := $(shell uname -m)

WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes
ifeq ($(CI),true)
WARN += -Werror
endif
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Iinclude -Isrc $(WARN) -MMD -MP -fvisibility=hidden -pthread -g
LDLIBS := -luring -lpcre2-8 -ljson-c -lutf8proc -ledit -lm -pthread
# the server's HTTP (flashmoe serve); only the CLI binary uses it
CLI_LDLIBS := -lmicrohttpd

ifeq ($(BUILD),release)
OPT := -O2
else ifeq ($(BUILD),asan)
OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else ifeq ($(BUILD),tsan)
OPT := -O1 -fsanitize=thread
LDFLAGS += -fsanitize=thread
else
OPT := -O0
endif

# Portable base ISA: the binary runs on any x86-64; faster code is reached only
# through run-time dispatch (src/kernels/dispatch.c), never by -march=native.
ifeq ($(ARCH),x86_64)
ISA_BASE := -march=x86-64 -mtune=generic
ISA_AVX2 := -mavx2 -mfma -mf16c
ISA_AVX512 := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni
else
ISA_BASE :=
endif
CFLAGS := $(CFLAGS_BASE) $(OPT) $(ISA_BASE) $(EXTRA_CFLAGS)

LIB_SRC := $(wildcard src/*.c) $(wildcard src/arch/*.c) $(wildcard src/kernels/*.c)
ifneq ($(ARCH),x86_64)
LIB_SRC := $(filter-out %_avx2.c %_avx512.c,$(LIB_SRC))
endif
CLI_SRC := $(wildcard src/cli/*.c) $(wildcard src/server/*.c)
TEST_SRC := $(wildcard tests/test_*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(O)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(O)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(O)/tests/%)

all: deps $(O)/flashmoe $(TEST_BIN)

$(O)/libflashmoe.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(O)/flashmoe: $(CLI_OBJ) $(O)/gen/page_html.o $(O)/libflashmoe.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CLI_LDLIBS) $(LDLIBS)

# The chat page served at / (src/server/page.html) as bytes in the binary:
# fm_page_html[] and fm_page_html_len (src/server/page.h), by od and awk.
$(O)/gen/page_html.c: src/server/page.html tools/embed.sh
	@mkdir -p $(dir $@)
	sh tools/embed.sh fm_page_html $< >$@.tmp && mv $@.tmp $@
$(O)/gen/page_html.o: $(O)/gen/page_html.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(O)/tests/%: $(O)/tests/%.o $(O)/tests/testutil.o $(O)/libflashmoe.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the server's output path (textout, OpenAI JSON) is tested with its objects
SERVER_TEST_OBJ := $(addprefix $(O)/src/server/,buf.o req.o textout.o oai_resp.o)
$(O)/tests/test_server_out: $(O)/tests/test_server_out.o $(O)/tests/testutil.o $(SERVER_TEST_OBJ) \
		$(O)/libflashmoe.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(O)/tests/testutil.o: tests/testutil.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -c -o $@ $<

$(O)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -c -o $@ $<

$(O)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_AVX2) -c -o $@ $<

$(O)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_AVX512) -c -o $@ $<

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# Debian packages the build and tests need; installed when missing (as root).
deps: build/.deps-ok
build/.deps-ok: tools/install-deps.sh
	@mkdir -p build
	@sh tools/install-deps.sh
	@touch $@

# The tests: unit tests of the release and sanitizer builds, then the
# independent reference comparison. Prints "N passed, N failed, N skipped".
check: deps
	$(MAKE) BUILD=release all
	$(MAKE) BUILD=asan all
	$(MAKE) tsan-build
	sh tests/run.sh

test: check

# Thread safety (flashmoe.h: contexts of one model on several threads): the
# ThreadSanitizer build in $(TSAN_O) runs tests/tsan.sh, i.e. the programs
# named in TSAN_TESTS (tests/test_*.c) and every tests/tsan_*.sh (given
# FM_BIN=$(TSAN_O)/flashmoe); any report fails. tests/run.sh runs it too
# when the build is there (make check builds it).
TSAN_O ?= build/tsan
TSAN_TESTS ?= test_threads
tsan-build: deps
	$(MAKE) BUILD=tsan O=$(TSAN_O) $(TSAN_O)/flashmoe $(TSAN_TESTS:%=$(TSAN_O)/tests/%)
tsan-check: tsan-build
	sh tests/tsan.sh $(TSAN_O)

demo: all
	sh tools/demo.sh

# Benchmarks (run by hand; results go to docs/BENCHMARKS.md with their command).
# They may use -march=native: they measure this machine, they do not ship.
BENCH_BIN := $(O)/bench/membw $(O)/bench/bench_kernels $(O)/bench/bench_bundle $(O)/bench/bench_kvattn
bench: all $(BENCH_BIN)
$(O)/bench/membw: bench/membw.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -march=native -pthread -o $@ $<
$(O)/bench/%: bench/%.c $(O)/libflashmoe.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

clean:
	rm -rf build

# Fuzzing (libFuzzer; run by hand, not part of all/check): builds every
# tests/fuzz/fuzz_*.c with clang (installed when missing, as root) into
# build/fuzz/, seeds build/fuzz/corpus-<name>/ (tests/fuzz/gen_seeds.c), then
# runs each target FUZZ_TIME seconds, one after the other, on one core. A
# finding stops make; its input is build/fuzz/<name>-crash-* (or leak-,
# timeout-, oom-). FUZZ_ARGS adds libFuzzer flags (e.g. -runs=10000000).
#   make fuzz FUZZ_TIME=60
FUZZ_CC ?= clang
FUZZ_TIME ?= 10
FUZZ_DIR := build/fuzz
FUZZ_MODEL ?= models/brown-moe.gguf
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -g -O1 -fno-omit-frame-pointer -pthread \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined $(ISA_BASE)
FUZZ_NAMES := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
# Largest input per target (bytes); 4096 for the others.
FUZZ_MAXLEN_fuzz_tokenizer := 256
FUZZ_MAXLEN_fuzz_tokenizer_json := 16384
FUZZ_MAXLEN_fuzz_tokenizer_gguf := 8192

fuzz: deps fuzz-clang
	$(MAKE) fuzz-build
	$(MAKE) -j1 $(FUZZ_NAMES:%=fuzz-run-%)

fuzz-clang:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then echo "fuzz: installing clang"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq >/dev/null && apt-get install -y -qq clang >/dev/null || { \
	      echo "fuzz: apt-get install clang failed" >&2; exit 1; }; \
	  else echo "fuzz: clang is missing (run: sudo apt-get install clang)" >&2; exit 1; fi; }

fuzz-build: $(FUZZ_NAMES:%=$(FUZZ_DIR)/%) $(FUZZ_DIR)/.seeded

fuzz-run-%: $(FUZZ_DIR)/% $(FUZZ_DIR)/.seeded
	FM_FUZZ_TOKENIZER=$(FUZZ_MODEL) $< -max_total_time=$(FUZZ_TIME) -timeout=1 \
		-rss_limit_mb=2048 -max_len=$(or $(FUZZ_MAXLEN_$*),4096) -print_final_stats=1 \
		-artifact_prefix=$(FUZZ_DIR)/$*- $(if $(wildcard tests/fuzz/$*.dict),-dict=tests/fuzz/$*.dict) \
		$(FUZZ_ARGS) $(FUZZ_DIR)/corpus-$*

$(FUZZ_DIR)/.seeded: $(FUZZ_DIR)/gen_seeds $(FUZZ_MODEL)
	$(FUZZ_DIR)/gen_seeds $(FUZZ_DIR) $(FUZZ_MODEL)
	@touch $@

$(FUZZ_DIR)/gen_seeds: tests/fuzz/gen_seeds.c $(FUZZ_DIR)/libflashmoe.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -o $@ $^ $(LDLIBS)

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DIR)/libflashmoe.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

$(FUZZ_DIR)/libflashmoe.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/obj/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP $(ISA_AVX2) -c -o $@ $<

$(FUZZ_DIR)/obj/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP $(ISA_AVX512) -c -o $@ $<

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

.PHONY: fuzz fuzz-clang fuzz-build
-include $(FUZZ_LIB_OBJ:.o=.d)

.PHONY: all deps check test demo clean bench tsan-build tsan-check
-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d)
