/* Wall and monotonic clocks, with a hook for a fake wall clock in tests. */
#include "nt_clock.h"

#include <stdio.h>
#include <time.h>

static int64_t (*fake_now)(void);

int64_t nt_clock_now_ms(void)
{
    if (fake_now != NULL)
        return fake_now();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t nt_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t nt_clock_mono_ms(void)
{
    return nt_clock_mono_ns() / 1000000;
}

void nt_clock_set_fake(int64_t (*fn)(void))
{
    fake_now = fn;
}

void nt_clock_iso8601(int64_t ms, char out[NT_ISO8601_LEN])
{
    time_t secs = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, NT_ISO8601_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}
