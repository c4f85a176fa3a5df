/* va-clipboard-backend.h - between the clipboard core (va-clipboard.c:
 * protocol state per selection, the IPC side, limits, timeouts of the
 * waits on the daemon) and a windowing-system backend (va-clipboard-x11.c:
 * selections, conversions, INCR, timeouts of the waits on applications).
 *
 * Selections are numbered like the protocol: VD_AGENT_CLIPBOARD_SELECTION_
 * CLIPBOARD (0) and _PRIMARY (1); SECONDARY is not handled. Types are
 * VD_AGENT_CLIPBOARD_* data types (UTF8_TEXT..IMAGE_JPG).
 *
 * Host -> guest (an application pastes what the client copied):
 *   core  -> claim(sel, types)            the client owns sel: take it
 *   back  -> va_clip_want_data(sel, type) an application asked; REQUEST it
 *   core  -> data_begin / data_chunk / data_end(ok)   the answer, streamed
 *   back  -> va_clip_set_backlog(bytes)   what it buffers for slow readers
 * Guest -> host (the client pastes what a guest application copied):
 *   back  -> va_clip_guest_grab(sel, types)   an application owns sel
 *   core  -> fetch(sel, type)             the client asked for it
 *   back  -> va_clip_fetch_write(...) ..., va_clip_fetch_done(sel, ok)
 */
#ifndef VA_CLIPBOARD_BACKEND_H
#define VA_CLIPBOARD_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "va-clipboard.h"

/* Selections handled: CLIPBOARD and PRIMARY. */
#define VA_CLIP_NSEL 2u

typedef struct VaClipBackend VaClipBackend;

typedef struct VaClipBackendOps {
    void (*free)(VaClipBackend *b);
    /* The client owns sel with these types (known data types, no
     * duplicates, possibly none). Returns false if the selection could not
     * be taken. Ends any fetch of the guest's data on sel (the core has
     * answered it already). */
    bool (*claim)(VaClipBackend *b, unsigned sel, const uint32_t *types, unsigned ntypes);
    /* Give up sel owned for the client. Requests still waiting for data
     * are refused; transfers already streaming finish if they can. */
    void (*unclaim)(VaClipBackend *b, unsigned sel);
    /* The answer to the last va_clip_want_data(sel, type): size bytes of
     * type follow in data_chunk calls, then data_end(true). data_end(false)
     * alone or after some chunks: refused, aborted or timed out. */
    void (*data_begin)(VaClipBackend *b, unsigned sel, uint32_t type, uint64_t size);
    void (*data_chunk)(VaClipBackend *b, unsigned sel, const uint8_t *p, size_t n);
    void (*data_end)(VaClipBackend *b, unsigned sel, bool ok);
    /* The client asks for the guest's data of type on sel (one fetch per
     * selection at a time). Answer with va_clip_fetch_write()... and
     * exactly one va_clip_fetch_done(), possibly from inside this call. */
    void (*fetch)(VaClipBackend *b, unsigned sel, uint32_t type);
    /* Stop the running fetch on sel without calling va_clip_fetch_done. */
    void (*fetch_cancel)(VaClipBackend *b, unsigned sel);
    /* Reading the daemon has stayed paused (va_clip_set_backlog) for the
     * application timeout: give up the requestors that hold the buffered
     * data (INCR readers behind by more than a piece), so that one slow
     * application cannot keep the whole daemon connection unread. */
    void (*shed)(VaClipBackend *b);
} VaClipBackendOps;

struct VaClipBackend {
    const VaClipBackendOps *ops;
    VaClipboard *core;
};

/* The X11 backend. NULL with a G_IO_ERROR when XFixes is missing. */
VaClipBackend *va_clip_x11_new(VaClipboard *core, VaX11 *x, GMainContext *ctx, GError **error);

/* ---- core functions for the backend ---- */

/* An application owns sel and offers these types (none: it gave the
 * selection up or offers nothing we can carry). */
void va_clip_guest_grab(VaClipboard *cb, unsigned sel, const uint32_t *types, unsigned ntypes);
/* Another application took sel while it was owned for the client. */
void va_clip_client_lost(VaClipboard *cb, unsigned sel);
/* Ask the client for its data of type on sel. Returns false when it cannot
 * be asked (no daemon, sel not owned by the client, type not offered, a
 * request already outstanding on sel); the backend refuses its requestor.
 * Otherwise exactly one data_end() follows (after data_begin/chunks on
 * success), at the latest when the answer timeout expires. */
bool va_clip_want_data(VaClipboard *cb, unsigned sel, uint32_t type);
/* Bytes the backend holds for requestors that read slower than the data
 * arrives: above a high mark the core stops reading the IPC, below a low
 * mark it reads again; paused for the application timeout, it asks the
 * backend to shed the slow requestors. */
void va_clip_set_backlog(VaClipboard *cb, size_t bytes);
/* Guest data for the running fetch on sel. Returns false when the data is
 * over the client's maximum or cannot be stored: the backend stops the
 * fetch and calls va_clip_fetch_done(sel, false) (the core answers). */
bool va_clip_fetch_write(VaClipboard *cb, unsigned sel, const uint8_t *p, size_t n);
/* The fetch on sel ended: ok true sends the data to the client, false an
 * empty answer. */
void va_clip_fetch_done(VaClipboard *cb, unsigned sel, bool ok);

/* ---- for tests ---- */

typedef struct VaClipStats {
    size_t backlog_peak;        /* largest va_clip_set_backlog() value seen */
    size_t backlog;             /* the last va_clip_set_backlog() value */
    bool reading_paused;        /* the daemon's IPC is not read (backlog) */
    unsigned requests_sent;     /* REQUESTs sent to the daemon */
    unsigned answer_timeouts;   /* REQUESTs that timed out */
    unsigned fetches_done;      /* guest data answers sent (data or empty) */
} VaClipStats;

void va_clipboard_get_stats(const VaClipboard *cb, VaClipStats *st);
/* Shorter timeouts so tests need not wait for the real ones (ms; 0 keeps). */
void va_clipboard_set_timeouts(VaClipboard *cb, unsigned host_answer_ms, unsigned app_ms);
/* The timeout the backend uses for waits on applications, in ms. */
unsigned va_clip_app_timeout_ms(const VaClipboard *cb);

#endif /* VA_CLIPBOARD_BACKEND_H */
