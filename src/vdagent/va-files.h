/* va-files.h - files received from the client (FILE_XFER_START/DATA/STATUS)
 * saved into one directory, safely: names confined to the directory, no
 * symlink followed, collisions renamed "name (N).ext", free space checked
 * and reserved, partial files removed on cancel or error, disk writes off
 * the main loop with the IPC paused while they are behind.
 *
 * No X11 here: testable on its own.
 */
#ifndef VA_FILES_H
#define VA_FILES_H

#include <stdbool.h>
#include <stdint.h>

#include <gio/gio.h>

#include "vdp-ipc-conn.h"
#include "vdp-msg.h"

typedef struct VaFiles VaFiles;

/* save_dir: an existing directory (opened once, O_DIRECTORY | O_PATH;
 * everything is created relative to it). open_dir: show the directory with
 * xdg-open (no shell) after a batch completes. Fails when the directory
 * cannot be opened. */
VaFiles *va_files_new(GMainContext *ctx, const char *save_dir, bool open_dir, GError **error);
/* Cancels all transfers (partial files removed). */
void va_files_free(VaFiles *f);

/* The daemon connection or NULL (NULL cancels all transfers). */
void va_files_set_conn(VaFiles *f, VdpIpcConn *conn);

/* FILE_XFER_START, FILE_XFER_DATA, FILE_XFER_STATUS (a cancel from the
 * client). Returns false if msg is not a file-transfer message. */
bool va_files_handle_msg(VaFiles *f, const VdpMsg *msg);

/* Transfers in progress (for status and tests). */
unsigned va_files_active(const VaFiles *f);

#endif /* VA_FILES_H */
