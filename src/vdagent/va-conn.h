/* va-conn.h - the session agent's connection to spice-vdagentd.
 *
 * Connects to the daemon's socket, sends HELLO (role AGENT), waits for
 * WELCOME at most VA_CONN_WELCOME_MS, then hands every later frame to the
 * owner. When the connection cannot be made or breaks (the daemon
 * restarted), it tries again with a back-off doubling from
 * VA_CONN_RETRY_MIN_MS to VA_CONN_RETRY_MAX_MS, for as long as the agent
 * runs. REJECT reasons:
 *   VERSION         the daemon speaks another major version: fatal(1)
 *   DUPLICATE       another agent serves this session (a greeter's agent
 *                   still connected under the daemon's -X): retry at the
 *                   slow rate; the agent takes over once the other leaves
 *   NOT_AUTHORIZED  the session is not (yet) known to logind: retry at the
 *                   slow rate
 *   others          retry with the back-off.
 * One log line per change of the daemon's answer.
 *
 * No X11 here.
 */
#ifndef VA_CONN_H
#define VA_CONN_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "vdp-ipc-conn.h"
#include "vdp-ipc.h"

/* First retry delay; doubled after each failure. */
#define VA_CONN_RETRY_MIN_MS 250u
/* Longest delay between attempts: a restarted daemon is found within it. */
#define VA_CONN_RETRY_MAX_MS 4000u
/* HELLO -> WELCOME: the daemon answers at once or after a logind lookup
 * (its own handshake limit is 5 s); beyond this the attempt is dropped. */
#define VA_CONN_WELCOME_MS 10000u

typedef struct VaConnCallbacks {
    /* WELCOME received: conn is usable until disconnected(). */
    void (*connected)(void *user, VdpIpcConn *conn);
    /* The connection is gone (after connected()); the owner must forget
     * conn now. A new attempt follows. */
    void (*disconnected)(void *user);
    /* A frame after WELCOME. Return false to drop the connection (a
     * protocol error): the owner gets disconnected() and a reconnect
     * follows. The callee owns fds. */
    bool (*frame)(void *user, const VdpIpcHeader *hdr, const uint8_t *payload,
                  int *fds, unsigned nfds);
    /* The agent must stop: exit with this status (1: version mismatch).
     * Called once; no reconnect. */
    void (*fatal)(void *user, int status, const char *why);
} VaConnCallbacks;

typedef struct VaConn VaConn;

/* name: sent in HELLO ("spice-vdagent 0.1.0"). Starts connecting at once
 * (from the context, not inside this call). */
VaConn *va_conn_new(GMainContext *ctx, const char *socket_path, const char *name,
                    const VaConnCallbacks *cb, void *user);
void va_conn_free(VaConn *c);

/* The welcomed connection, or NULL. */
VdpIpcConn *va_conn_get(VaConn *c);
/* Attempts made since the last WELCOME (for tests and status). */
unsigned va_conn_attempts(const VaConn *c);

#endif /* VA_CONN_H */
