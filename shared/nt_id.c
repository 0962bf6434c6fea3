/* UUIDv7 generation with a per-process monotonic counter. */
#include "nt_id.h"

#include "nt_clock.h"
#include "nt_status.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms = -1;
static uint64_t counter; /* 42 bits: 12 in rand_a, 30 at the top of rand_b */

void nt_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        NT_ASSERT(got > 0);
        p += got;
        n -= (size_t)got;
    }
}

static void to_text(const unsigned char b[16], char out[NT_ID_LEN])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

static int hexval(char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

void nt_id_next_after(const char *floor, char out[NT_ID_LEN])
{
    nt_id_new(out);
    if (floor == NULL || !nt_id_valid(floor) || strcmp(out, floor) > 0)
        return;
    unsigned char b[16];
    for (int i = 0, j = 0; i < 16; i++, j += 2) {
        if (j == 8 || j == 13 || j == 18 || j == 23)
            j++;
        b[i] = (unsigned char)(hexval(floor[j]) << 4 | hexval(floor[j + 1]));
    }
    /* Add one to the bits that are neither version (high nibble of byte 6)
     * nor variant (top two bits of byte 8), carrying leftwards. */
    bool carried = true;
    for (int i = 15; i >= 0 && carried; i--) {
        unsigned mask = i == 6 ? 0x0Fu : i == 8 ? 0x3Fu : 0xFFu;
        unsigned v = (b[i] & mask) + 1u;
        b[i] = (unsigned char)((b[i] & ~mask) | (v & mask));
        carried = v > mask;
    }
    /* Past the last id there is nothing greater (a floor in the year 10889):
     * the fresh id stands. */
    if (!carried)
        to_text(b, out);
}

void nt_id_new(char out[NT_ID_LEN])
{
    unsigned char rnd[8];
    nt_random_bytes(rnd, sizeof(rnd));
    uint64_t r;
    memcpy(&r, rnd, sizeof(r));

    pthread_mutex_lock(&lock);
    int64_t ms = nt_clock_now_ms();
    if (ms > last_ms) {
        last_ms = ms;
        /* A fresh random start with the top bit clear leaves room to count. */
        counter = (r >> 22) & ((UINT64_C(1) << 41) - 1);
    } else {
        /* Same millisecond, or the clock stepped back: keep the old time. */
        counter++;
        if (counter >> 42) {
            last_ms++;
            counter = 0;
        }
        ms = last_ms;
    }
    uint64_t c = counter;
    pthread_mutex_unlock(&lock);

    unsigned char b[16];
    uint64_t t = (uint64_t)ms;
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(t >> (8 * (5 - i)));
    uint16_t rand_a = (uint16_t)((c >> 30) & 0x0FFF);
    b[6] = (unsigned char)(0x70 | (rand_a >> 8));
    b[7] = (unsigned char)(rand_a & 0xFF);
    uint64_t low30 = c & ((UINT64_C(1) << 30) - 1);
    /* rand_b: 2 variant bits, 30 counter bits, 32 random bits. */
    uint64_t rb = (UINT64_C(2) << 62) | (low30 << 32) | (r & 0xFFFFFFFFu);
    for (int i = 0; i < 8; i++)
        b[8 + i] = (unsigned char)(rb >> (8 * (7 - i)));

    to_text(b, out);
}

bool nt_id_valid(const char *s)
{
    if (s == NULL)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return s[36] == '\0';
}

int64_t nt_id_time_ms(const char *s)
{
    if (!nt_id_valid(s) || s[14] != '7')
        return -1;
    int64_t t = 0;
    for (int i = 0; i < 13; i++) {
        if (s[i] == '-')
            continue;
        char c = s[i];
        t = t * 16 + ((c <= '9') ? c - '0' : c - 'a' + 10);
    }
    return t;
}
