# The benchmarks (docs/benchmarks.md). `make bench` runs both; `make
# bench-edge` only the second.
#
# The send benchmark: chat.messages.send over NATS at 1, 16 and 256 concurrent
# senders, group commit on and off. It starts its own processes (it does not
# link the Criterion harness).
BENCH_SRCS := tests/bench/bench_send.c
BENCH_OBJS := $(BENCH_SRCS:%.c=$(OBJ)/%.o)
ALL_OBJS   += $(BENCH_OBJS)
BENCH_BIN  := $(BUILD)/tests/bench_send

$(BENCH_BIN): $(BENCH_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# make test builds it too, so that it never rots between benchmark runs.
tests-build: $(BENCH_BIN)

# The WebSocket edge benchmark: memory per idle socket at 10 000 sockets, then
# fan-out to 1 000 sockets in one room (tests/bench/bench_edge.mjs, in Node;
# edge.sh installs its `ws` package and raises the descriptor limit).

# Like `all`: install what is missing first, then build in a sub-make.
bench: setup-once
	@$(MAKE) --no-print-directory bins $(BENCH_BIN)
	BUILD=$(BUILD) $(BENCH_BIN)
	BUILD=$(BUILD) bash tests/bench/edge.sh

bench-edge: setup-once
	@$(MAKE) --no-print-directory bins
	BUILD=$(BUILD) bash tests/bench/edge.sh
.PHONY: bench bench-edge
