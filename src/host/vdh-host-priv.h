/* vdh-host-priv.h - what the three parts of the host library share.
 *
 * vdh-host.c: the host object, the port and its callbacks, capabilities,
 *   the operation framework (VdhOp: a GTask with a timeout, cancellation
 *   and a kind-specific cleanup), sending, mouse, monitors and the rest.
 * vdh-clipboard.c: both directions of the clipboard, grab serials, the
 *   incoming (possibly streamed) guest data and the outgoing streams of
 *   large host data.
 * vdh-xfer.c: file transfer batches to the guest.
 *
 * Re-entrancy: every entry from the main loop (port callbacks, timers,
 * GIO completions) runs between vdh_enter() and vdh_leave(); user
 * callbacks may call vdh_host_free(), which then only marks the host
 * dying and the outermost vdh_leave() releases it. Task results are
 * always delivered from an idle source of the host's context, never from
 * inside a port callback.
 */
#ifndef VDH_HOST_PRIV_H
#define VDH_HOST_PRIV_H

#include "vdh-host.h"
#include "vdp-port.h"

/* Selections the library tracks: CLIPBOARD, PRIMARY, SECONDARY. */
#define VDH_NSEL 3u

/* The port's write queue: producers pause at the high watermark (a file
 * transfer keeps at most this much in memory besides one read buffer),
 * and the queue refuses anything above the limit. */
#define VDH_QUEUE_HIGH (1024u * 1024u)
#define VDH_QUEUE_LIMIT (2u * VDH_QUEUE_HIGH)

typedef struct VdhOp VdhOp;
typedef struct VdhClipState VdhClipState;
typedef struct VdhXfer VdhXfer;

/* Called once when an operation ends, before its result is delivered:
 * detach it from the host's state. error is NULL on success. */
typedef void (*VdhOpCleanup)(VdhOp *op, const GError *error);
/* A timeout fired: return true if the operation handled it (re-armed),
 * false to fail it with VDH_ERROR_TIMEOUT and the op's timeout text. */
typedef bool (*VdhOpTimeout)(VdhOp *op);

struct VdhOp {
    VdhHost *h;
    GTask *task;
    GSource *timer;
    GSource *cancel_src;
    unsigned timeout_ms;
    char *timeout_text;        /* message of the TIMEOUT error */
    VdhOpCleanup cleanup;
    VdhOpTimeout on_timeout;
    void *data;                /* kind-specific state */
};

struct VdhHost {
    GMainContext *ctx;
    char *path;
    bool listen;
    size_t chunk_size;
    VdhHostEvents ev;
    void *user;

    VdpPort *port;
    bool started;
    bool connected;            /* the port is OPEN */
    bool guest_announced;      /* the guest's caps are known */
    bool reannounce;           /* CLIENT_DISCONNECTED sent: next send announces first */
    bool write_blocked;        /* the port asked producers to pause */
    VdpCaps own_caps;
    VdpCaps guest_caps;
    VdpLayout layout;          /* read by the port when a stream begins */

    int32_t max_clipboard;     /* what we announce; < 0: nothing */
    size_t clip_limit;         /* largest guest clipboard we accept */

    uint32_t mouse_buttons;    /* last button state sent */

    GList *ready_ops;          /* VdhOp *: wait_ready */
    VdhOp *monitors_op;
    VdhClipState *clip;
    VdhXfer *xfer;             /* the batch in progress, or NULL */
    uint32_t next_xfer_id;

    GSource *pump_src;         /* retry of a producer refused with BUSY */

    VdhHostStats stats;
    unsigned depth;
    bool dying;
    char state_text[96];
};

/* ---- vdh-host.c: core helpers ---- */

void vdh_enter(VdhHost *h);
/* Returns false if the host is gone or going: touch nothing then. */
bool vdh_leave(VdhHost *h);

/* NOT_CONNECTED without a guest or before its announce; CAPABILITY
 * naming the bit when the guest lacks it (cap < 0: no capability). */
bool vdh_check_ready(VdhHost *h, int cap, GError **error);
bool vdh_guest_has(const VdhHost *h, unsigned cap);

/* The announce owed after CLIENT_DISCONNECTED, if any (resets serials). */
bool vdh_reannounce_if_needed(VdhHost *h, GError **error);
/* Encode and send (announcing first after CLIENT_DISCONNECTED). */
bool vdh_send(VdhHost *h, const VdpMsg *msg, GError **error);
/* Map a port result to a GError. */
void vdh_set_port_error(VdhHost *h, GError **error, VdpResult r, const char *what,
                        const char *detail);

/* g_format_size() with a plain space ("12.0 MB"). */
char *vdh_format_size(uint64_t size);

/* Emit the dropped event (and count it). */
void vdh_report_dropped(VdhHost *h, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Producers (clipboard streams, transfers) try again: now (from the
 * write_ready path) or after a short delay (refused without backpressure). */
void vdh_pump(VdhHost *h);
void vdh_schedule_pump(VdhHost *h);

/* ---- operations ---- */

VdhOp *vdh_op_new(VdhHost *h, gpointer tag, GCancellable *c, GAsyncReadyCallback cb,
                  gpointer user);
void vdh_op_set_timeout(VdhOp *op, unsigned timeout_ms, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
void vdh_op_succeed(VdhOp *op);
void vdh_op_succeed_pointer(VdhOp *op, gpointer value, GDestroyNotify free_value);
void vdh_op_fail(VdhOp *op, VdhError code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* Takes error. */
void vdh_op_fail_error(VdhOp *op, GError *error);
gboolean vdh_op_finish(VdhHost *h, GAsyncResult *res, gpointer tag, GError **error);
gpointer vdh_op_finish_pointer(VdhHost *h, GAsyncResult *res, gpointer tag, GError **error);

/* Run an asynchronous call to its end on the host's context. */
typedef struct VdhSync {
    GAsyncResult *res;
} VdhSync;
void vdh_sync_callback(GObject *src, GAsyncResult *res, gpointer data);
void vdh_sync_wait(VdhHost *h, VdhSync *s);

/* ---- vdh-clipboard.c ---- */

void vdh_clip_init(VdhHost *h);
void vdh_clip_free(VdhHost *h);
/* New guest, or a client reset (CLIENT_DISCONNECTED, guest re-announce). */
void vdh_clip_reset_serials(VdhHost *h);
void vdh_clip_reset_client(VdhHost *h);
void vdh_clip_disconnected(VdhHost *h);
void vdh_clip_fail_all(VdhHost *h, VdhError code, const char *why);
bool vdh_clip_streaming_out(const VdhHost *h);
void vdh_clip_pump(VdhHost *h);

void vdh_clip_on_grab(VdhHost *h, const VdpClipboardGrab *g);
void vdh_clip_on_request(VdhHost *h, const VdpClipboardRequest *r);
void vdh_clip_on_release(VdhHost *h, const VdpClipboardRelease *r);
void vdh_clip_on_data(VdhHost *h, const VdpClipboard *cb);
/* A CLIPBOARD message was dropped (malformed or above our limit). */
void vdh_clip_on_dropped(VdhHost *h, const char *why, uint32_t size, bool too_large);

void vdh_clip_stream_begin(VdhHost *h, const VdpClipboard *head);
void vdh_clip_stream_data(VdhHost *h, const uint8_t *data, size_t len);
void vdh_clip_stream_end(VdhHost *h);
void vdh_clip_stream_abort(VdhHost *h);

/* ---- vdh-xfer.c ---- */

void vdh_xfer_on_status(VdhHost *h, const VdpFileXferStatus *st);
void vdh_xfer_pump(VdhHost *h);
void vdh_xfer_fail(VdhHost *h, VdhError code, const char *why);

#endif /* VDH_HOST_PRIV_H */
