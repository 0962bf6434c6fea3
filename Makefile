# Natter: one non-recursive Makefile for building, running and testing everything.
# Each folder contributes a .mk fragment; all output goes under $(BUILD).
#
#   make            build the services and the shared library
#   make run        start the whole system on embedded defaults
#   make test       install what is missing, then run every test tier
#   make bench      the benchmarks: message sends, then the WebSocket edge (docs/benchmarks.md)
#   make bench-edge the WebSocket edge benchmark alone
#   make check      static checks (format, cppcheck)
#   make fmt        reformat the C sources in place
#   make SANITIZE=address,undefined test-unit   build and test under sanitizers

.DEFAULT_GOAL := all
SHELL := /bin/bash

CC       ?= cc
SANITIZE ?=
ifeq ($(SANITIZE),)
BUILD    ?= build
else
BUILD    ?= build/sanitize
endif

PKGS      := libnats libmicrohttpd libcjson libcurl sqlite3 libcrypto
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 -Wno-format-nonliteral
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) -MMD -MP -Ishared $(PKG_CFLAGS)
ifeq ($(CI),true)
CFLAGS  += -Werror
endif
ifneq ($(SANITIZE),)
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif
LDLIBS  += $(PKG_LIBS) -lpthread -lm

BIN := $(BUILD)/bin
OBJ := $(BUILD)/obj

# Fragments add to these lists.
ALL_BINS :=
ALL_OBJS :=
TEST_BINS :=

include shared/shared.mk
include services/auth/auth.mk
include services/gateway/gateway.mk
include services/rooms/rooms.mk
include services/messages/messages.mk
include services/edge/edge.mk
include services/presence/presence.mk
include tests/tests.mk
include tests/bench/bench.mk

.PHONY: all bins setup setup-once run test test-unit test-integration check fmt clean bench

# `all` first makes sure the packages are there (cheap when nothing is missing:
# one dpkg query per package), then builds in a sub-make so that pkg-config sees
# the libraries it may just have installed.
all: setup-once
	@$(MAKE) --no-print-directory bins

bins: $(ALL_BINS)

setup-once:
	@bash scripts/setup.sh
setup: setup-once

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

run: all
	@bash scripts/run.sh

test:
	@bash scripts/test.sh

check: setup-once
	@bash scripts/check.sh

fmt:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(ALL_OBJS:.o=.d)
