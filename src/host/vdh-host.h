/* vdh-host.h - the host side of the SPICE agent channel, as a library.
 *
 * What spice-server and a SPICE client do together, without either: it
 * speaks the server's messages (MOUSE_STATE, CLIENT_DISCONNECTED,
 * GRAPHICS_DEVICE_INFO on chunk port 2) and the client's (everything else
 * on port 1) to a guest agent over its virtio-serial port, reached as a
 * UNIX socket: either a QEMU chardev socket we connect to (server=on) or a
 * socket we listen on for a guest daemon to connect (tests, spice-vdagentd
 * -s PATH).
 *
 * Asynchronous on a GMainContext (GTask style: *_async + *_finish), with a
 * synchronous layer (*_sync) that iterates the context until the operation
 * ends. Every wait has a timeout. Every feature checks the guest
 * capability it needs first and fails with VDH_ERROR_CAPABILITY naming it.
 *
 * Errors are GErrors in VDH_ERROR with messages written for the user
 * ("the guest agent does not support monitors-config"; "guest refused
 * report.pdf: not enough space, 12.0 MB free").
 *
 * Threading and callbacks: call everything from the thread that iterates
 * the context. Results of *_async calls are delivered from an idle source
 * of the context, never from inside another callback. Events are called
 * from the port's callbacks; they may call any function here, including
 * vdh_host_free(), but not the *_sync layer (it would wait on a source
 * that cannot run until the event returns).
 */
#ifndef VDH_HOST_H
#define VDH_HOST_H

#include <gio/gio.h>
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "vdp-caps.h"
#include "vdp-msg.h"

G_BEGIN_DECLS

#define VDH_ERROR (vdh_error_quark())
GQuark vdh_error_quark(void);

typedef enum VdhError {
    VDH_ERROR_NOT_CONNECTED = 1,  /* no guest on the port (or it went away mid-operation) */
    VDH_ERROR_CAPABILITY,         /* the guest did not announce what the operation needs */
    VDH_ERROR_TIMEOUT,            /* no answer in time */
    VDH_ERROR_REFUSED,            /* the guest answered no (REPLY error, transfer status, empty clipboard) */
    VDH_ERROR_BUSY,               /* an operation of the same kind is already running */
    VDH_ERROR_INVALID,            /* bad arguments (too many monitors, empty data, ...) */
    VDH_ERROR_PROTOCOL,           /* the guest sent something malformed for the operation */
    VDH_ERROR_IO,                 /* local file or socket error */
    VDH_ERROR_CANCELLED,          /* cancelled by the caller */
} VdhError;

typedef struct VdhHost VdhHost;

/* A timeout_ms of 0 in any call below means this. */
#define VDH_TIMEOUT_DEFAULT_MS 5000u

typedef struct VdhHostConfig {
    const char *path;             /* the port's UNIX socket */
    bool listen;                  /* listen on path for a guest (else connect to it) */
    size_t chunk_size;            /* chunk payload we write; 0 = 2048 like spice-server */
    const VdpCaps *caps;          /* what we announce; NULL = vdp_caps_init_host() */
    int32_t max_clipboard;        /* announced with MAX_CLIPBOARD when the guest has the cap;
                                   * 0 = VDP_MAX_CLIPBOARD_DEFAULT, < 0 = do not send */
    GMainContext *context;        /* NULL = thread default */
} VdhHostConfig;

/* Events; all optional. Called from the context. */
typedef struct VdhHostEvents {
    /* The port opened (connected = true: a guest is there; our announce
     * with request=1 has been sent) or closed. */
    void (*connection)(void *user, bool connected, const char *why);
    /* The guest announced its capabilities (each announce). */
    void (*guest_caps)(void *user, const VdpCaps *caps, bool request);
    /* Every decoded message from the guest, for `vdagentctl watch`
     * (streamed clipboard data is reported once it is complete, with
     * data == NULL and size set). */
    void (*message)(void *user, const VdpMsg *msg);
    /* A message from the guest was dropped (malformed, oversize). */
    void (*dropped)(void *user, const char *why);
    /* The guest took or released a selection. */
    void (*clipboard_grab)(void *user, uint8_t selection, const uint32_t *types, unsigned ntypes);
    void (*clipboard_release)(void *user, uint8_t selection);
} VdhHostEvents;

/* Returns NULL with error on invalid config. */
VdhHost *vdh_host_new(const VdhHostConfig *cfg, const VdhHostEvents *ev, void *user, GError **error);
/* Pending operations fail with VDH_ERROR_CANCELLED ("the host endpoint was
 * closed"); a file in flight is cancelled towards the guest first. */
void vdh_host_free(VdhHost *h);

/* Start opening/listening (reconnects with back-off on its own). */
void vdh_host_start(VdhHost *h);

bool vdh_host_is_connected(VdhHost *h);
/* NULL until the guest has announced. */
const VdpCaps *vdh_host_get_guest_caps(VdhHost *h);
/* The state in words (no path): "not started", "waiting for a guest"
 * (listening), "waiting for the port (connecting)", "connected, waiting
 * for the guest to announce", "connected". Valid until the next call. */
const char *vdh_host_describe_state(VdhHost *h);

/* Wait until a guest is connected and has announced its capabilities. */
void vdh_host_wait_ready_async(VdhHost *h, unsigned timeout_ms, GCancellable *c,
                               GAsyncReadyCallback cb, gpointer user);
gboolean vdh_host_wait_ready_finish(VdhHost *h, GAsyncResult *res, GError **error);
gboolean vdh_host_wait_ready_sync(VdhHost *h, unsigned timeout_ms, GError **error);

/* ---- mouse (needs MOUSE_STATE) ---- */

/* Buttons: VD_AGENT_LBUTTON_MASK ... VD_AGENT_EBUTTON_MASK. The state is
 * absolute: every call sends the full button set. */
gboolean vdh_host_mouse(VdhHost *h, uint32_t x, uint32_t y, uint32_t buttons,
                        uint8_t display_id, GError **error);
/* Press and release one button at (x, y); wheel up/down as a press and
 * release of UBUTTON/DBUTTON. */
gboolean vdh_host_mouse_click(VdhHost *h, uint32_t x, uint32_t y, uint32_t button_mask,
                              uint8_t display_id, GError **error);

/* ---- monitors (needs MONITORS_CONFIG; disabled entries need
 * SPARSE_MONITORS_CONFIG; waits for REPLY when the guest has REPLY) ----
 *
 * 1..VDP_MAX_MONITORS entries; width = height = 0 disables one. Flags
 * are computed: USE_POS when cfg->flags has it or any enabled monitor has
 * a position other than 0,0 (spice-vdagent 0.22.1 applies positions
 * whatever the flag says; our guest honours it, MONITORS_CONFIG_POSITION
 * is not required); PHYSICAL_SIZE only when cfg->flags has it or some
 * millimetres are given: spice-vdagent 0.22.1 drops such a config without
 * a REPLY, which then ends in VDH_ERROR_TIMEOUT (the message says why).
 * A REPLY with an error gives VDH_ERROR_REFUSED; one configuration waits
 * at a time (VDH_ERROR_BUSY). */

void vdh_host_set_monitors_async(VdhHost *h, const VdpMonitorsConfig *cfg, unsigned timeout_ms,
                                 GCancellable *c, GAsyncReadyCallback cb, gpointer user);
gboolean vdh_host_set_monitors_finish(VdhHost *h, GAsyncResult *res, GError **error);
gboolean vdh_host_set_monitors_sync(VdhHost *h, const VdpMonitorsConfig *cfg, unsigned timeout_ms,
                                    GError **error);

/* ---- clipboard (needs CLIPBOARD_BY_DEMAND; PRIMARY needs CLIPBOARD_SELECTION) ---- */

/* Offer data to the guest: GRAB (with the next serial when both sides have
 * GRAB_SERIAL) and answer the guest's REQUESTs with it until replaced,
 * released, or the guest grabs the selection itself. */
gboolean vdh_host_clipboard_set(VdhHost *h, uint8_t selection, uint32_t type, GBytes *data,
                                GError **error);
/* Sends RELEASE whether or not this process offers something (a CLI run
 * may release what an earlier one offered) and drops our offer. */
gboolean vdh_host_clipboard_release(VdhHost *h, uint8_t selection, GError **error);
/* Times the guest fetched the data offered on this selection. */
unsigned vdh_host_clipboard_served(VdhHost *h, uint8_t selection);

/* What the guest currently offers on a selection (NULL, *n = 0 if nothing). */
const uint32_t *vdh_host_guest_clipboard_types(VdhHost *h, uint8_t selection, unsigned *n);

/* Fetch the guest's clipboard: waits (within the timeout) for a guest GRAB
 * of the selection if it has none, sends REQUEST for type (0 = the first
 * type offered), and collects the data (streamed; bounded by the
 * max_clipboard we announced). One fetch per selection at a time (BUSY).
 * Errors: REFUSED when the guest does not offer the type or answers with
 * type NONE or no data (spice-vdagentd's answer to a selection above our
 * max-clipboard); PROTOCOL when the data exceeds our max-clipboard or is
 * malformed; TIMEOUT.
 *
 * Grab serials (both sides have CLIPBOARD_GRAB_SERIAL) follow the client
 * rules: per selection, reset to 0 on a new connection, on any announce
 * with request=1 and on CLIENT_DISCONNECTED; our GRAB carries the counter
 * and increments it; a guest GRAB older than the counter is discarded
 * (reported through the dropped event), a newer one moves it on. */
void vdh_host_clipboard_get_async(VdhHost *h, uint8_t selection, uint32_t type, unsigned timeout_ms,
                                  GCancellable *c, GAsyncReadyCallback cb, gpointer user);
GBytes *vdh_host_clipboard_get_finish(VdhHost *h, GAsyncResult *res, uint32_t *type_out, GError **error);
GBytes *vdh_host_clipboard_get_sync(VdhHost *h, uint8_t selection, uint32_t type, unsigned timeout_ms,
                                    uint32_t *type_out, GError **error);

/* ---- file transfer to the guest (fails with CAPABILITY if the guest has
 * FILE_XFER_DISABLED) ---- */

typedef struct VdhXferProgress {
    unsigned file_index, nfiles;  /* 0-based index in the batch */
    const char *name;             /* base name sent to the guest */
    uint64_t sent, size;          /* this file */
    uint64_t batch_sent, batch_size;
} VdhXferProgress;

typedef void (*VdhXferProgressFunc)(void *user, const VdhXferProgress *p);

/* Send the files as one batch (file-xfer-nr / file-xfer-total), reading
 * them in pieces (never whole into memory), with up to several DATA
 * messages in flight and pausing when the port backs up. The whole batch
 * fails on the first refusal; the error names the file and the guest's
 * reason (detailed statuses: not enough space with the free space, session
 * locked, no agent, disabled, I/O error code). timeout_ms bounds each wait
 * for the guest (START answer, final status), not the whole transfer.
 * Cancelling sends STATUS CANCELLED for the files in flight. */
void vdh_host_send_files_async(VdhHost *h, const char *const *paths, VdhXferProgressFunc progress,
                               void *progress_user, unsigned timeout_ms, GCancellable *c,
                               GAsyncReadyCallback cb, gpointer user);
gboolean vdh_host_send_files_finish(VdhHost *h, GAsyncResult *res, GError **error);
gboolean vdh_host_send_files_sync(VdhHost *h, const char *const *paths, VdhXferProgressFunc progress,
                                  void *progress_user, unsigned timeout_ms, GError **error);

/* ---- the rest of the protocol ---- */

gboolean vdh_host_send_graphics_device_info(VdhHost *h, const VdpGraphicsDeviceInfo *info, GError **error);
gboolean vdh_host_send_audio_volume(VdhHost *h, bool playback, bool mute, const uint16_t *volume,
                                    unsigned nchannels, GError **error);
gboolean vdh_host_send_display_config(VdhHost *h, uint32_t flags, uint32_t depth, GError **error);
/* CLIENT_DISCONNECTED on port 2, and forget per-client state (serials,
 * offered clipboard, transfers), as spice-server does when the last
 * client leaves. The next operation re-announces (request=1). */
gboolean vdh_host_send_client_disconnected(VdhHost *h, GError **error);
gboolean vdh_host_send_max_clipboard(VdhHost *h, int32_t max, GError **error);
gboolean vdh_host_announce(VdhHost *h, bool request, GError **error);

/* Counters for status output. */
typedef struct VdhHostStats {
    uint64_t messages_in, messages_out, dropped, bytes_in, bytes_out;
    unsigned connects;
    /* The port's write queue: bytes queued now, the most ever queued,
     * where producers pause (high) and what it never exceeds (limit). */
    size_t queued, queue_peak, queue_high, queue_limit;
} VdhHostStats;
void vdh_host_get_stats(VdhHost *h, VdhHostStats *st);

G_END_DECLS

#endif /* VDH_HOST_H */
