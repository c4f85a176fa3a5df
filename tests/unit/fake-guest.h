/* fake-guest.h - a scripted guest agent for the host library's tests.
 *
 * Built on VdpPort like the real daemon: it listens (the host connects,
 * as to a QEMU chardev) or connects (the host listens, as for
 * spice-vdagentd -s PATH), decodes everything the host sends with the
 * project's decoder (VDP_FROM_HOST), records every message, and answers
 * the way spice-vdagentd 0.22.1 does unless told otherwise:
 *  - announces with request=1 when the port opens, answers an announce
 *    with request=1 with request=0 and then restarts its grab serials;
 *  - REPLYs MONITORS_CONFIG (success, error, or not at all; optionally
 *    ignoring configs with PHYSICAL_SIZE like 0.22.1);
 *  - checks the host's grab serials by the daemon's rule (current or
 *    current - 1) and counts discards;
 *  - answers clipboard REQUESTs with what fg_set_clipboard() gave it;
 *  - receives files: START answered per FgXferMode, DATA hashed
 *    (FNV-1a) and counted, SUCCESS when complete; statuses from the host
 *    are recorded per transfer.
 * Large messages arrive streamed and are hashed piece by piece.
 */
#ifndef FAKE_GUEST_H
#define FAKE_GUEST_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "vdp-caps.h"
#include "vdp-msg.h"
#include "vdp-port.h"

/* Payloads up to this size are kept (and decoded) in the record. */
#define FG_RAW_MAX (256u * 1024u)
#define FG_NSEL 3u

typedef enum FgReplyMode {
    FG_REPLY_SUCCESS,
    FG_REPLY_ERROR,
    FG_REPLY_NONE,
} FgReplyMode;

typedef enum FgXferMode {
    FG_XFER_ACCEPT,            /* CAN_SEND_DATA, SUCCESS once complete */
    FG_XFER_NOT_ENOUGH_SPACE,  /* with free_space as detail */
    FG_XFER_DISABLED,
    FG_XFER_SESSION_LOCKED,
    FG_XFER_IO_ERROR,          /* ERROR with {GLIB_IO, io_error} */
    FG_XFER_SILENT,            /* never answers START */
} FgXferMode;

typedef struct FgConfig {
    const char *path;
    bool listen;               /* listen for the host, else connect to it */
    const VdpCaps *caps;       /* NULL = vdp_caps_init_guest() */
    bool no_announce;          /* do not announce when the port opens */
    size_t chunk_size;         /* what it writes; 0 = 2048 */
    size_t max_chunk_in;       /* largest chunk accepted; 0 = any */
    size_t queue_limit;        /* its write queue; 0 = default (big messages need more) */
    bool vdagent_0221;         /* no REPLY to MONITORS_CONFIG with PHYSICAL_SIZE */
} FgConfig;

typedef struct FgMsg {
    uint32_t chunk_port, type, size;
    uint8_t *raw;              /* payload, if size <= FG_RAW_MAX */
    bool ok;                   /* decoded (msg valid) */
    bool streamed;
    bool complete;             /* all of it arrived (streamed: at its end) */
    VdpMsg msg;                /* views into raw; data NULL when streamed */
    uint64_t hash;             /* FNV-1a of CLIPBOARD / FILE_XFER_DATA data */
    char error[VDP_ERROR_TEXT_MAX];
} FgMsg;

typedef struct FgFile {
    uint32_t id;
    char *name;
    uint64_t size, received, hash;
    int nr, total;
    uint32_t host_status;      /* last STATUS the host sent, or UINT32_MAX */
    bool done;                 /* SUCCESS sent */
} FgFile;

typedef struct FakeGuest {
    GMainContext *ctx;
    VdpPort *port;
    char *path;
    FgConfig cfg;
    VdpCaps caps;
    VdpPortState state;
    unsigned opens, closes;

    VdpCaps host_caps;
    bool host_announced;
    VdpLayout layout;

    GPtrArray *msgs;           /* FgMsg * */
    GPtrArray *files;          /* FgFile * */

    /* script */
    FgReplyMode reply;
    FgXferMode xfer;
    uint64_t free_space;
    uint32_t io_error;
    bool pause_on_can_send;    /* stop reading right after CAN_SEND_DATA */
    bool answer_requests;      /* default true */
    uint32_t clip_type[FG_NSEL];
    GBytes *clip_data[FG_NSEL];

    /* grab serials, the daemon's way */
    uint32_t serial[FG_NSEL];
    unsigned grab_discards;

    unsigned unknown_data;     /* DATA for ids it does not know */
    unsigned paused;
    FgMsg *stream_msg;         /* streamed message in progress */
    FgFile *stream_file;
} FakeGuest;

FakeGuest *fg_new(GMainContext *ctx, const FgConfig *cfg);
void fg_free(FakeGuest *fg);
void fg_start(FakeGuest *fg);
/* Close the connection (the host sees the guest go away). */
void fg_stop(FakeGuest *fg);
bool fg_is_open(const FakeGuest *fg);

bool fg_send(FakeGuest *fg, const VdpMsg *msg);
bool fg_send_raw(FakeGuest *fg, uint32_t chunk_port, uint32_t type, const void *payload,
                 size_t len);
void fg_announce(FakeGuest *fg, bool request);
/* GRAB with the next serial (when the layout has serials). */
void fg_grab(FakeGuest *fg, uint8_t sel, const uint32_t *types, unsigned ntypes);
void fg_grab_serial(FakeGuest *fg, uint8_t sel, uint32_t serial, uint32_t type);
void fg_release(FakeGuest *fg, uint8_t sel);
void fg_request(FakeGuest *fg, uint8_t sel, uint32_t type);
/* What it answers to the host's REQUEST of (sel, type); NULL: NONE. */
void fg_set_clipboard(FakeGuest *fg, uint8_t sel, uint32_t type, GBytes *data);
void fg_pause_read(FakeGuest *fg, bool pause);

/* Queries see complete messages only (a streamed one once it ended). */
unsigned fg_count(const FakeGuest *fg, uint32_t type);
const FgMsg *fg_nth(const FakeGuest *fg, uint32_t type, unsigned n);
const FgMsg *fg_last(const FakeGuest *fg, uint32_t type);
/* Index of the n-th message of a type in the record, or -1. */
int fg_index(const FakeGuest *fg, uint32_t type, unsigned n);
/* The latest transfer with that id (ids start over per client). */
const FgFile *fg_file(const FakeGuest *fg, uint32_t id);
void fg_forget(FakeGuest *fg);   /* clear the record */

#endif /* FAKE_GUEST_H */
