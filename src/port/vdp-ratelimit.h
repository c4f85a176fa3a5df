/* vdp-ratelimit.h - the rate limit for log lines a peer can trigger (host
 * messages, agents, X clients) in every program: VDP_LOG_BURST lines per
 * VDP_LOG_WINDOW_US, then one summary of how many were suppressed, so a
 * hostile or broken peer cannot flood the journal. */
#ifndef VDP_RATELIMIT_H
#define VDP_RATELIMIT_H

#include <glib.h>
#include <stdbool.h>

#define VDP_LOG_BURST 10u
#define VDP_LOG_WINDOW_US (10 * G_USEC_PER_SEC)

typedef struct VdpRateLimit {
    gint64 start;
    unsigned count, suppressed;
} VdpRateLimit;

/* May the next line be logged? what names the kind in the summary line. */
static inline bool vdp_rate_ok(VdpRateLimit *rl, const char *what)
{
    gint64 now = g_get_monotonic_time();
    if (rl->start == 0 || now - rl->start > VDP_LOG_WINDOW_US) {
        if (rl->suppressed)
            g_message("(%u similar %s messages suppressed)", rl->suppressed, what);
        rl->start = now;
        rl->count = 0;
        rl->suppressed = 0;
    }
    if (rl->count < VDP_LOG_BURST) {
        rl->count++;
        return true;
    }
    rl->suppressed++;
    return false;
}

#endif /* VDP_RATELIMIT_H */
