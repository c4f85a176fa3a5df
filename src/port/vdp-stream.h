/* vdp-stream.h - a non-blocking byte stream on a file descriptor, driven by
 * a GMainContext, with a bounded write queue and fd passing.
 *
 * The building block under VdpPort (virtio channel) and VdpIpcConn (daemon
 * <-> agent socket). Nothing here blocks the loop:
 *  - reads happen when the fd is readable, in pieces of read_size bytes,
 *    and can be paused (backpressure towards the peer);
 *  - writes are copied into a queue and drained when the fd is writable.
 *    The queue has a high watermark (write_blocked callback: producers
 *    should pause), a low watermark (write_ready: resume) and a hard limit
 *    above which writes are refused with VDP_ERR_BUSY, so memory stays
 *    bounded even with a producer that ignores the callbacks.
 *  - end of file, hang-up and errors are reported once through closed();
 *    after that the stream does nothing until freed.
 */
#ifndef VDP_STREAM_H
#define VDP_STREAM_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vdp-error.h"

typedef struct VdpStream VdpStream;

typedef enum VdpStreamCloseReason {
    VDP_STREAM_EOF,       /* the peer closed its end (read returned 0 / POLLHUP) */
    VDP_STREAM_ERROR,     /* read/write error; errno value passed along */
    VDP_STREAM_LOCAL,     /* the owner asked for it (callback from vdp_stream_shutdown) */
} VdpStreamCloseReason;

typedef struct VdpStreamCallbacks {
    /* Bytes arrived. fds (nfds of them, only with pass_fds) arrived with
     * them; the callee owns them. Required. */
    void (*data)(void *user, const uint8_t *data, size_t len, int *fds, unsigned nfds);
    /* Queue rose to the high watermark. Optional. */
    void (*write_blocked)(void *user);
    /* Queue fell to the low watermark after having been blocked. Optional. */
    void (*write_ready)(void *user);
    /* Queue became empty. Optional. */
    void (*drained)(void *user);
    /* The stream ended; called once. The owner may free the stream from
     * inside this callback. Required. */
    void (*closed)(void *user, VdpStreamCloseReason reason, int errnum);
} VdpStreamCallbacks;

typedef struct VdpStreamConfig {
    size_t read_size;        /* bytes per read; 0 = 64 KiB */
    size_t high_watermark;   /* 0 = 1 MiB */
    size_t low_watermark;    /* 0 = high / 4 */
    size_t queue_limit;      /* hard cap on queued bytes; 0 = 2 * high */
    bool pass_fds;           /* AF_UNIX socket: use sendmsg/recvmsg with SCM_RIGHTS */
    bool hup_is_eof;         /* treat POLLHUP without data as EOF (default behaviour for sockets/devices) */
} VdpStreamConfig;

#define VDP_STREAM_READ_SIZE_DEFAULT (64u * 1024u)
#define VDP_STREAM_HIGH_WATERMARK_DEFAULT (1024u * 1024u)

/* Descriptors one vdp_stream_write() may carry, and one read may receive
 * (a peer sending more with one message fails the stream: the kernel
 * truncates the control data). The IPC needs VDP_IPC_MAX_FDS (4). */
#define VDP_STREAM_MAX_FDS 16u
/* Descriptors queued for sending at once; above it writes get
 * VDP_ERR_BUSY. Bounds the queue's bookkeeping like queue_limit does. */
#define VDP_STREAM_MAX_QUEUED_FDS 64u

/* Wrap fd (made non-blocking and close-on-exec; owned from now on).
 * Returns NULL (fd closed) on invalid arguments (a g_critical: required
 * callbacks missing, low > high watermark, queue_limit < high), or with
 * errno set when the descriptor cannot be used (EBADF, ENOTSOCK for
 * pass_fds on a non-socket, ENOMEM, fcntl errors). */
VdpStream *vdp_stream_new(GMainContext *ctx, int fd, const VdpStreamConfig *cfg,
                          const VdpStreamCallbacks *cb, void *user);

/* Closes the fd and drops the queue (closing queued fds). No callbacks. */
void vdp_stream_free(VdpStream *s);

/* Queue len bytes (copied) and nfds descriptors (ownership taken, closed
 * after they were sent or when the stream goes away). The fds go with the
 * first byte of data, so len must be > 0 when nfds > 0.
 * VDP_ERR_BUSY: above queue_limit, nothing queued, fds still the caller's.
 * VDP_ERR_CLOSED: stream already closed, fds still the caller's.
 * VDP_ERR_TOO_LARGE: len above queue_limit (can never fit) or nfds above
 * VDP_STREAM_MAX_FDS; VDP_ERR_RANGE: fds without pass_fds or without data;
 * VDP_ERR_IO: the descriptor is not open for writing. Nothing is taken. */
VdpResult vdp_stream_write(VdpStream *s, const void *data, size_t len,
                           const int *fds, unsigned nfds);

/* Would a write of len bytes be accepted now? */
bool vdp_stream_can_write(const VdpStream *s, size_t len);

size_t vdp_stream_queued(const VdpStream *s);
bool vdp_stream_write_blocked(const VdpStream *s);  /* between high and low watermark */
bool vdp_stream_is_closed(const VdpStream *s);

/* Stop/resume reading (backpressure towards the peer). Counted: each
 * pause(true) needs a pause(false). Pausing from inside data() stops the
 * next read; the bytes of the current one (at most read_size) have been
 * delivered already. */
void vdp_stream_pause_read(VdpStream *s, bool pause);

/* Try to write out the queue within timeout_ms, blocking with poll(). Only
 * for teardown paths (daemon exit), never from a running loop's callbacks.
 * Returns VDP_OK if everything was written. */
VdpResult vdp_stream_flush_sync(VdpStream *s, int timeout_ms);

/* Close now from the owner's side: closed(VDP_STREAM_LOCAL) is called from
 * an idle source, not from inside this call. */
void vdp_stream_shutdown(VdpStream *s);

int vdp_stream_get_fd(const VdpStream *s);

typedef struct VdpStreamStats {
    uint64_t bytes_in, bytes_out, reads, writes, blocked_count;
    size_t queue_peak;
} VdpStreamStats;
void vdp_stream_get_stats(const VdpStream *s, VdpStreamStats *st);

#endif /* VDP_STREAM_H */
