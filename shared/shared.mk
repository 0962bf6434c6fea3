# The shared C library (prefix nt_), linked statically into every process.
NT_SRCS := $(wildcard shared/*.c)
NT_OBJS := $(NT_SRCS:%.c=$(OBJ)/%.o)
NT_LIB  := $(BUILD)/lib/libnt.a
ALL_OBJS += $(NT_OBJS)

$(NT_LIB): $(NT_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(AR) rcs $@ $^
