# gateway: the REST API over libmicrohttpd, one NATS request per route.
GW_SRCS := $(wildcard services/gateway/*.c)
GW_OBJS := $(GW_SRCS:%.c=$(OBJ)/%.o)
# Everything but main.c, so unit tests can link the gateway's pure modules.
GW_LIB_OBJS := $(filter-out $(OBJ)/services/gateway/main.o,$(GW_OBJS))
ALL_OBJS += $(GW_OBJS)
ALL_BINS += $(BIN)/gateway

$(BIN)/gateway: $(GW_OBJS) $(NT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
