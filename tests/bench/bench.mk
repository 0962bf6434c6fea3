# The send benchmark (`make bench`): chat.messages.send over NATS at 1, 16 and
# 256 concurrent senders, group commit on and off; see docs/benchmarks.md. The
# bench starts its own processes (it does not link the Criterion harness).
BENCH_SRCS := tests/bench/bench_send.c
BENCH_OBJS := $(BENCH_SRCS:%.c=$(OBJ)/%.o)
ALL_OBJS   += $(BENCH_OBJS)
BENCH_BIN  := $(BUILD)/tests/bench_send

$(BENCH_BIN): $(BENCH_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# make test builds it too, so that it never rots between benchmark runs.
tests-build: $(BENCH_BIN)

# Like `all`: install what is missing first, then build in a sub-make.
bench: setup-once
	@$(MAKE) --no-print-directory bins $(BENCH_BIN)
	BUILD=$(BUILD) $(BENCH_BIN)
.PHONY: bench
