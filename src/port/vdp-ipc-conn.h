/* vdp-ipc-conn.h - one daemon <-> agent IPC connection on a GMainContext.
 *
 * Frames (vdp-ipc.h) over a VdpStream with SCM_RIGHTS fd passing, the same
 * bounded queue and watermarks as the port. Any malformed frame closes the
 * connection (reported through closed() with the reason). Handshake policy
 * (who may connect, timeouts) is the owner's business.
 */
#ifndef VDP_IPC_CONN_H
#define VDP_IPC_CONN_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vdp-error.h"
#include "vdp-ipc.h"
#include "vdp-msg.h"
#include "vdp-stream.h"
#include "vdp-unix.h"

typedef struct VdpIpcConn VdpIpcConn;

typedef struct VdpIpcConnCallbacks {
    /* A frame; the callee owns fds. Return false if the connection was
     * freed inside the callback (stop delivering). Required. */
    bool (*frame)(void *user, const VdpIpcHeader *hdr, const uint8_t *payload,
                  int *fds, unsigned nfds);
    /* The connection ended: EOF, I/O error or protocol error (why says
     * which). Called once; the owner may free the connection in it. */
    void (*closed)(void *user, const char *why);
    void (*write_blocked)(void *user);
    void (*write_ready)(void *user);
} VdpIpcConnCallbacks;

/* Wrap a connected AF_UNIX stream socket (owned from now on). cfg may be
 * NULL for defaults; pass_fds is forced on. */
VdpIpcConn *vdp_ipc_conn_new(GMainContext *ctx, int fd, const VdpStreamConfig *cfg,
                             const VdpIpcConnCallbacks *cb, void *user);
void vdp_ipc_conn_free(VdpIpcConn *c);

/* Queue a frame. fds: ownership taken on VDP_OK only. */
VdpResult vdp_ipc_conn_send(VdpIpcConn *c, uint16_t type, uint32_t id,
                            const uint8_t *payload, size_t len,
                            const int *fds, unsigned nfds);

/* Send a VDP_IPC_VDAGENT frame carrying msg in canonical layout. */
VdpResult vdp_ipc_conn_send_vdagent(VdpIpcConn *c, uint32_t id, const VdpMsg *msg, VdpError *err);

void vdp_ipc_conn_pause_read(VdpIpcConn *c, bool pause);
size_t vdp_ipc_conn_queued(const VdpIpcConn *c);
bool vdp_ipc_conn_write_blocked(const VdpIpcConn *c);
VdpResult vdp_ipc_conn_flush_sync(VdpIpcConn *c, int timeout_ms);

/* Peer credentials from SO_PEERCRED (captured at connect time), and a
 * pidfd from SO_PEERPIDFD when the kernel has it (else -1). */
bool vdp_ipc_conn_peer_cred(const VdpIpcConn *c, pid_t *pid, uid_t *uid, gid_t *gid);
int vdp_ipc_conn_peer_pidfd(const VdpIpcConn *c);

#endif /* VDP_IPC_CONN_H */
