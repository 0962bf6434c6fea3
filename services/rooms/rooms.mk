# rooms: chat rooms, members, roles, invitations and authorisation.
ROOMS_SRCS := $(wildcard services/rooms/*.c)
ROOMS_OBJS := $(ROOMS_SRCS:%.c=$(OBJ)/%.o)
ALL_OBJS   += $(ROOMS_OBJS)
ALL_BINS   += $(BIN)/rooms

$(BIN)/rooms: $(ROOMS_OBJS) $(NT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
