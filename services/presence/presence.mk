# presence: who is online across every edge and who is in each room.
PRES_SRCS := $(wildcard services/presence/*.c)
PRES_OBJS := $(PRES_SRCS:%.c=$(OBJ)/%.o)
ALL_OBJS  += $(PRES_OBJS)
ALL_BINS  += $(BIN)/presence

$(BIN)/presence: $(PRES_OBJS) $(NT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
