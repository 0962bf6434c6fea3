/* The configuration loader: one table, one pass, one error naming the variable. */
#include "nt_config.h"

#include "nt_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct nt_config {
    const nt_cfg_spec *specs;
    size_t n;
    char **values; /* NULL when unset */
    long long *ints;
    bool *set;
};

static const char *env_lookup(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, true;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, true;
    }
    return false;
}

void nt_config_destroy(nt_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n; i++)
        free(cfg->values[i]);
    free(cfg->values);
    free(cfg->ints);
    free(cfg->set);
    free(cfg);
}

nt_status nt_config_load(const nt_cfg_spec *specs, size_t n, nt_cfg_lookup lookup, void *ctx,
                         nt_config **out, char *err, size_t errlen)
{
    nt_status st = NT_EINVAL;
    nt_config *cfg = calloc(1, sizeof(*cfg));
    NT_ASSERT(cfg != NULL);
    cfg->specs = specs;
    cfg->n = n;
    cfg->values = calloc(n ? n : 1, sizeof(char *));
    cfg->ints = calloc(n ? n : 1, sizeof(long long));
    cfg->set = calloc(n ? n : 1, sizeof(bool));
    NT_ASSERT(cfg->values && cfg->ints && cfg->set);
    if (lookup == NULL)
        lookup = env_lookup;

    for (size_t i = 0; i < n; i++) {
        const nt_cfg_spec *s = &specs[i];
        const char *v = lookup(ctx, s->name);
        if (v != NULL && v[0] == '\0')
            v = NULL; /* an empty variable counts as unset */
        cfg->set[i] = v != NULL;
        if (v == NULL)
            v = s->def;
        if (v == NULL) {
            if (s->required) {
                snprintf(err, errlen, "%s: is required", s->name);
                goto out;
            }
            continue;
        }
        /* Values are shown in errors, but never secret ones. */
        const char *shown = s->secret ? "****" : v;
        if (s->type == NT_CFG_INT) {
            char *end = NULL;
            errno = 0;
            long long x = strtoll(v, &end, 10);
            if (errno != 0 || end == v || *end != '\0' || x < s->min || x > s->max) {
                snprintf(err, errlen, "%s: must be an integer from %lld to %lld, got '%.64s'",
                         s->name, s->min, s->max, shown);
                goto out;
            }
            cfg->ints[i] = x;
        } else if (s->type == NT_CFG_BOOL) {
            bool b;
            if (!parse_bool(v, &b)) {
                snprintf(err, errlen, "%s: must be true or false, got '%.64s'", s->name, shown);
                goto out;
            }
            cfg->ints[i] = b;
        }
        cfg->values[i] = strdup(v);
        NT_ASSERT(cfg->values[i] != NULL);
    }
    *out = cfg;
    cfg = NULL;
    st = NT_OK;
out:
    nt_config_destroy(cfg);
    return st;
}

nt_config *nt_config_load_or_exit(const char *module, const nt_cfg_spec *specs, size_t n)
{
    char err[512];
    nt_config *cfg = NULL;
    if (nt_config_load(specs, n, NULL, NULL, &cfg, err, sizeof(err)) != NT_OK) {
        fprintf(stderr, "%s: configuration error: %s\n", module, err);
        exit(2);
    }
    return cfg;
}

nt_config *nt_config_load_service_or_exit(const char *module, const nt_cfg_spec *specs, size_t n)
{
    nt_config *cfg = nt_config_load_or_exit(module, specs, n);
    nt_log_level level;
    if (nt_log_level_parse(nt_config_str(cfg, "NATTER_LOG_LEVEL"), &level) != NT_OK) {
        fprintf(stderr,
                "%s: configuration error: NATTER_LOG_LEVEL: must be debug, info, warn or error\n",
                module);
        nt_config_destroy(cfg);
        exit(2);
    }
    nt_log_set_level(level);
    return cfg;
}

void nt_config_db_path(const nt_config *cfg, char *out, size_t outlen)
{
    const char *db = nt_config_str(cfg, "NATTER_DB_PATH");
    if (db != NULL)
        snprintf(out, outlen, "%s", db);
    else
        snprintf(out, outlen, "%s/natter.db", nt_config_str(cfg, "NATTER_DATA_DIR"));
}

static size_t find(const nt_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n; i++) {
        if (strcmp(cfg->specs[i].name, name) == 0)
            return i;
    }
    fprintf(stderr, "nt_config: '%s' is not in the table\n", name);
    NT_ASSERT(0);
    return 0;
}

const char *nt_config_str(const nt_config *cfg, const char *name)
{
    return cfg->values[find(cfg, name)];
}

long long nt_config_int(const nt_config *cfg, const char *name)
{
    size_t i = find(cfg, name);
    NT_ASSERT(cfg->specs[i].type != NT_CFG_STR);
    return cfg->ints[i];
}

bool nt_config_bool(const nt_config *cfg, const char *name)
{
    size_t i = find(cfg, name);
    NT_ASSERT(cfg->specs[i].type == NT_CFG_BOOL);
    return cfg->ints[i] != 0;
}

bool nt_config_is_set(const nt_config *cfg, const char *name)
{
    return cfg->set[find(cfg, name)];
}

void nt_config_log(const nt_config *cfg, const char *module)
{
    for (size_t i = 0; i < cfg->n; i++) {
        const nt_cfg_spec *s = &cfg->specs[i];
        const char *v = cfg->values[i];
        char safe[1024];
        if (v == NULL) {
            v = "(unset)";
        } else if (s->secret) {
            v = "****";
        } else {
            /* URLs may carry user:password@; the rest of a URL is fine to show. */
            nt_log_redact_url(v, safe, sizeof(safe));
            v = safe;
        }
        nt_log_info(module, "config %s=%s%s", s->name, v, cfg->set[i] ? "" : " (default)");
    }
}
