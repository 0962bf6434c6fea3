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

/* The variables every NATS service with a store reads, to splice into its
 * table: static const nt_cfg_spec specs[] = {NT_SERVICE_CONFIG_SPECS, ...}. */
/* clang-format off */
#define NT_SERVICE_CONFIG_SPECS                                                                    \
    {"NATS_URL", NT_CFG_STR, "nats://127.0.0.1:4222", 0, 0, false, false,                          \
     "NATS servers, comma-separated"},                                                             \
    {"NATTER_DATA_DIR", NT_CFG_STR, "data", 0, 0, false, false,                                    \
     "data directory: the SQLite file (and auth's local signing key)"},                            \
    {"NATTER_DB_PATH", NT_CFG_STR, NULL, 0, 0, false, false,                                       \
     "SQLite file (default: NATTER_DATA_DIR/natter.db)"},                                          \
    {"NATTER_MIGRATIONS_DIR", NT_CFG_STR, "schemas/migrations", 0, 0, false, false,                \
     "folder of NNNN_name.sql migrations"},                                                        \
    {"NATTER_KV_PREFIX", NT_CFG_STR, "natter", 0, 0, false, false, "prefix of the KV buckets"},    \
    {"NATTER_KV_REPLICAS", NT_CFG_INT, "1", 1, 5, false, false, "replicas of each KV bucket"},     \
    {"NATTER_LOG_LEVEL", NT_CFG_STR, "info", 0, 0, false, false, "debug, info, warn or error"}
/* clang-format on */

/* nt_config_load_or_exit for a table holding NT_SERVICE_CONFIG_SPECS, then
 * sets the log level from NATTER_LOG_LEVEL (exit 2 naming it when it is not
 * debug, info, warn or error). Logging the values stays the caller's, after
 * its own checks. For main(). */
nt_config *nt_config_load_service_or_exit(const char *module, const nt_cfg_spec *specs, size_t n);

/* The SQLite file of a NT_SERVICE_CONFIG_SPECS table: NATTER_DB_PATH, or
 * NATTER_DATA_DIR/natter.db, written to out. */
void nt_config_db_path(const nt_config *cfg, char *out, size_t outlen);

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
