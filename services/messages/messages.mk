# messages: send, history, edit and delete, group commit, per-user send limits.
MSGS_SRCS := $(wildcard services/messages/*.c)
MSGS_OBJS := $(MSGS_SRCS:%.c=$(OBJ)/%.o)
ALL_OBJS  += $(MSGS_OBJS)
ALL_BINS  += $(BIN)/messages

$(BIN)/messages: $(MSGS_OBJS) $(NT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
