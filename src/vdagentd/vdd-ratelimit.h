/* vdd-ratelimit.h - rate limit for log lines a peer can trigger (host
 * messages, agents): VDD_LOG_BURST lines per window, then one summary of
 * how many were suppressed, so a hostile peer cannot flood the journal. */
#ifndef VDD_RATELIMIT_H
#define VDD_RATELIMIT_H

#include <glib.h>
#include <stdbool.h>

#define VDD_LOG_BURST 10
#define VDD_LOG_WINDOW_US (10 * G_USEC_PER_SEC)

typedef struct VddRateLimit {
    gint64 start;
    unsigned count, suppressed;
} VddRateLimit;

/* May the next line be logged? what names the kind in the summary line. */
static inline bool vdd_rate_ok(VddRateLimit *rl, const char *what)
{
    gint64 now = g_get_monotonic_time();
    if (now - rl->start > VDD_LOG_WINDOW_US) {
        if (rl->suppressed)
            g_message("(%u similar %s messages suppressed)", rl->suppressed, what);
        rl->start = now;
        rl->count = 0;
        rl->suppressed = 0;
    }
    if (rl->count < VDD_LOG_BURST) {
        rl->count++;
        return true;
    }
    rl->suppressed++;
    return false;
}

#endif /* VDD_RATELIMIT_H */
