/* Outgoing HTTP GET over libcurl: one easy handle per call, bounded in time and
 * in body size, http and https only, no redirects, no signals (so it is safe on
 * nats.c threads). curl codes are converted to nt_status here and nowhere else. */
#include "nt_http.h"

#include "nt_log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static CURLcode http_init_rc = CURLE_OK;

static void http_init_once(void)
{
    http_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void nt_http_global_init(void)
{
    pthread_once(&http_once, http_init_once);
    NT_ASSERT(http_init_rc == CURLE_OK);
}

typedef struct {
    char *data;
    size_t len, alloc, max;
    int toobig;
} http_body;

static size_t http_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    http_body *b = userdata;
    size_t n = size * nmemb;
    if (n > b->max - b->len) {
        b->toobig = 1;
        return 0; /* anything short of n makes curl stop with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->alloc) {
        size_t want = b->alloc == 0 ? 4096 : b->alloc;
        while (want < b->len + n + 1)
            want *= 2;
        if (want > b->max + 1)
            want = b->max + 1;
        char *p = realloc(b->data, want);
        NT_ASSERT(p != NULL);
        b->data = p;
        b->alloc = want;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* True when s could break out of a header line. */
static int has_line_break(const char *s)
{
    for (; *s != '\0'; s++)
        if (*s == '\r' || *s == '\n')
            return 1;
    return 0;
}

nt_status nt_http_get(const char *url, const char *bearer, int timeout_ms, size_t max_bytes,
                      int *http_status, char **body, size_t *len)
{
    NT_ASSERT(url != NULL && http_status != NULL && body != NULL && len != NULL);
    NT_ASSERT(timeout_ms > 0 && max_bytes > 0 && max_bytes < SIZE_MAX);
    nt_http_global_init();

    nt_status st = NT_EINTERNAL;
    CURL *h = NULL;
    struct curl_slist *headers = NULL;
    char *auth = NULL;
    size_t authlen = 0;
    http_body b = {.max = max_bytes};

    if (bearer != NULL && (bearer[0] == '\0' || has_line_break(bearer))) {
        st = NT_EINVAL;
        goto out;
    }
    h = curl_easy_init();
    if (h == NULL)
        goto out;

    long connect_ms = timeout_ms < 3000 ? timeout_ms : 3000;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_bytes);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "natter/1");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);

    headers = curl_slist_append(headers, "Accept: application/json");
    NT_ASSERT(headers != NULL);
    if (bearer != NULL) {
        static const char prefix[] = "Authorization: Bearer ";
        authlen = sizeof prefix + strlen(bearer);
        auth = malloc(authlen);
        NT_ASSERT(auth != NULL);
        int w = snprintf(auth, authlen, "%s%s", prefix, bearer);
        NT_ASSERT(w >= 0 && (size_t)w < authlen);
        struct curl_slist *more = curl_slist_append(headers, auth);
        NT_ASSERT(more != NULL);
        headers = more;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

    CURLcode rc = curl_easy_perform(h);
    switch (rc) {
    case CURLE_OK:
        break;
    case CURLE_OPERATION_TIMEDOUT:
        st = NT_ETIMEOUT;
        goto out;
    case CURLE_FILESIZE_EXCEEDED:
        st = NT_ETOOBIG;
        goto out;
    case CURLE_WRITE_ERROR:
        st = b.toobig ? NT_ETOOBIG : NT_EUNAVAIL;
        goto out;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        st = NT_EINVAL;
        goto out;
    default:
        /* The url may carry a secret in its query, so only the curl text is logged. */
        nt_log_warn("http", "GET failed curl=%d error=\"%s\"", (int)rc, curl_easy_strerror(rc));
        st = NT_EUNAVAIL;
        goto out;
    }

    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (b.data == NULL) {
        b.data = malloc(1);
        NT_ASSERT(b.data != NULL);
        b.data[0] = '\0';
    }
    *http_status = (int)code;
    *body = b.data;
    *len = b.len;
    b.data = NULL;
    st = NT_OK;

out:
    /* curl copied the Authorization line into the list: wipe it too. */
    for (struct curl_slist *it = headers; it != NULL; it = it->next)
        explicit_bzero(it->data, strlen(it->data));
    curl_slist_free_all(headers);
    if (auth != NULL) {
        explicit_bzero(auth, authlen);
        free(auth);
    }
    if (h != NULL)
        curl_easy_cleanup(h);
    free(b.data);
    return st;
}
