# edge: the WebSocket endpoint (Phoenix Channels v2 on libwebsockets).
EDGE_SRCS := $(wildcard services/edge/*.c)
EDGE_OBJS := $(EDGE_SRCS:%.c=$(OBJ)/%.o)
ALL_OBJS  += $(EDGE_OBJS)
ALL_BINS  += $(BIN)/edge
EDGE_LIBS  = $(shell pkg-config --libs libwebsockets libuv 2>/dev/null)

$(BIN)/edge: $(EDGE_OBJS) $(NT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(EDGE_LIBS) $(LDLIBS)
