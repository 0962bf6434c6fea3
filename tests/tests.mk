# Test binaries. Unit tests (Criterion, no broker, no sockets) are one binary;
# integration tests (real nats-server, real binaries) are another.
UNIT_SRCS := $(wildcard tests/unit/*/*.c)
UNIT_OBJS := $(UNIT_SRCS:%.c=$(OBJ)/%.o)
ALL_OBJS  += $(UNIT_OBJS)
UNIT_BIN  := $(BUILD)/tests/unit

INTEG_SRCS := $(wildcard tests/integration/*.c)
INTEG_OBJS := $(INTEG_SRCS:%.c=$(OBJ)/%.o)
ALL_OBJS   += $(INTEG_OBJS)
INTEG_BIN  := $(BUILD)/tests/integration

TEST_BINS += $(UNIT_BIN) $(INTEG_BIN)

# Unit tests also link the services' pure modules (everything but main.c).
AUTH_LIB_OBJS  := $(filter-out $(OBJ)/services/auth/main.o,$(AUTH_OBJS))
ROOMS_LIB_OBJS := $(filter-out $(OBJ)/services/rooms/main.o,$(ROOMS_OBJS))
MSGS_LIB_OBJS  := $(filter-out $(OBJ)/services/messages/main.o,$(MSGS_OBJS))
EDGE_LIB_OBJS  := $(filter-out $(OBJ)/services/edge/main.o,$(EDGE_OBJS))
PRES_LIB_OBJS  := $(filter-out $(OBJ)/services/presence/main.o,$(PRES_OBJS))

$(UNIT_BIN): $(UNIT_OBJS) $(AUTH_LIB_OBJS) $(ROOMS_LIB_OBJS) $(MSGS_LIB_OBJS) $(GW_LIB_OBJS) \
             $(EDGE_LIB_OBJS) $(PRES_LIB_OBJS) $(NT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(EDGE_LIBS) $(LDLIBS) -lcriterion

$(INTEG_BIN): $(INTEG_OBJS) $(NT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

tests-build: $(TEST_BINS)
.PHONY: tests-build
