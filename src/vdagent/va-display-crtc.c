/* va-display-crtc.c - CRTC assignment as a bipartite matching; see
 * va-display-crtc.h. */
#include "config.h"

#include <string.h>

#include "va-display-crtc.h"

typedef struct Match {
    const VaCrtcOutput *outs;
    unsigned ncrtc;
    int owner[VA_CRTC_MAX];         /* per CRTC: the output it is given to, or -1 */
    int *crtc_of;
    bool visited[VA_CRTC_MAX];
} Match;

static uint64_t allowed(const Match *m, unsigned i)
{
    uint64_t set = m->outs[i].possible;
    if (m->outs[i].current >= 0 && (unsigned)m->outs[i].current < m->ncrtc)
        set |= UINT64_C(1) << m->outs[i].current;
    if (m->ncrtc < 64)
        set &= (UINT64_C(1) << m->ncrtc) - 1;
    return set;
}

static bool try_crtc(Match *m, unsigned i, unsigned c);

/* Kuhn's augmenting path from output i: a free CRTC first (its current
 * one, then the others in index order), so nobody is moved without need;
 * only then one taken by another output that can move elsewhere. Depth
 * is bounded by the number of CRTCs (each is visited once per search), at
 * most VA_CRTC_MAX. */
static bool augment(Match *m, unsigned i)
{
    uint64_t set = allowed(m, i);
    int cur = m->outs[i].current;
    for (int pass = 0; pass < 2; pass++) {
        bool free_only = pass == 0;
        if (cur >= 0 && (set >> cur & 1) && (!free_only || m->owner[cur] < 0) &&
            try_crtc(m, i, (unsigned)cur))
            return true;
        for (unsigned c = 0; c < m->ncrtc; c++) {
            if (!(set >> c & 1) || (int)c == cur || (free_only && m->owner[c] >= 0))
                continue;
            if (try_crtc(m, i, c))
                return true;
        }
    }
    return false;
}

static bool try_crtc(Match *m, unsigned i, unsigned c)
{
    if (m->visited[c])
        return false;
    m->visited[c] = true;
    if (m->owner[c] < 0 || augment(m, (unsigned)m->owner[c])) {
        m->owner[c] = (int)i;
        m->crtc_of[i] = (int)c;
        return true;
    }
    return false;
}

int va_crtc_assign(const VaCrtcOutput *outs, unsigned n, unsigned ncrtc, int *crtc_of)
{
    Match m;
    memset(&m, 0, sizeof m);
    m.outs = outs;
    m.ncrtc = ncrtc < VA_CRTC_MAX ? ncrtc : VA_CRTC_MAX;
    m.crtc_of = crtc_of;
    for (unsigned c = 0; c < VA_CRTC_MAX; c++)
        m.owner[c] = -1;
    for (unsigned i = 0; i < n; i++)
        crtc_of[i] = -1;
    int failed = -1;
    /* Outputs that drive a CRTC now go first: each takes its own without
     * displacing anyone, unless a clone got there first. */
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < n; i++) {
            if (!outs[i].wanted || (outs[i].current >= 0) != (pass == 0))
                continue;
            if (i >= VA_CRTC_MAX_OUTPUTS) {
                if (failed < 0)
                    failed = (int)i;
                continue;
            }
            memset(m.visited, 0, sizeof m.visited);
            if (!augment(&m, i) && failed < 0)
                failed = (int)i;
        }
    }
    return failed;
}
