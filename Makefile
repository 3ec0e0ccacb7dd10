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

LIB_SRC := $(wildcard src/*.c) $(wildcard src/kernels/*.c)
ifneq ($(ARCH),x86_64)
LIB_SRC := $(filter-out %_avx2.c %_avx512.c,$(LIB_SRC))
endif
CLI_SRC := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(O)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(O)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(O)/tests/%)

all: deps $(O)/flashmoe $(TEST_BIN)

$(O)/libflashmoe.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(O)/flashmoe: $(CLI_OBJ) $(O)/libflashmoe.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(O)/tests/%: $(O)/tests/%.o $(O)/tests/testutil.o $(O)/libflashmoe.a
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
	sh tests/run.sh

test: check

demo: all
	sh tools/demo.sh

# Benchmarks (run by hand; results go to docs/BENCHMARKS.md with their command).
# They may use -march=native: they measure this machine, they do not ship.
BENCH_BIN := $(O)/bench/membw $(O)/bench/bench_kernels $(O)/bench/bench_bundle
bench: all $(BENCH_BIN)
$(O)/bench/membw: bench/membw.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -march=native -pthread -o $@ $<
$(O)/bench/%: bench/%.c $(O)/libflashmoe.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

clean:
	rm -rf build

.PHONY: all deps check test demo clean bench
-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d)
