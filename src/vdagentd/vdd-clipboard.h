/* vdd-clipboard.h - clipboard routing between the client on the port and
 * the session agents (by demand: GRAB, REQUEST, CLIPBOARD, RELEASE), by the
 * IPC rules in vdp-ipc-msg.h ("Clipboard data, the rules both sides
 * follow").
 *
 * One place holds the state of each selection (CLIPBOARD, PRIMARY,
 * SECONDARY): who owns it (nobody, the client with its offered types, or
 * the guest through one agent), the client's grab serial, the client
 * REQUESTs waiting for the guest's answer and the agent REQUESTs waiting
 * for the client's data.
 *
 * Client -> guest. GRAB (serial rule of 0.22.1: serial == cur - 1 accepted
 * as is, "the client wins"; serial == cur accepted and cur incremented;
 * anything else dropped), REQUEST and RELEASE go to the active agent in
 * VDAGENT envelopes. A REQUEST the guest cannot answer (no active agent,
 * the guest does not own the selection, gating, too many waiting) is
 * answered with CLIPBOARD type NONE, in order behind the answers already
 * waiting for the port. The client's data for an
 * agent's REQUEST goes out as CLIP_BEGIN + CLIP_CHUNK frames as it arrives
 * from the port (re-chunked into VDD_CLIP_FORWARD_CHUNK pieces), never held
 * whole. Whenever port input made us send to the active agent (data, GRAB,
 * REQUEST, RELEASE, and the daemon's own forwarding through
 * vdd_clip_port_input_done) and its IPC queue is over its watermark, the
 * port is not read until it drains (at most VDD_CLIP_STALL_MS). A stream
 * cut short (client gone, port reset, agent switch, stalled agent) ends
 * with CLIP_ABORT to the agent that had it.
 *
 * Answers keep the order of the requests per selection, in both
 * directions. Towards the agent: a refused REQUEST is answered NONE after
 * the answers to that agent's earlier REQUESTs; a request that will not
 * get the client's data any more (switch, lock, client release, agent
 * gone) is answered NONE and stays queued as a placeholder that swallows
 * the client's late answer; a client CLIPBOARD the daemon had to drop
 * (vdd_clip_client_data_lost) answers its request NONE.
 *
 * Guest -> client. Only the active agent's messages, only while a client
 * with CLIPBOARD_BY_DEMAND is there (without its CLIPBOARD_SELECTION only
 * the CLIPBOARD selection). GRABs get serial = cur++. A refused agent
 * REQUEST is answered with CLIP_BEGIN type NONE (in order, see above). The agent's answer
 * comes as a CLIPBOARD envelope (small) or as CLIP_DATA_FD with a sealed
 * memfd, which is checked (regular file, large enough, F_SEAL_SHRINK and
 * F_SEAL_WRITE) and streamed to the port with pread as the port drains,
 * one stream at a time, never filling the port's queue above its high
 * watermark (the rest is room for whole messages). Everything for the
 * client (GRAB, RELEASE, REQUEST, answers with data, empty or from a
 * memfd) leaves in the order it was produced: what the port cannot take
 * now waits in one queue, nothing is dropped; a GRAB or RELEASE still
 * waiting is replaced by a newer one of its selection. Data above the
 * client's MAX_CLIPBOARD becomes CLIPBOARD of the same type without data;
 * guest data not on the wire yet when the session locks or its agent stops
 * being the active one becomes that too.
 *
 * Gating: while the active session is locked or a greeter (unless the
 * daemon runs with --allow-clipboard-when-locked) nothing crosses: client
 * selections are released towards the agent (and re-offered when the gate
 * opens), guest selections are released towards the client, GRABs are
 * dropped (their serials still count), REQUESTs are answered with NONE.
 */
#ifndef VDD_CLIPBOARD_H
#define VDD_CLIPBOARD_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "vdd-agents.h"
#include "vdp-caps.h"
#include "vdp-ipc-msg.h"
#include "vdp-msg.h"
#include "vdp-port.h"

/* Selections tracked: the IPC's 0..VDP_IPC_CLIP_SELECTION_MAX. */
#define VDD_CLIP_NSEL (VDP_IPC_CLIP_SELECTION_MAX + 1u)
/* Client REQUESTs per selection forwarded to the guest and not answered
 * yet. A client asks once per paste and waits; a few cover a user pasting
 * several formats at once, and the bound keeps a client that never gets an
 * answer from growing the table. Beyond it: answered NONE at once. */
#define VDD_CLIP_MAX_PENDING 8u
/* The same for agent REQUESTs forwarded to the client (one X requestor
 * per target at a time), placeholders included. Beyond it: answered NONE
 * after the answers to the agent's requests that wait (a counter on the
 * last of them, no memory per refusal). */
#define VDD_CLIP_MAX_AGENT_PENDING 8u
/* Messages for the client waiting in our queue (the port refused them or
 * something before them waits) above which the port is not read until the
 * queue is down to half: the agent's share is bounded by the limits above
 * and one GRAB/RELEASE per selection, so only a client that floods
 * REQUESTs while not reading its answers reaches it. */
#define VDD_CLIP_OUT_PAUSE 64u
/* Bytes of small guest answers (CLIPBOARD envelopes, at most
 * VDP_IPC_MAX_FRAME each) waiting in that queue; beyond it a new one is
 * answered with empty data of its type: memory stays bounded while the
 * host does not read. */
#define VDD_CLIP_MAX_OUT_BYTES (1024u * 1024u)
/* Client data goes to the agent in CLIP_CHUNK frames of at most this size:
 * far below VDP_IPC_MAX_FRAME, and half the agent queue's high watermark so
 * a slow agent is noticed after two frames. */
#define VDD_CLIP_FORWARD_CHUNK (128u * 1024u)
/* Guest data is read from the memfd in pieces of this size: the port's
 * queue takes a few of them before it says "blocked". */
#define VDD_CLIP_READ_PIECE (64u * 1024u)
/* When the port refuses below its high watermark (no write_ready to come:
 * messages waiting behind a stream, another producer's bytes), the queue is
 * retried after this long. */
#define VDD_CLIP_RETRY_MS 20u
/* An agent that does not read its IPC socket for this long while the port
 * waits for it loses its clipboard stream (CLIP_ABORT) and the port is read
 * again: one stuck agent must not stop the mouse and everything else for
 * good. Long enough for any live agent under load. */
#define VDD_CLIP_STALL_MS 30000u

typedef struct VddClip VddClip;

/* port, client_caps, layout and max_clipboard are the daemon's (not
 * owned; they must outlive the clipboard). */
VddClip *vdd_clip_new(GMainContext *ctx, VdpPort *port, const VdpCaps *client_caps,
                      const VdpLayout *layout, const int32_t *max_clipboard);
void vdd_clip_free(VddClip *c);

/* ---- state from the daemon ---- */

/* The active agent (NULL: none) and the gate: gated when the active
 * session is locked or a greeter and the option does not allow sharing
 * then (why says which, for the log line, written once per change).
 *
 * A new active agent: the previous one, if still connected, gets its open
 * stream aborted, its pending requests answered NONE and RELEASE for the
 * client's selections; its own selections are released towards the client
 * and the client's pending requests answered NONE; the new one gets the
 * client's current grabs (unless gated). */
void vdd_clip_update(VddClip *c, VddAgent *active, bool gated, const char *why);
/* The client went away (CLIENT_DISCONNECTED, new client, port closed):
 * forget its ownership and serials, RELEASE towards the active agent for
 * what it owned, abort the stream to the agent, answer waiting agent
 * requests NONE. */
void vdd_clip_client_gone(VddClip *c);
/* The port connection ended: outgoing streams are gone with it. */
void vdd_clip_port_lost(VddClip *c);
/* The port drained below its low watermark. */
void vdd_clip_port_write_ready(VddClip *c);
/* The daemon handled a message from the port (it may have sent something
 * to the active agent): pause the port while that agent is behind. */
void vdd_clip_port_input_done(VddClip *c);

/* ---- from the client (decoded with the client's layout) ---- */

/* CLIPBOARD_GRAB, CLIPBOARD_REQUEST, CLIPBOARD_RELEASE, and CLIPBOARD
 * delivered whole. */
void vdd_clip_client_msg(VddClip *c, const VdpMsg *m);
/* A streamed CLIPBOARD: head (u.clipboard with data NULL and size), then
 * the bytes, then the end or an abort. */
void vdd_clip_stream_begin(VddClip *c, const VdpMsg *head);
void vdd_clip_stream_data(VddClip *c, const uint8_t *data, size_t len);
void vdd_clip_stream_end(VddClip *c);
void vdd_clip_stream_abort(VddClip *c);
/* A client CLIPBOARD was dropped before it began (it did not decode, or the
 * reassembler skipped it): its request gets NONE. selection: from the raw
 * payload when known, else -1 (the oldest request is taken). */
void vdd_clip_client_data_lost(VddClip *c, int selection);

/* ---- from the agents ---- */

/* A clipboard VDAGENT envelope (GRAB, REQUEST, RELEASE, CLIPBOARD). */
void vdd_clip_agent_msg(VddClip *c, VddAgent *a, const VdpMsg *m);
/* CLIP_DATA_FD (head decoded and checked by vdd-agents.c); fd is owned by
 * the callee (-1 when head->size is 0). */
void vdd_clip_agent_data_fd(VddClip *c, VddAgent *a, const VdpIpcClipHead *head, int fd);
/* The agent is going away (still valid during the call). */
void vdd_clip_agent_gone(VddClip *c, VddAgent *a);
/* The agent's IPC queue drained below its low watermark. */
void vdd_clip_agent_write_ready(VddClip *c, VddAgent *a);

/* ---- status ---- */

/* "none", "client" or "guest". */
const char *vdd_clip_owner_name(const VddClip *c, unsigned selection);
/* Is sharing stopped by the lock/greeter gate now? */
bool vdd_clip_gated(const VddClip *c);

#endif /* VDD_CLIPBOARD_H */
