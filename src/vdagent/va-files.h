/* va-files.h - files received from the client (FILE_XFER_START/DATA/STATUS)
 * saved into one directory, safely: names confined to the directory, no
 * symlink followed, collisions renamed "name (N).ext", free space checked
 * and reserved, partial files removed on cancel or error, disk writes off
 * the main loop with the IPC paused while they are behind.
 *
 * Names: only the last '/'-separated component of the client's name is
 * used ("../x", "/etc/x" and "a/../../b" become "x", "x" and "b"); a name
 * that is empty, "." or "..", not UTF-8, with control characters (C0, C1,
 * DEL, line/paragraph separators, bidi embeddings, overrides and isolates)
 * or too long is refused (ERROR, G_IO_ERROR_INVALID_FILENAME). Files are created
 * with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) (openat with
 * O_NOFOLLOW on kernels without it) and O_EXCL relative to the directory
 * opened once: an existing name, a symlink included, is never opened, the
 * next "name (N).ext" is tried instead.
 *
 * Every disk operation (create, statvfs, fallocate, write, close, unlink)
 * runs on one worker thread in arrival order; results come back to the
 * context. What waits for the worker is bounded, counting every job at
 * VA_FILES_JOB_COST on top of its data (consecutive DATA of one transfer
 * are merged into one write of up to VA_FILES_MERGE_MAX): reading from the
 * daemon is paused above VA_FILES_PENDING_HIGH, and a transfer (or START)
 * that would push it past VA_FILES_PENDING_MAX (a daemon ignoring the
 * pause) fails.
 *
 * Every transfer gets exactly one final status while the daemon
 * connection is up: SUCCESS, an error, or, when the agent ends it on its
 * own, SESSION_LOCKED (locked), DISABLED (transfers disabled) or
 * CANCELLED (the agent stops). Only a client's own cancel and a lost
 * connection (the daemon answers the client then) end one silently.
 *
 * No X11 here: testable on its own.
 */
#ifndef VA_FILES_H
#define VA_FILES_H

#include <stdbool.h>
#include <stdint.h>

#include <gio/gio.h>

#include "vdp-ipc-conn.h"
#include "vdp-ipc-msg.h"
#include "vdp-msg.h"

/* Data queued for the disk worker above which reading from the daemon is
 * paused: 64 data envelopes of 128 KiB, enough to keep a disk busy. */
#define VA_FILES_PENDING_HIGH (8u * 1024u * 1024u)
/* ... and below which it resumes. */
#define VA_FILES_PENDING_LOW (2u * 1024u * 1024u)
/* Hard bound: frames already read when the pause takes effect (one socket
 * read) fit far below it; beyond it the daemon is not honouring the pause
 * and the transfer that would exceed it fails instead of growing memory. */
#define VA_FILES_PENDING_MAX (32u * 1024u * 1024u)
/* What one queued disk job costs beyond its data buffer (the job, its
 * queue node, the result's idle source, allocator overhead: about 150
 * bytes measured, rounded up). Charged in the pending count so that
 * many tiny DATA messages pause reading as large ones do. */
#define VA_FILES_JOB_COST 256u
/* Consecutive DATA for one transfer are appended to its newest queued
 * write while the worker has not taken it, up to this size: the daemon's
 * data envelopes are 128 KiB, and a client sending tiny pieces then costs
 * one job per 128 KiB instead of one per message. */
#define VA_FILES_MERGE_MAX (128u * 1024u)
/* Transfers at once: the daemon allows 128; more is a broken peer. */
#define VA_FILES_MAX_TASKS 128u
/* xdg-open (a file manager window) runs at most once per this interval:
 * a host finishing hundreds of one-file batches a second would otherwise
 * start hundreds of processes. Batches ending sooner are merged into one
 * call at the end of the interval. */
#define VA_FILES_OPEN_DIR_INTERVAL_MS 2000u
/* "name (N).ext" candidates tried before giving up (0.22.1 tries 63). */
#define VA_FILES_MAX_COPIES 999u

typedef struct VaFiles VaFiles;

/* save_dir: an existing directory (opened once, O_DIRECTORY | O_PATH;
 * everything is created relative to it), or NULL: no usable directory,
 * every transfer is refused with DISABLED. open_dir: show the directory
 * with xdg-open (no shell) after a batch completes. Fails when save_dir is
 * given but cannot be opened. open_dir is rate-limited
 * (VA_FILES_OPEN_DIR_INTERVAL_MS). */
VaFiles *va_files_new(GMainContext *ctx, const char *save_dir, bool open_dir, GError **error);
/* Cancels all transfers (CANCELLED to each while connected) and waits for
 * the worker: partial files are removed when it returns. */
void va_files_free(VaFiles *f);

/* The daemon connection or NULL. Replacing or clearing it cancels all
 * transfers without statuses (the daemon ended them for the client when it
 * lost this agent). */
void va_files_set_conn(VaFiles *f, VdpIpcConn *conn);

/* SESSION_STATE flags (VDP_IPC_SESSION_*): with LOCKED new transfers get
 * SESSION_LOCKED, else without FILE_XFER_ENABLED they get DISABLED. Without
 * FILE_XFER_ENABLED running ones end with that same status and their
 * partial files are removed; those whose data has all arrived are saved
 * and end with SUCCESS. Before the first call transfers are allowed (the
 * daemon applies its policy as well). */
void va_files_session_state(VaFiles *f, uint32_t flags);

/* FILE_XFER_START, FILE_XFER_DATA, FILE_XFER_STATUS (a cancel from the
 * client). Returns false if msg is not a file-transfer message. */
bool va_files_handle_msg(VaFiles *f, const VdpMsg *msg);

/* Transfers in progress (for status and tests). */
unsigned va_files_active(const VaFiles *f);
/* What waits for the disk worker (data buffers plus VA_FILES_JOB_COST
 * per job), and whether reading is paused. */
size_t va_files_pending(const VaFiles *f);
/* Jobs handed to the worker whose results have not come back yet. */
unsigned va_files_queued_jobs(const VaFiles *f);
bool va_files_read_paused(const VaFiles *f);

/* Tests only: hold the worker before its next job (a disk that does not
 * keep up) or let it go. */
void va_files_test_hold_worker(VaFiles *f, bool hold);

#endif /* VA_FILES_H */
