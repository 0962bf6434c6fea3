/* Configuration: environment variables only, parsed once at start from a
 * declared table. Bad values are reported by name; secrets are masked when the
 * effective configuration is logged. No getenv anywhere else. */
#ifndef NT_CONFIG_H
#define NT_CONFIG_H

#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum { NT_CFG_STR, NT_CFG_INT, NT_CFG_BOOL } nt_cfg_type;

typedef struct {
    const char *name; /* the environment variable */
    nt_cfg_type type;
    const char *def;    /* default text, or NULL for "unset" */
    long long min, max; /* bounds for NT_CFG_INT */
    bool required;      /* must be set and non-empty */
    bool secret;        /* masked in nt_config_log */
    const char *help;   /* one line for the README table */
} nt_cfg_spec;

typedef struct nt_config nt_config;

/* Where values come from: getenv by default; tests pass their own. */
typedef const char *(*nt_cfg_lookup)(void *ctx, const char *name);

/* Reads every variable of specs through lookup (NULL means getenv), applies
 * defaults and checks types and bounds. On failure returns NT_EINVAL and
 * writes a message naming the variable ("NATTER_HTTP_PORT: must be an integer
 * from 1 to 65535, got 'abc'") to err. The specs must outlive the config. */
nt_status nt_config_load(const nt_cfg_spec *specs, size_t n, nt_cfg_lookup lookup, void *ctx,
                         nt_config **out, char *err, size_t errlen);

/* As nt_config_load from the environment; on failure prints the message to
 * stderr and exits with status 2. For main(). */
nt_config *nt_config_load_or_exit(const char *module, const nt_cfg_spec *specs, size_t n);

/* The value of name, which must be in the table (NT_ASSERT). NULL when unset. */
const char *nt_config_str(const nt_config *cfg, const char *name);
long long nt_config_int(const nt_config *cfg, const char *name);
bool nt_config_bool(const nt_config *cfg, const char *name);

/* True when name was set in the environment (not just defaulted). */
bool nt_config_is_set(const nt_config *cfg, const char *name);

/* Logs every effective value at info level, secrets as "****" (or "(unset)"). */
void nt_config_log(const nt_config *cfg, const char *module);

void nt_config_destroy(nt_config *cfg);

#endif
