/* Unit tests of static file serving: path checks (traversal in every
 * spelling), containment, fallback and content types. Uses a temporary
 * directory, no sockets. */
#include "../../../services/gateway/gw_static.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[64];
static char web[128];
static gw_static *st_web;

static void write_file(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot create %s", path);
    fputs(text, f);
    fclose(f);
}

static void mkdir_rel(const char *rel)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    cr_assert_eq(mkdir(path, 0755), 0, "mkdir %s", path);
}

/* base/web is the web root; base/secret.txt is outside it. */
static void setup(void)
{
    snprintf(base, sizeof(base), "/tmp/gw-static-XXXXXX");
    cr_assert_not_null(mkdtemp(base));
    snprintf(web, sizeof(web), "%s/web", base);
    mkdir_rel("web");
    mkdir_rel("web/_app");
    mkdir_rel("web/_app/immutable");
    mkdir_rel("web/docs");
    write_file("web/index.html", "<!doctype html>app");
    write_file("web/docs/index.html", "docs");
    write_file("web/_app/immutable/start.abc.js", "export{}");
    write_file("web/app.css", "body{}");
    write_file("web/.env", "SECRET=1");
    write_file("secret.txt", "outside");
    char target[256], link[256];
    snprintf(target, sizeof(target), "%s/secret.txt", base);
    snprintf(link, sizeof(link), "%s/web/escape.txt", base);
    cr_assert_eq(symlink(target, link), 0);
    cr_assert_eq(gw_static_create(web, &st_web), NT_OK);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    gw_static_destroy(st_web);
    st_web = NULL;
    nftw(base, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Opens url and returns the file's text (static buffer), or NULL. */
static const char *serve(const char *url, nt_status want, gw_file *f)
{
    static char text[256];
    nt_status st = gw_static_open(st_web, url, f);
    cr_assert_eq(st, want, "%s: status %d, want %d", url, st, want);
    if (st != NT_OK)
        return NULL;
    ssize_t n = read(f->fd, text, sizeof(text) - 1);
    close(f->fd);
    cr_assert_geq(n, 0);
    text[n] = '\0';
    cr_assert_eq((uint64_t)n, f->size);
    return text;
}

Test(gw_static, clean_path_accepts_ordinary_paths)
{
    char out[GW_STATIC_PATH_MAX];
    cr_assert_eq(gw_static_clean_path("/", out, sizeof(out)), NT_OK);
    cr_assert_str_eq(out, "");
    cr_assert_eq(gw_static_clean_path("/a/b.js", out, sizeof(out)), NT_OK);
    cr_assert_str_eq(out, "a/b.js");
    cr_assert_eq(gw_static_clean_path("/docs/", out, sizeof(out)), NT_OK);
    cr_assert_str_eq(out, "docs/");
    cr_assert_eq(gw_static_clean_path("/a b.txt", out, sizeof(out)), NT_OK);
    cr_assert_str_eq(out, "a b.txt");
    cr_assert_eq(gw_static_clean_path("/v1.2/x..y", out, sizeof(out)), NT_OK);
    cr_assert_str_eq(out, "v1.2/x..y", "dots inside a name are fine");
}

Test(gw_static, clean_path_refuses_traversal_in_every_spelling)
{
    /* Paths arrive decoded (MHD turned "%2e%2e" into ".." already). */
    const char *bad[] = {"/../secret.txt",
                         "/a/../../secret.txt",
                         "/..",
                         "/../",
                         "/a/..",
                         "/./index.html",
                         "/a/./b",
                         "/.",
                         "//etc/passwd",
                         "/a//b",
                         "/a\\..\\b",
                         "/\\etc",
                         "a/b",
                         ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char out[GW_STATIC_PATH_MAX];
        cr_assert_eq(gw_static_clean_path(bad[i], out, sizeof(out)), NT_EINVAL, "'%s'", bad[i]);
    }
    char out[GW_STATIC_PATH_MAX];
    cr_assert_eq(gw_static_clean_path(NULL, out, sizeof(out)), NT_EINVAL);
}

Test(gw_static, clean_path_does_not_decode_again)
{
    /* MHD decoded once; a '%' left is a literal character of the name. */
    struct {
        const char *in, *out;
    } cases[] = {
        {"/100%", "100%"},                           /* "/100%25" on the wire */
        {"/100%25", "100%25"},                       /* "/100%2525" on the wire */
        {"/%2e%2e/secret.txt", "%2e%2e/secret.txt"}, /* a harmless literal name */
        {"/a/%2e%2e%2f%2e%2e/x", "a/%2e%2e%2f%2e%2e/x"},
        {"/%2eenv", "%2eenv"},
        {"/%5c..%5cb", "%5c..%5cb"},
        {"/%zz", "%zz"},
        {"/%", "%"},
        {"/a%20b.txt", "a%20b.txt"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[GW_STATIC_PATH_MAX];
        cr_assert_eq(gw_static_clean_path(cases[i].in, out, sizeof(out)), NT_OK, "'%s'",
                     cases[i].in);
        cr_assert_str_eq(out, cases[i].out);
    }
}

Test(gw_static, clean_path_refuses_dotfiles)
{
    const char *hidden[] = {"/.env", "/.git/config", "/a/.htpasswd", "/.well-known/x", "/a/.%2e"};
    for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++) {
        char out[GW_STATIC_PATH_MAX];
        cr_assert_eq(gw_static_clean_path(hidden[i], out, sizeof(out)), NT_EFORBIDDEN, "'%s'",
                     hidden[i]);
    }
}

Test(gw_static, clean_path_refuses_what_does_not_fit)
{
    char out[8];
    cr_assert_eq(gw_static_clean_path("/abcdefgh", out, sizeof(out)), NT_ETOOBIG);
    cr_assert_eq(gw_static_clean_path("/abcdefg", out, sizeof(out)), NT_OK);
    cr_assert_str_eq(out, "abcdefg");
}

Test(gw_static, content_types_by_extension)
{
    cr_assert_str_eq(gw_static_content_type("index.html"), "text/html; charset=utf-8");
    cr_assert_str_eq(gw_static_content_type("_app/x.js"), "text/javascript; charset=utf-8");
    cr_assert_str_eq(gw_static_content_type("a.mjs"), "text/javascript; charset=utf-8");
    cr_assert_str_eq(gw_static_content_type("a.CSS"), "text/css; charset=utf-8");
    cr_assert_str_eq(gw_static_content_type("a.json"), "application/json");
    cr_assert_str_eq(gw_static_content_type("a.js.map"), "application/json");
    cr_assert_str_eq(gw_static_content_type("a.svg"), "image/svg+xml");
    cr_assert_str_eq(gw_static_content_type("a.png"), "image/png");
    cr_assert_str_eq(gw_static_content_type("a.jpg"), "image/jpeg");
    cr_assert_str_eq(gw_static_content_type("a.webp"), "image/webp");
    cr_assert_str_eq(gw_static_content_type("favicon.ico"), "image/x-icon");
    cr_assert_str_eq(gw_static_content_type("f.woff2"), "font/woff2");
    cr_assert_str_eq(gw_static_content_type("robots.txt"), "text/plain; charset=utf-8");
    cr_assert_str_eq(gw_static_content_type("a.exe"), "application/octet-stream");
    cr_assert_str_eq(gw_static_content_type("Makefile"), "application/octet-stream");
    cr_assert_str_eq(gw_static_content_type("dir.js/file"), "application/octet-stream");
}

Test(gw_static, cache_control_is_immutable_only_for_hashed_assets)
{
    cr_assert_str_eq(gw_static_cache_control("_app/immutable/start.abc.js"),
                     "public, max-age=31536000, immutable");
    cr_assert_str_eq(gw_static_cache_control("index.html"), "no-cache");
    cr_assert_str_eq(gw_static_cache_control("_app/version.json"), "no-cache");
}

Test(gw_static, serves_files_and_directory_indexes, .init = setup, .fini = teardown)
{
    gw_file f;
    cr_assert_str_eq(serve("/", NT_OK, &f), "<!doctype html>app");
    cr_assert_str_eq(f.content_type, "text/html; charset=utf-8");
    cr_assert_not(f.fallback);
    cr_assert_str_eq(serve("/app.css", NT_OK, &f), "body{}");
    cr_assert_str_eq(f.content_type, "text/css; charset=utf-8");
    cr_assert_str_eq(serve("/_app/immutable/start.abc.js", NT_OK, &f), "export{}");
    cr_assert_str_eq(f.content_type, "text/javascript; charset=utf-8");
    cr_assert_str_eq(f.cache_control, "public, max-age=31536000, immutable");
    cr_assert_str_eq(serve("/docs", NT_OK, &f), "docs");
    cr_assert_str_eq(serve("/docs/", NT_OK, &f), "docs");
}

Test(gw_static, unknown_paths_fall_back_to_the_app, .init = setup, .fini = teardown)
{
    gw_file f;
    cr_assert_str_eq(serve("/rooms/42", NT_OK, &f), "<!doctype html>app");
    cr_assert(f.fallback);
    cr_assert_str_eq(f.cache_control, "no-cache");
    cr_assert_str_eq(f.content_type, "text/html; charset=utf-8");
    serve("/_app/immutable/missing.js", NT_ENOTFOUND, &f);
}

Test(gw_static, never_serves_outside_files_or_dotfiles, .init = setup, .fini = teardown)
{
    gw_file f;
    serve("/../secret.txt", NT_EINVAL, &f);
    serve("/a/../../secret.txt", NT_EINVAL, &f);
    serve("//secret.txt", NT_EINVAL, &f);
    serve("/./index.html", NT_EINVAL, &f);
    serve("/..\\secret.txt", NT_EINVAL, &f);
    serve("/.env", NT_ENOTFOUND, &f);
    /* Escapes that survived MHD's decoding are literal names: nothing there,
     * so the app, never the file outside. */
    cr_assert_str_eq(serve("/%2e%2e/secret.txt", NT_OK, &f), "<!doctype html>app");
    cr_assert(f.fallback);
    cr_assert_str_eq(serve("/a/%2e%2e/%2e%2e/secret.txt", NT_OK, &f), "<!doctype html>app");
    cr_assert(f.fallback);
    cr_assert_str_eq(serve("/%2eenv", NT_OK, &f), "<!doctype html>app");
    cr_assert(f.fallback);
    serve("/_app/%2e%2e/%2e%2e/secret.txt", NT_ENOTFOUND, &f);
    /* A symlink out of the directory: the app, never the file. */
    cr_assert_str_eq(serve("/escape.txt", NT_OK, &f), "<!doctype html>app");
    cr_assert(f.fallback);
}

Test(gw_static, percent_in_a_name_is_the_app_or_the_file, .init = setup, .fini = teardown)
{
    gw_file f;
    /* "/100%25" decoded once: an unknown app route, not a malformed path. */
    cr_assert_str_eq(serve("/100%", NT_OK, &f), "<!doctype html>app");
    cr_assert(f.fallback);
    write_file("web/100%.txt", "percent");
    cr_assert_str_eq(serve("/100%.txt", NT_OK, &f), "percent");
    cr_assert_not(f.fallback);
}

Test(gw_static, missing_directory_is_not_found)
{
    gw_static *s = NULL;
    cr_assert_eq(gw_static_create("/nonexistent/web/build", &s), NT_ENOTFOUND);
    cr_assert_null(s);
    cr_assert_eq(gw_static_create("/etc/hostname", &s), NT_ENOTFOUND, "a file is not a dir");
    cr_assert_eq(gw_static_create("", &s), NT_ENOTFOUND);
}
