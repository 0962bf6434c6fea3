/* Time, injectable: every module asks nt_clock_now_ms() for wall time so tests
 * can link a fake. Monotonic time is for deadlines and durations only. */
#ifndef NT_CLOCK_H
#define NT_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock milliseconds since the Unix epoch (or the fake's). Thread-safe. */
int64_t nt_clock_now_ms(void);

/* Monotonic milliseconds, never faked: for deadlines and durations. */
int64_t nt_clock_mono_ms(void);

/* Monotonic nanoseconds, for processing-time statistics. */
int64_t nt_clock_mono_ns(void);

/* Replaces the wall clock with fn (NULL restores the real one). Tests only;
 * not thread-safe against concurrent readers. */
void nt_clock_set_fake(int64_t (*fn)(void));

/* Writes ms as an RFC 3339 UTC time with milliseconds ("2026-01-02T03:04:05.678Z").
 * out must hold at least NT_ISO8601_LEN bytes. */
#define NT_ISO8601_LEN 80
void nt_clock_iso8601(int64_t ms, char out[NT_ISO8601_LEN]);

#endif
