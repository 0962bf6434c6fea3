# auth: users, the session cache, Clerk profiles and the local token issuer.
AUTH_SRCS := $(wildcard services/auth/*.c)
AUTH_OBJS := $(AUTH_SRCS:%.c=$(OBJ)/%.o)
ALL_OBJS  += $(AUTH_OBJS)
ALL_BINS  += $(BIN)/auth

$(BIN)/auth: $(AUTH_OBJS) $(NT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
