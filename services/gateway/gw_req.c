/* Request id, client address, Retry-After and naming helpers. */
#include "gw_req.h"

#include "nt_id.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

bool gw_req_id_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || n >= GW_REQUEST_ID_MAX - 1)
            return false;
    }
    return n > 0;
}

void gw_req_id_choose(const char *client_id, char out[GW_REQUEST_ID_MAX])
{
    if (gw_req_id_valid(client_id)) {
        snprintf(out, GW_REQUEST_ID_MAX, "%s", client_id);
        return;
    }
    char id[NT_ID_LEN];
    nt_id_new(id);
    snprintf(out, GW_REQUEST_ID_MAX, "%s", id);
}

void gw_req_client_ip(bool trust_proxy, const char *xff, const char *peer, char out[GW_IP_MAX])
{
    if (trust_proxy && xff != NULL) {
        /* The last entry is the address our proxy saw; every earlier one is
         * whatever the client chose to send. */
        const char *comma = strrchr(xff, ',');
        const char *last = comma != NULL ? comma + 1 : xff;
        while (*last == ' ' || *last == '\t')
            last++;
        size_t n = strlen(last);
        while (n > 0 && (last[n - 1] == ' ' || last[n - 1] == '\t'))
            n--;
        char text[GW_IP_MAX];
        unsigned char addr[sizeof(struct in6_addr)];
        if (n > 0 && n < sizeof(text)) {
            memcpy(text, last, n);
            text[n] = '\0';
            if (inet_pton(AF_INET, text, addr) == 1 || inet_pton(AF_INET6, text, addr) == 1) {
                snprintf(out, GW_IP_MAX, "%s", text);
                return;
            }
        }
    }
    snprintf(out, GW_IP_MAX, "%s", peer != NULL && peer[0] != '\0' ? peer : "-");
}

long long gw_req_retry_after_s(long long ms)
{
    if (ms <= 0)
        return 0;
    return ms / 1000 + (ms % 1000 != 0);
}

void gw_req_service_name(const char *subject, char *out, size_t outlen)
{
    const char *dot = strchr(subject, '.');
    if (dot == NULL || dot[1] == '\0') {
        snprintf(out, outlen, "%s", subject);
        return;
    }
    const char *name = dot + 1;
    size_t n = strcspn(name, ".");
    snprintf(out, outlen, "%.*s", (int)n, name);
}

void gw_req_log_path(const char *path, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    size_t i = 0;
    for (; path != NULL && path[i] != '\0' && i + 1 < outlen; i++) {
        unsigned char c = (unsigned char)path[i];
        out[i] = (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    out[i] = '\0';
}
