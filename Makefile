# libopecom - one Makefile for the library, tools, examples and tests.
#
#   make            library, opecom, opecom-convert, examples
#   make test       the short test tier (what CI runs)
#   make test SANITIZE=address,undefined   the same under sanitizers (own build dir)
#   make fuzz       libFuzzer on the loader, predict and the converter's readers
#   make run        the demo store, its APIs and dashboard (opecom-server), default model
#   make install    header, static + shared library, opecom.pc, tools, opecom-server
#   make model      retrains the default model (PyTorch) and converts it
#   make card       reproduces docs/model-card.md's cross-validation figures
#
# Honours CC, CFLAGS, LDFLAGS, PREFIX, DESTDIR; V=1 prints full commands;
# WERROR=0 drops -Werror.

PYTHON   ?= /usr/bin/python3
CC       ?= cc
CFLAGS   ?= -O2 -g
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
BINDIR   ?= $(PREFIX)/bin
WERROR   ?= 1
SANITIZE ?=

VERSION_MAJOR := $(shell sed -n 's/^\#define OPECOM_VERSION_MAJOR \([0-9]*\).*/\1/p' include/opecom.h)
VERSION_MINOR := $(shell sed -n 's/^\#define OPECOM_VERSION_MINOR \([0-9]*\).*/\1/p' include/opecom.h)
VERSION_PATCH := $(shell sed -n 's/^\#define OPECOM_VERSION_PATCH \([0-9]*\).*/\1/p' include/opecom.h)
VERSION  := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
SONAME   := libopecom.so.$(VERSION_MAJOR)

comma := ,
ifeq ($(SANITIZE),)
BUILD    ?= build
SANFLAGS :=
else
BUILD    ?= build/sanitize-$(subst $(comma),-,$(SANITIZE))
SANFLAGS := -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
endif

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wcast-align -Wvla -Wformat=2 -Wundef -Wdouble-promotion
ifeq ($(WERROR),1)
WARN += -Werror
endif

ALL_CFLAGS  = -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) -Iinclude $(SANFLAGS) $(CFLAGS)
LIB_CFLAGS  = $(ALL_CFLAGS) -fPIC -fvisibility=hidden -Isrc -Ikernels
ALL_LDFLAGS = $(SANFLAGS) $(LDFLAGS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

# ---------------------------------------------------------------------------
# Library
LIB_SRC  := $(wildcard src/*.c) $(wildcard kernels/*.c)
LIB_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC))
LIB_A    := $(BUILD)/libopecom.a
LIB_SO   := $(BUILD)/libopecom.so.$(VERSION)
LIB_LIBS := -lz -lm

# Tools and examples use the public header only.
CONVERT_SRC := $(wildcard tools/convert/*.c)
CLI_SRC     := $(wildcard tools/cli/*.c)
CONVERT     := $(BUILD)/opecom-convert
CLI         := $(BUILD)/opecom
EMBED       := $(BUILD)/embed
SERVER_SRC  := $(wildcard examples/server/*.c)
SERVER      := $(BUILD)/opecom-server
# MariaDB Connector/C for the mariadb:// store (Debian's paths until libmariadb-dev is installed)
MARIADB_CFLAGS := $(shell mariadb_config --cflags 2>/dev/null || echo -I/usr/include/mariadb)
MARIADB_LIBS   := $(shell mariadb_config --libs 2>/dev/null || echo -lmariadb)
SERVER_LIBS := -lmicrohttpd -ljansson -lsqlite3 $(MARIADB_LIBS) -lpthread

FUZZ_TARGETS := model predict npz safetensors spec
REPLAY_BIN   := $(patsubst %,$(BUILD)/fuzz/replay_%,$(FUZZ_TARGETS))
CONVERT_LIB  := $(patsubst tools/%.c,$(BUILD)/tools/%.o,$(filter-out tools/convert/main.c,$(CONVERT_SRC)))
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build/fuzz-clang

TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TEST_LIBS := -lcmocka -lpthread

DEFAULT_MODEL := models/shoppers-tabm-k4.opm

.PHONY: all lib deps run-deps test-deps test run install uninstall clean model card fuzz server
.DEFAULT_GOAL := all

all: deps lib $(CONVERT) $(CLI) $(EMBED) $(SERVER)

server: deps lib $(SERVER)

# The library alone needs only a C compiler and zlib.
lib: $(LIB_A) $(LIB_SO)

# `make` only checks the build packages (it prints the apt-get line and stops
# if one is missing); run, test and bench install what they need first.
deps: $(patsubst %,%-deps,$(filter run test bench,$(MAKECMDGOALS)))
	$(Q)tools/install-deps.sh check build

run-deps:
	$(Q)tools/install-deps.sh run

test-deps:
	$(Q)tools/install-deps.sh test

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(LIB_CFLAGS) $(ISA_FLAGS) -MMD -MP -c $< -o $@

# Only the fast kernels are built for their instruction sets; dispatch.c
# runs them on CPUs that have them.
$(BUILD)/obj/kernels/tabm_avx2.o: ISA_FLAGS := -mavx2 -mfma
$(BUILD)/obj/kernels/tabm_avx512.o: ISA_FLAGS := -mavx512f -mavx2 -mfma

$(LIB_A): $(LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(LIB_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS)
	$(Q)ln -sf libopecom.so.$(VERSION) $(BUILD)/$(SONAME)
	$(Q)ln -sf $(SONAME) $(BUILD)/libopecom.so

$(BUILD)/tools/%.o: tools/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(CONVERT): $(patsubst tools/%.c,$(BUILD)/tools/%.o,$(CONVERT_SRC)) $(LIB_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -ljansson $(LIB_LIBS)

$(CLI): $(patsubst tools/%.c,$(BUILD)/tools/%.o,$(CLI_SRC)) $(LIB_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcsv -ljansson $(LIB_LIBS)

$(EMBED): examples/embed/embed.c $(LIB_A)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS)

$(BUILD)/examples/server/%.o: examples/server/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(MARIADB_CFLAGS) -MMD -MP -c $< -o $@

# The one schema (examples/server/schema.sql) as a C string, comments removed.
SCHEMA_C := $(BUILD)/examples/server/schema.c
$(SCHEMA_C): examples/server/schema.sql
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GEN     $@")
	$(Q){ echo '/* made by the Makefile from examples/server/schema.sql */'; \
	  echo 'const char srv_schema_sql[] ='; \
	  sed -e '/^--/d' -e '/^$$/d' -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$$/\\n"/' $<; \
	  echo ';'; } > $@

$(BUILD)/examples/server/schema.o: $(SCHEMA_C)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(SERVER): $(patsubst %.c,$(BUILD)/%.o,$(SERVER_SRC)) $(BUILD)/examples/server/schema.o $(LIB_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(SERVER_LIBS) $(LIB_LIBS)

# ---------------------------------------------------------------------------
# Tests: one cmocka binary per module; tests may use library internals.
$(BUILD)/tests/%: tests/%.c tests/testutil.c $(LIB_A)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(LIB_CFLAGS) -Itests $(TEST_CFLAGS_$*) $(ALL_LDFLAGS) -o $@ $< tests/testutil.c \
	    $(LIB_A) $(TEST_LIBS) $(LIB_LIBS) $(TEST_LDFLAGS_$*)

# test_model makes the n-th allocation fail through the linker's --wrap.
TEST_LDFLAGS_test_model := -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=posix_memalign
# test_explain counts allocations the same way.
TEST_LDFLAGS_test_explain := $(TEST_LDFLAGS_test_model)
# test_session_live counts allocations to show the open-session walk makes none.
TEST_LDFLAGS_test_session_live := -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc
# The storage contract test links both backends and starts a mariadbd of its own.
STORE_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard examples/server/store_*.c)) $(BUILD)/examples/server/schema.o
$(BUILD)/tests/test_store: tests/test_store.c tests/testutil.c tests/mariadb_harness.h $(STORE_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(LIB_CFLAGS) -Itests -Iexamples/server $(MARIADB_CFLAGS) $(ALL_LDFLAGS) -o $@ $< \
	    tests/testutil.c $(STORE_OBJ) $(LIB_A) $(TEST_LIBS) -lsqlite3 $(MARIADB_LIBS) $(LIB_LIBS)
# The server tests start build/opecom-server and parse its JSON replies;
# test_server and test_server_track run once per backend, SQLite and MariaDB.
TEST_CFLAGS_test_server := $(MARIADB_CFLAGS)
TEST_LDFLAGS_test_server := -ljansson -lsqlite3 $(MARIADB_LIBS)
$(BUILD)/tests/test_server: $(SERVER) tests/server_backends.h tests/mariadb_harness.h
# The reload test swaps the default model with a copy whose logits are
# shifted (tests/shift_model.py), and runs wrk against the server meanwhile;
# a copy whose first feature has another name is a valid file the server
# must refuse (it does not take the UCI features).
SHIFTED_MODEL := $(BUILD)/test-models/shoppers-shifted.opm
RENAMED_MODEL := $(BUILD)/test-models/shoppers-renamed.opm
$(SHIFTED_MODEL): $(DEFAULT_MODEL) tests/shift_model.py $(CONVERT)
	@mkdir -p $(dir $@)
	$(Q)$(PYTHON) tests/shift_model.py models/shoppers-tabm-k4.npz 1.5 $(BUILD)/test-models/shifted.npz
	$(Q)$(CONVERT) --weights $(BUILD)/test-models/shifted.npz \
	    --spec models/shoppers-tabm-k4.spec.json -o $@ >/dev/null
$(RENAMED_MODEL): $(DEFAULT_MODEL) $(CONVERT)
	@mkdir -p $(dir $@)
	$(Q)sed 's/"Administrative"/"Admin_Pages"/' models/shoppers-tabm-k4.spec.json \
	    > $(BUILD)/test-models/renamed.spec.json
	$(Q)$(CONVERT) --weights models/shoppers-tabm-k4.npz \
	    --spec $(BUILD)/test-models/renamed.spec.json -o $@ >/dev/null
TEST_LDFLAGS_test_server_reload := -ljansson
$(BUILD)/tests/test_server_reload: $(SERVER) $(SHIFTED_MODEL) $(RENAMED_MODEL)
# Three replicas behind nginx on a real MariaDB (tests/mariadb_harness.h).
TEST_CFLAGS_test_replicas := $(MARIADB_CFLAGS)
TEST_LDFLAGS_test_replicas := -ljansson $(MARIADB_LIBS)
$(BUILD)/tests/test_replicas: $(SERVER) tests/mariadb_harness.h
TEST_LDFLAGS_test_server_config := -ljansson
$(BUILD)/tests/test_server_config: $(SERVER)
TEST_LDFLAGS_test_server_drift := -ljansson
$(BUILD)/tests/test_server_drift: $(SERVER)
TEST_CFLAGS_test_server_track := $(MARIADB_CFLAGS)
TEST_LDFLAGS_test_server_track := -ljansson -lsqlite3 $(MARIADB_LIBS)
$(BUILD)/tests/test_server_track: $(SERVER) $(CLI) tests/server_backends.h tests/mariadb_harness.h

# The browser test drives Debian's chromium with playwright-core from npm
# (its install script would download browsers: skipped). npm may warn that
# its own node is too old for playwright-core: the test runs under e2e-node's.
PLAYWRIGHT ?= playwright-core@1.64.1
E2E_NODE   := build/e2e-node/node_modules/playwright-core/package.json
$(E2E_NODE):
	@mkdir -p build/e2e-node
	$(Q)[ -f build/e2e-node/package.json ] || echo '{"private": true}' > build/e2e-node/package.json
	cd build/e2e-node && npm install --ignore-scripts --no-audit --no-fund --no-save $(PLAYWRIGHT)

# playwright-core needs Node.js 20 or newer. Where the node on PATH is older
# (Debian 12 has 18) or missing, a pinned Node 20 comes from the npm registry:
# node-linux-<arch> holds the official binary and has no install script.
# build/e2e-node/node is the node the browser test runs with.
NODE_VERSION ?= 20.20.2
NODE_ARCH    := $(patsubst x86_64,x64,$(patsubst aarch64,arm64,$(shell uname -m)))
NODE_DIR     := build/node-$(NODE_VERSION)
NODE_PINNED  := $(NODE_DIR)/node_modules/node-linux-$(NODE_ARCH)/bin/node
.PHONY: e2e-node
e2e-node: $(E2E_NODE)
	$(Q)if node -e 'process.exit(parseInt(process.versions.node) < 20 ? 1 : 0)' 2>/dev/null; then \
	    ln -sf "$$(command -v node)" build/e2e-node/node; \
	else \
	    [ -x $(NODE_PINNED) ] || { \
	        echo "node on PATH is older than 20 or missing: Node $(NODE_VERSION) into $(NODE_DIR)"; \
	        mkdir -p $(NODE_DIR) && echo '{"private": true}' > $(NODE_DIR)/package.json && \
	        (cd $(NODE_DIR) && npm install --ignore-scripts --no-audit --no-fund --no-save \
	            node-linux-$(NODE_ARCH)@$(NODE_VERSION)) && [ -x $(NODE_PINNED) ] || exit 1; }; \
	    ln -sf $(CURDIR)/$(NODE_PINNED) build/e2e-node/node; \
	fi

# Every test program runs under a time limit (tests/run.sh): TEST_TIMEOUT
# seconds each, 600 by default; one that runs out counts as failed.
TEST_TIMEOUT ?= 600
TEST_ENV     := BUILD=$(BUILD) PYTHON=$(PYTHON) TEST_TIMEOUT=$(TEST_TIMEOUT)
test: test-deps all $(TEST_BIN) $(REPLAY_BIN) e2e-node
	$(Q)$(TEST_ENV) tests/run.sh $(TEST_BIN)
	$(Q)for t in $(FUZZ_TARGETS); do \
	    $(TEST_ENV) tests/run.sh --cmd $(BUILD)/fuzz/replay_$$t tests/fuzz/corpus/$$t || exit 1; done
	$(Q)$(TEST_ENV) tests/run.sh --cmd build/e2e-node/node tests/e2e/store.mjs build/e2e-node
	$(Q)$(TEST_ENV) tests/run.sh --cmd $(PYTHON) tests/deploy/test_deploy.py
	$(Q)$(TEST_ENV) tests/run.sh --cmd $(PYTHON) tests/alerts/live.py
	$(Q)$(TEST_ENV) tests/run.sh --cmd $(PYTHON) tests/retrain/test_retrain.py

# ---------------------------------------------------------------------------
# Fuzz targets (tests/fuzz): `make test` replays the committed corpus through
# replay.c with the normal compiler; `make fuzz` runs libFuzzer (clang) for
# FUZZ_SECONDS per target, adding what it finds to build/fuzz-corpus/.
$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(CONVERT_LIB) $(LIB_A)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/fuzz $(ALL_LDFLAGS) -o $@ $< tests/fuzz/replay.c \
	    $(CONVERT_LIB) $(LIB_A) -ljansson $(LIB_LIBS)

fuzz:
	$(Q)command -v clang >/dev/null || { echo "make fuzz needs clang: apt-get install -y clang"; exit 1; }
	$(MAKE) CC=clang SANITIZE=fuzzer-no-link,address,undefined BUILD=$(FUZZ_BUILD) lib \
	    $(patsubst tools/%.c,$(FUZZ_BUILD)/tools/%.o,$(filter-out tools/convert/main.c,$(CONVERT_SRC)))
	$(Q)for t in $(FUZZ_TARGETS); do \
	    clang -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude -Itests/fuzz -g -O1 \
	        -fsanitize=fuzzer,address,undefined -o $(FUZZ_BUILD)/fuzz_$$t tests/fuzz/fuzz_$$t.c \
	        $(patsubst tools/%.c,$(FUZZ_BUILD)/tools/%.o,$(filter-out tools/convert/main.c,$(CONVERT_SRC))) \
	        $(FUZZ_BUILD)/libopecom.a -ljansson $(LIB_LIBS) || exit 1; \
	    mkdir -p build/fuzz-corpus/$$t; \
	    $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	        build/fuzz-corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

# ---------------------------------------------------------------------------
# PORT=8080 and DB=build/demo.db by default; the server prints its URLs. A new
# database first gets a synthetic shopping history (tools/seed_store.py), so
# pages have values and bounce and exit rates for live sessions to be scored with.
PORT ?= 8080
DB   ?= $(BUILD)/demo.db
run: run-deps all
	$(Q)[ -s $(DB) ] || $(PYTHON) tools/seed_store.py --server $(SERVER) --db $(DB)
	$(SERVER) --port $(PORT) --db $(DB) --model $(DEFAULT_MODEL)

# ---------------------------------------------------------------------------
# Default model: retrain with PyTorch, then convert.
model:
	$(Q)tools/install-deps.sh train
	$(PYTHON) tools/train_tabm.py --out-dir models --name shoppers-tabm-k4 \
	    --reference-out tests/data/reference.csv
	$(MAKE) $(CONVERT)
	$(CONVERT) --weights models/shoppers-tabm-k4.npz --spec models/shoppers-tabm-k4.spec.json \
	    -o $(DEFAULT_MODEL)

# CARD_MODELS=card: only the card's three-model table (about 5 minutes);
# all: every configuration tried (about an hour). Results are cached in build/cv.
CARD_MODELS ?= all
card:
	$(Q)tools/install-deps.sh train
	$(PYTHON) tools/cv_report.py --out build/cv --models $(CARD_MODELS)

# ---------------------------------------------------------------------------
# Benchmark (never part of `make test`): every kernel that loads, PyTorch and
# ONNX Runtime on one core; prints one table and writes docs/benchmarks.md.
BENCH      := $(BUILD)/opecom-bench
BENCH_OBJ  := $(patsubst tools/%.c,$(BUILD)/tools/%.o,$(wildcard tools/bench/*.c))
ORT_NODE   ?= onnxruntime-node@1.30.0
BENCH_NODE := build/bench-node/node_modules/onnxruntime-node/package.json

.PHONY: bench bench-deps

# The FMA-peak micro-benchmarks are the only files built for AVX2 / AVX-512.
$(BUILD)/tools/bench/fma_avx2.o: tools/bench/fma_avx2.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -mavx2 -mfma -MMD -MP -c $< -o $@

$(BUILD)/tools/bench/fma_avx512.o: tools/bench/fma_avx512.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -mavx512f -MMD -MP -c $< -o $@

$(BENCH): $(BENCH_OBJ) $(LIB_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIB_LIBS)

# onnxruntime-node's install script would download GPU files: skip it, the
# CPU runtime is inside the package.
$(BENCH_NODE):
	@mkdir -p build/bench-node
	$(Q)[ -f build/bench-node/package.json ] || echo '{"private": true}' > build/bench-node/package.json
	cd build/bench-node && npm install --ignore-scripts --no-audit --no-fund --no-save $(ORT_NODE)

bench-deps:
	$(Q)tools/install-deps.sh bench

bench: bench-deps all $(BENCH) $(BENCH_NODE)
	$(PYTHON) tools/bench/bench.py --build $(BUILD)

# ---------------------------------------------------------------------------
install: lib $(CONVERT) $(CLI) $(SERVER)
	install -d $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(BINDIR)
	install -m 644 include/opecom.h $(DESTDIR)$(INCDIR)/
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf libopecom.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libopecom.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' tools/opecom.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/opecom.pc
	install -m 755 $(CONVERT) $(CLI) $(SERVER) $(DESTDIR)$(BINDIR)/

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/opecom.h $(DESTDIR)$(LIBDIR)/libopecom.* \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/opecom.pc $(DESTDIR)$(BINDIR)/opecom $(DESTDIR)$(BINDIR)/opecom-convert \
	    $(DESTDIR)$(BINDIR)/opecom-server

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(wildcard $(BUILD)/tools/*/*.d) $(wildcard $(BUILD)/examples/server/*.d)
