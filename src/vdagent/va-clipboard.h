/* va-clipboard.h - the session agent's clipboard: a backend-independent core
 * (protocol state per selection, limits, timeouts, the IPC side) with an X11
 * backend (Xlib + XFixes, va-clipboard-x11.c). A Wayland backend can later
 * be added beside the X11 one behind the same core.
 *
 * The IPC rules (VDAGENT envelopes for GRAB/REQUEST/RELEASE/MAX_CLIPBOARD,
 * CLIP_BEGIN/CHUNK/ABORT streams from the daemon, CLIP_DATA_FD or a
 * CLIPBOARD envelope to it) are in src/proto/vdp-ipc-msg.h.
 *
 * Everything runs on the context of the VaX11 connection; nothing blocks it.
 */
#ifndef VA_CLIPBOARD_H
#define VA_CLIPBOARD_H

#include <stdbool.h>
#include <stdint.h>

#include "vdp-ipc-conn.h"
#include "vdp-ipc.h"
#include "vdp-msg.h"
#include "va-x11.h"

typedef struct VaClipboard VaClipboard;

/* Take part in CLIPBOARD and PRIMARY on the display. Fails (G_IO_ERROR)
 * when XFixes is missing: without it guest->client cannot work. */
VaClipboard *va_clipboard_new(VaX11 *x, GError **error);
/* Gives up the selections it owns and frees everything. */
void va_clipboard_free(VaClipboard *cb);

/* The daemon connection, or NULL while there is none. Losing it ends every
 * transfer in both directions (X requestors are refused, not left waiting)
 * and gives up selections owned for the client. */
void va_clipboard_set_conn(VaClipboard *cb, VdpIpcConn *conn);

/* SESSION_STATE flags (VDP_IPC_SESSION_*). When CLIENT_CONNECTED turns on,
 * the guest's current selections are announced (GRAB) to the new client;
 * when it turns off, selections owned for the client are given up. */
void va_clipboard_session_state(VaClipboard *cb, uint32_t flags);

/* A VDAGENT envelope from the daemon, already decoded with vdp_ipc_layout:
 * CLIPBOARD_GRAB, CLIPBOARD_REQUEST, CLIPBOARD_RELEASE, MAX_CLIPBOARD (and
 * a whole CLIPBOARD, handled like a BEGIN with its data). Returns false if
 * msg is not a clipboard message. */
bool va_clipboard_handle_msg(VaClipboard *cb, const VdpMsg *msg);

/* CLIP_BEGIN, CLIP_CHUNK or CLIP_ABORT. Returns false on a protocol error
 * (bad payload, chunk without a stream, chunk past the size, BEGIN while a
 * stream is open): the caller closes the connection. */
bool va_clipboard_handle_frame(VaClipboard *cb, const VdpIpcHeader *hdr,
                               const uint8_t *payload);

#endif /* VA_CLIPBOARD_H */
