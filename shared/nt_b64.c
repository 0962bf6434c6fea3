/* Base64url (RFC 4648 §5) without padding on output and with optional padding
 * on input, as JWTs and JWKs use it. Decoding is strict: any character outside
 * the url alphabet, misplaced padding or an impossible length is refused. */
#include "nt_b64.h"

#include <stdint.h>
#include <stdlib.h>

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *nt_b64url_encode(const void *data, size_t n)
{
    const unsigned char *in = data;
    NT_ASSERT(n <= (SIZE_MAX - 4) / 4 * 3);
    size_t outlen = n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
    char *out = malloc(outlen + 1);
    NT_ASSERT(out != NULL);
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    NT_ASSERT(o == outlen);
    out[o] = '\0';
    return out;
}

/* The 6-bit value of a url-alphabet character, or -1. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

nt_status nt_b64url_decode(const char *text, size_t len, unsigned char **out, size_t *outlen)
{
    NT_ASSERT(text != NULL || len == 0);
    /* Padding is optional, but when present it must complete a 4-character
     * group and be at most two characters. */
    size_t datalen = len;
    size_t pad = 0;
    while (datalen > 0 && text[datalen - 1] == '=' && pad < 3) {
        datalen--;
        pad++;
    }
    if (pad > 2 || (pad > 0 && len % 4 != 0))
        return NT_EINVAL;
    /* One character left over carries only 6 bits: no byte can end there. */
    if (datalen % 4 == 1)
        return NT_EINVAL;
    if (pad > 0 && (datalen % 4) + pad != 4)
        return NT_EINVAL;

    size_t n = datalen / 4 * 3 + (datalen % 4 == 0 ? 0 : datalen % 4 - 1);
    unsigned char *buf = malloc(n + 1);
    NT_ASSERT(buf != NULL);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < datalen; i++) {
        int v = b64url_value((unsigned char)text[i]);
        if (v < 0) {
            free(buf);
            return NT_EINVAL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* The bits left over must be zero, so that each byte string has exactly
     * one encoding (no malleable signatures). */
    if (acc != 0) {
        free(buf);
        return NT_EINVAL;
    }
    NT_ASSERT(o == n);
    buf[o] = '\0';
    *out = buf;
    *outlen = n;
    return NT_OK;
}
