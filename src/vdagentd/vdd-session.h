/* vdd-session.h - which session is active, and is it locked: systemd-logind
 * over GDBus, asynchronously, or nothing (-X).
 *
 * logind: subscribes to the seat's ActiveSession property (the seat's path
 * from Manager.GetSeat), to NameOwnerChanged of org.freedesktop.login1 and to
 * the Manager's SeatNew (logind or the seat may appear later), reads the
 * active session's Class ("greeter" is not a user session), User (uid),
 * Type, and LockedHint, and follows its PropertiesChanged and Lock/Unlock
 * signals. Every call is asynchronous with a timeout; the daemon never
 * waits on the bus. At boot there may be no active session yet: it waits
 * quietly for the signals.
 *
 * No bus (a container without D-Bus) or a bus connection that closes: one
 * warning; the module stays enabled and is ready, no session is ever
 * active (fail closed), lookups fail with G_IO_ERROR_NOT_CONNECTED. Run
 * with -X (vdd_sessions_new_none) to do without session integration.
 *
 * Agents are mapped to sessions by the peer's pid (GetSessionByPID) and
 * checked against the session's owner uid by the caller.
 */
#ifndef VDD_SESSION_H
#define VDD_SESSION_H

#include <gio/gio.h>
#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct VddSessions VddSessions;

typedef struct VddSessionInfo {
    char *id;            /* logind session id ("2", "c1") */
    uid_t uid;
    bool greeter;        /* Class == "greeter" */
    bool locked;         /* LockedHint, or Lock/Unlock signals */
    bool active;
} VddSessionInfo;

typedef struct VddSessionEvents {
    /* The active session changed (vdd_sessions_active() NULL: none) or its
     * lock/class state changed; also once when the module becomes ready.
     * Called from the context; it may free the module. */
    void (*changed)(void *user);
} VddSessionEvents;

/* bus: a connection to the system bus (tests pass a private one); NULL =
 * open a private connection to the system bus asynchronously (address from
 * DBUS_SYSTEM_BUS_ADDRESS or the default; never the shared g_bus_get() one,
 * whose loss would exit the process). seat: "seat0" by default (NULL).
 * ctx: NULL = the thread-default context at creation. */
VddSessions *vdd_sessions_new_logind(GMainContext *ctx, GDBusConnection *bus, const char *seat,
                                     const VddSessionEvents *ev, void *user);
/* -X: no session integration. Everything reports "no information". */
VddSessions *vdd_sessions_new_none(void);
void vdd_sessions_free(VddSessions *s);

bool vdd_sessions_enabled(const VddSessions *s);   /* false for -X */
/* Ready once the first state has been read, or reading it failed (then a
 * log line said why). changed() fires when it becomes true. */
bool vdd_sessions_ready(const VddSessions *s);

/* The active session (NULL if none or disabled); valid until the next
 * changed() event. */
const VddSessionInfo *vdd_sessions_active(const VddSessions *s);

/* Look up the session of a process, asynchronously (GetSessionByPID, then
 * its properties). The result is a newly allocated VddSessionInfo (free
 * with vdd_session_info_free) or an error: G_IO_ERROR_NOT_SUPPORTED (-X),
 * G_IO_ERROR_INVALID_ARGUMENT (pid <= 0), G_IO_ERROR_NOT_CONNECTED (no
 * bus), G_IO_ERROR_INVALID_DATA (malformed reply), G_IO_ERROR_CANCELLED
 * (c cancelled, or the module freed), or logind's error (no session for
 * that pid). info->active is the session's Active property; info->locked
 * includes the Lock signal state when it is the active session. A lookup
 * made while the module's own bus connection is opening waits for it.
 * _finish does not use s: it may be called after vdd_sessions_free(). */
void vdd_sessions_lookup_pid_async(VddSessions *s, pid_t pid, GCancellable *c,
                                   GAsyncReadyCallback cb, gpointer user);
VddSessionInfo *vdd_sessions_lookup_pid_finish(VddSessions *s, GAsyncResult *res, GError **error);
void vdd_session_info_free(VddSessionInfo *info);

#endif /* VDD_SESSION_H */
