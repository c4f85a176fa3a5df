/* vdp-unix.h - AF_UNIX stream socket helpers (non-blocking, close-on-exec). */
#ifndef VDP_UNIX_H
#define VDP_UNIX_H

#include <stdbool.h>
#include <sys/types.h>

/* Listen on path. A stale file at path is removed only if it is a socket
 * nobody listens on; anything else there is an error (EADDRINUSE/EEXIST).
 * The socket is created with the given mode through umask, never chmod
 * (no symlink race). Returns the fd or -1 with errno set. */
int vdp_unix_listen(const char *path, mode_t mode, int backlog);

/* Connect to path. Connecting to a local listening socket completes at
 * once or fails (ECONNREFUSED, ENOENT, EAGAIN when the backlog is full);
 * the returned fd is non-blocking. -1 with errno on failure. */
int vdp_unix_connect(const char *path);

/* Accept one connection (non-blocking, close-on-exec), -1 with errno. */
int vdp_unix_accept(int listen_fd);

/* Is path a UNIX socket (stat, following links)? */
bool vdp_path_is_socket(const char *path);

#endif /* VDP_UNIX_H */
