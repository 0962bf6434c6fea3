/* Serving the built web app (NATTER_WEB_DIR) safely: a request path (already
 * percent-decoded, once, by MHD) is checked segment by segment ("..", ".",
 * empty segments, backslashes and dotfiles are refused; a NUL cannot occur in
 * a C string), then resolved with realpath, which must stay inside the
 * directory. Unknown paths fall back to index.html, so the
 * single-page app's own routes work on reload. */
#ifndef GW_STATIC_H
#define GW_STATIC_H

#include "nt_status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_STATIC_PATH_MAX 1024

typedef struct gw_static gw_static;

/* Opens the web directory dir. NT_ENOTFOUND when it does not exist or is not
 * a directory (the gateway then serves no static files). *out is the caller's. */
nt_status gw_static_create(const char *dir, gw_static **out);

/* The resolved directory (for the start-up log). */
const char *gw_static_root(const gw_static *s);

/* Writes the path relative to the web directory for url_path, which must
 * start with '/' and is already percent-decoded, so it is not decoded again
 * ('%' is an ordinary character): "" for "/", "a/b.js" for "/a/b.js"; a
 * trailing '/' is kept, meaning a directory. NT_EINVAL for a backslash, a "."
 * or ".." segment or an empty segment ("//"); NT_EFORBIDDEN for a segment
 * starting with '.' (dotfiles); NT_ETOOBIG when it does not fit. Pure. */
nt_status gw_static_clean_path(const char *url_path, char *out, size_t outlen);

/* The Content-Type for a file name, by extension (case-insensitive);
 * "application/octet-stream" for unknown ones. Pure. */
const char *gw_static_content_type(const char *name);

/* The Cache-Control for a relative path: immutable for "_app/immutable/...",
 * "no-cache" (always revalidate) otherwise. Pure. */
const char *gw_static_cache_control(const char *rel);

/* An opened file to send. */
typedef struct {
    int fd; /* the caller's (MHD_create_response_from_fd takes it) */
    uint64_t size;
    const char *content_type;
    const char *cache_control;
    bool fallback; /* index.html served for an unknown path */
} gw_file;

/* Opens the file for url_path (decoded, as above): the file itself, a
 * directory's index.html, or (for unknown paths outside "_app/") the top
 * index.html with fallback set.
 * NT_EINVAL for a malformed path (400), NT_ENOTFOUND when nothing is served
 * (404; dotfiles and paths escaping the directory included). Thread-safe. */
nt_status gw_static_open(const gw_static *s, const char *url_path, gw_file *out);

void gw_static_destroy(gw_static *s);

#endif
