/* Unit tests of the configuration loader, with a table instead of the environment. */
#include "nt_config.h"

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <string.h>

static const nt_cfg_spec specs[] = {
    {"PORT", NT_CFG_INT, "8080", 1, 65535, false, false, "port"},
    {"NAME", NT_CFG_STR, "natter", 0, 0, false, false, "name"},
    {"DEBUG", NT_CFG_BOOL, "false", 0, 0, false, false, "debug"},
    {"SECRET", NT_CFG_STR, NULL, 0, 0, false, true, "a secret"},
    {"NEEDED", NT_CFG_STR, NULL, 0, 0, true, false, "required"},
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

static const char *const *env;

static const char *lookup(void *ctx, const char *name)
{
    (void)ctx;
    size_t n = strlen(name);
    for (size_t i = 0; env[i] != NULL; i++) {
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return env[i] + n + 1;
    }
    return NULL;
}

static nt_status load(const char *const *e, nt_config **cfg, char *err)
{
    env = e;
    return nt_config_load(specs, NSPECS, lookup, NULL, cfg, err, 256);
}

Test(nt_config, applies_defaults_and_reads_values)
{
    const char *e[] = {"NEEDED=yes", "DEBUG=on", "SECRET=hunter2", NULL};
    nt_config *cfg = NULL;
    char err[256];
    cr_assert_eq(load(e, &cfg, err), NT_OK, "%s", err);
    cr_assert_eq(nt_config_int(cfg, "PORT"), 8080);
    cr_assert_str_eq(nt_config_str(cfg, "NAME"), "natter");
    cr_assert(nt_config_bool(cfg, "DEBUG"));
    cr_assert_str_eq(nt_config_str(cfg, "SECRET"), "hunter2");
    cr_assert(nt_config_is_set(cfg, "SECRET"));
    cr_assert_not(nt_config_is_set(cfg, "PORT"));
    nt_config_destroy(cfg);
}

Test(nt_config, names_the_bad_variable)
{
    nt_config *cfg = NULL;
    char err[256];
    const char *e1[] = {"NEEDED=x", "PORT=abc", NULL};
    cr_assert_eq(load(e1, &cfg, err), NT_EINVAL);
    cr_assert_str_eq(err, "PORT: must be an integer from 1 to 65535, got 'abc'");
    const char *e2[] = {"NEEDED=x", "PORT=70000", NULL};
    cr_assert_eq(load(e2, &cfg, err), NT_EINVAL);
    cr_assert(strncmp(err, "PORT:", 5) == 0);
    const char *e3[] = {"NEEDED=x", "PORT=12x", NULL};
    cr_assert_eq(load(e3, &cfg, err), NT_EINVAL);
    const char *e4[] = {"PORT=1", NULL};
    cr_assert_eq(load(e4, &cfg, err), NT_EINVAL);
    cr_assert_str_eq(err, "NEEDED: is required");
    const char *e5[] = {"NEEDED=x", "DEBUG=maybe", NULL};
    cr_assert_eq(load(e5, &cfg, err), NT_EINVAL);
    cr_assert_str_eq(err, "DEBUG: must be true or false, got 'maybe'");
}

Test(nt_config, empty_counts_as_unset)
{
    const char *e[] = {"NEEDED=x", "NAME=", NULL};
    nt_config *cfg = NULL;
    char err[256];
    cr_assert_eq(load(e, &cfg, err), NT_OK);
    cr_assert_str_eq(nt_config_str(cfg, "NAME"), "natter");
    cr_assert_null(nt_config_str(cfg, "SECRET"));
    nt_config_destroy(cfg);
}

Test(nt_config, never_shows_a_secret)
{
    static const nt_cfg_spec s[] = {
        {"SECRET_INT", NT_CFG_INT, NULL, 0, 10, false, true, "secret number"},
    };
    const char *e[] = {"SECRET_INT=super-secret-value", NULL};
    env = e;
    nt_config *cfg = NULL;
    char err[256];
    cr_assert_eq(nt_config_load(s, 1, lookup, NULL, &cfg, err, sizeof(err)), NT_EINVAL);
    cr_assert(strstr(err, "super-secret-value") == NULL, "%s", err);
    cr_assert(strstr(err, "SECRET_INT") != NULL);
}

Test(nt_config, masks_secrets_in_the_startup_dump, .init = cr_redirect_stderr)
{
    const char *e[] = {"NEEDED=nats://bob:pa55@h1:4222,tls://h2:4222", "SECRET=hunter2", NULL};
    nt_config *cfg = NULL;
    char err[256];
    cr_assert_eq(load(e, &cfg, err), NT_OK);
    nt_config_log(cfg, "test");
    nt_config_destroy(cfg);
    fflush(stderr);
    char buf[4096] = "";
    FILE *f = cr_get_redirected_stderr();
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    cr_assert(strstr(buf, "SECRET=****") != NULL, "%s", buf);
    cr_assert(strstr(buf, "hunter2") == NULL, "%s", buf);
    cr_assert(strstr(buf, "PORT=8080 (default)") != NULL, "%s", buf);
    cr_assert(strstr(buf, "pa55") == NULL, "URL credentials are not shown: %s", buf);
    cr_assert(strstr(buf, "NEEDED=nats://h1:4222,tls://h2:4222") != NULL, "%s", buf);
}

Test(nt_config, the_service_table_names_the_database_file)
{
    static const nt_cfg_spec svc[] = {NT_SERVICE_CONFIG_SPECS};
    char path[256], err[256];
    nt_config *cfg = NULL;
    const char *e1[] = {"NATTER_DATA_DIR=/srv/natter", NULL};
    env = e1;
    cr_assert_eq(nt_config_load(svc, sizeof(svc) / sizeof(svc[0]), lookup, NULL, &cfg, err, 256),
                 NT_OK, "%s", err);
    nt_config_db_path(cfg, path, sizeof(path));
    cr_assert_str_eq(path, "/srv/natter/natter.db");
    cr_assert_str_eq(nt_config_str(cfg, "NATTER_LOG_LEVEL"), "info");
    nt_config_destroy(cfg);
    const char *e2[] = {"NATTER_DATA_DIR=/srv/natter", "NATTER_DB_PATH=/var/db/x.db", NULL};
    env = e2;
    cr_assert_eq(nt_config_load(svc, sizeof(svc) / sizeof(svc[0]), lookup, NULL, &cfg, err, 256),
                 NT_OK, "%s", err);
    nt_config_db_path(cfg, path, sizeof(path));
    cr_assert_str_eq(path, "/var/db/x.db");
    nt_config_destroy(cfg);
}
