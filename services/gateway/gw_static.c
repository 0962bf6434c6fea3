/* Static files: path checks, realpath containment, content types. */
#include "gw_static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct gw_static {
    char root[PATH_MAX]; /* realpath of the directory, no trailing slash */
    size_t rootlen;
};

nt_status gw_static_create(const char *dir, gw_static **out)
{
    char resolved[PATH_MAX];
    struct stat sb;
    if (dir == NULL || dir[0] == '\0' || realpath(dir, resolved) == NULL ||
        stat(resolved, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return NT_ENOTFOUND;
    gw_static *s = calloc(1, sizeof(*s));
    NT_ASSERT(s != NULL);
    snprintf(s->root, sizeof(s->root), "%s", resolved);
    s->rootlen = strlen(s->root);
    /* realpath("/") is "/": keep the root without its trailing slash. */
    if (s->rootlen == 1)
        s->rootlen = 0;
    *out = s;
    return NT_OK;
}

const char *gw_static_root(const gw_static *s)
{
    return s->root;
}

void gw_static_destroy(gw_static *s)
{
    free(s);
}

nt_status gw_static_clean_path(const char *url, char *out, size_t outlen)
{
    if (url == NULL || url[0] != '/' || outlen == 0)
        return NT_EINVAL;
    /* MHD has percent-decoded the path already. Decoding again would turn a
     * file literally named "100%" ("/100%25" on the wire) into a bad escape,
     * and "%252e%252e" into "..": '%' is an ordinary character here. */
    size_t o = 0;
    for (const char *p = url + 1; *p != '\0'; p++) {
        if (*p == '\\')
            return NT_EINVAL;
        if (o + 1 >= outlen)
            return NT_ETOOBIG;
        out[o++] = *p;
    }
    out[o] = '\0';

    /* Check every segment. */
    bool hidden = false;
    for (const char *seg = out;;) {
        size_t n = strcspn(seg, "/");
        bool last = seg[n] == '\0';
        if (n == 0 && !last)
            return NT_EINVAL; /* "//" */
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return NT_EINVAL;
        if (n > 0 && seg[0] == '.')
            hidden = true;
        if (last)
            break;
        seg += n + 1;
    }
    return hidden ? NT_EFORBIDDEN : NT_OK;
}

const char *gw_static_content_type(const char *name)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"webp", "image/webp"},
        {"ico", "image/x-icon"},
        {"woff2", "font/woff2"},
        {"txt", "text/plain; charset=utf-8"},
        {"webmanifest", "application/manifest+json"},
    };
    const char *slash = strrchr(name, '/');
    const char *base = slash != NULL ? slash + 1 : name;
    const char *dot = strrchr(base, '.');
    if (dot != NULL && dot != base) {
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
        }
    }
    return "application/octet-stream";
}

const char *gw_static_cache_control(const char *rel)
{
    if (strncmp(rel, "_app/immutable/", 15) == 0)
        return "public, max-age=31536000, immutable";
    return "no-cache";
}

/* Opens root/rel (rel "" or ending in '/' means its index.html) if it
 * resolves to a regular file inside the root. */
static nt_status try_open(const gw_static *s, const char *rel, gw_file *out)
{
    char full[PATH_MAX + GW_STATIC_PATH_MAX], resolved[PATH_MAX];
    size_t rl = strlen(rel);
    bool dir = rl == 0 || rel[rl - 1] == '/';
    int n = snprintf(full, sizeof(full), "%.*s/%s%s", (int)s->rootlen, s->root, rel,
                     dir ? "index.html" : "");
    if (n < 0 || (size_t)n >= sizeof(full))
        return NT_ENOTFOUND;
    if (realpath(full, resolved) == NULL)
        return NT_ENOTFOUND;
    if (strncmp(resolved, s->root, s->rootlen) != 0 || resolved[s->rootlen] != '/')
        return NT_ENOTFOUND; /* a symlink out of the web directory */
    int fd = open(resolved, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NT_ENOTFOUND;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        bool is_dir = S_ISDIR(sb.st_mode);
        close(fd);
        if (is_dir && !dir) {
            /* "/docs" names a directory: serve its index.html. */
            char sub[GW_STATIC_PATH_MAX + 2];
            n = snprintf(sub, sizeof(sub), "%s/", rel);
            if (n < 0 || (size_t)n >= sizeof(sub))
                return NT_ENOTFOUND;
            return try_open(s, sub, out);
        }
        return NT_ENOTFOUND;
    }
    out->fd = fd;
    out->size = (uint64_t)sb.st_size;
    out->content_type = gw_static_content_type(resolved);
    out->cache_control = gw_static_cache_control(rel);
    out->fallback = false;
    return NT_OK;
}

nt_status gw_static_open(const gw_static *s, const char *url_path, gw_file *out)
{
    char rel[GW_STATIC_PATH_MAX];
    nt_status st = gw_static_clean_path(url_path, rel, sizeof(rel));
    if (st == NT_EFORBIDDEN)
        return NT_ENOTFOUND;
    if (st != NT_OK)
        return NT_EINVAL;
    st = try_open(s, rel, out);
    if (st == NT_OK || strncmp(rel, "_app/", 5) == 0)
        return st; /* a missing asset is a 404, never the app's HTML */
    st = try_open(s, "", out);
    if (st == NT_OK) {
        out->fallback = true;
        out->cache_control = "no-cache";
    }
    return st;
}
