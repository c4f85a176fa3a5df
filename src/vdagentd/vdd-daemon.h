/* vdd-daemon.h - the daemon's core: the virtio port, the routing between
 * the host and the session agents, the mouse, and the caches.
 *
 * The port is open only while the active agent (the agent of the active
 * session; with -X the one agent) has reported its layout: opening it puts
 * spice-server into client mouse mode, which needs the guest's geometry.
 * On open we announce our capabilities with request=1.
 *
 * We announce what a guest of this project announces (vdp_caps_init_guest):
 * the clipboard is routed by vdd-clipboard.c, file transfers by vdd-xfer.c.
 */
#ifndef VDD_DAEMON_H
#define VDD_DAEMON_H

#include <glib.h>
#include <stdbool.h>

typedef struct VddDaemon VddDaemon;

typedef struct VddOptions {
    const char *port_path;        /* -s */
    const char *socket_path;      /* -S */
    const char *uinput_path;      /* -u */
    bool fake_uinput;             /* -f */
    bool one_session;             /* -o */
    bool no_session_integration;  /* -X */
    bool allow_clipboard_when_locked;  /* share it with locked and greeter sessions */
    int debug;                    /* -d count */
    int listen_fd;                /* inherited IPC socket (systemd), or -1 */
    unsigned handshake_ms;        /* 0 = default */
} VddOptions;

/* quit(user, status) is called when the daemon wants to exit (-o after
 * the client session). */
typedef void (*VddQuitFunc)(void *user, int status);

/* Creates the IPC socket and starts serving. NULL with error on a fatal
 * setup failure (socket). */
VddDaemon *vdd_daemon_new(GMainContext *ctx, const VddOptions *opt, VddQuitFunc quit, void *quit_user,
                          GError **error);
/* Flushes the port (bounded), closes everything, removes the socket it
 * created. */
void vdd_daemon_free(VddDaemon *d);

#endif /* VDD_DAEMON_H */
