/* vdd-status.h - the daemon's status: the JSON document a control client
 * gets (STATUS_REPLY), and the client side of `spice-vdagentd --status`.
 *
 * JSON (one object):
 *   "version": daemon version,
 *   "port": {"path", "state": "stopped"|"waiting"|"open", "opens"},
 *   "client": {"connected": bool, "capabilities": [names]},
 *   "session_integration": bool,
 *   "active_session": id or null, "locked": bool,
 *   "agents": [{"pid", "uid", "session", "name", "active", "layout": null |
 *              {"desktop_width", "desktop_height", "displays": [{"id","x","y","width","height"}]}}],
 *   "mouse": "uinput"|"fake"|"agent",
 *   "clipboard": {"clipboard", "primary", "secondary": "none"|"client"|"guest"
 *                 (who owns the selection), "locked_out": bool (the
 *                 lock/greeter gate stops sharing)},
 *   "file_transfers": number of transfers running,
 *   "monitors_config": null | {"flags", "monitors": [{"width","height","depth","x","y",
 *                                                     "mm_width","mm_height"}]}
 * When the document would not fit one IPC frame, the display and monitor
 * lists are left out and "displays_omitted" / "monitors_omitted" carry their
 * counts. Only root may ask (vdd-agents.c refuses other uids).
 */
#ifndef VDD_STATUS_H
#define VDD_STATUS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vdd-input.h"
#include "vdp-caps.h"
#include "vdp-msg.h"

typedef struct VddStatusAgent {
    pid_t pid;
    uid_t uid;
    const char *session;         /* NULL without session integration */
    const char *name;
    bool active;
    const VddLayout *layout;     /* NULL: none reported yet */
} VddStatusAgent;

/* Selections reported in "clipboard". */
#define VDD_STATUS_NSEL 3u

typedef struct VddStatusInfo {
    const char *port_path;
    const char *port_state;
    uint64_t port_opens;
    bool client_connected;
    const VdpCaps *client_caps;  /* NULL: no client announce */
    bool session_integration;
    const char *active_session;
    bool locked;
    const char *mouse;
    const VdpMonitorsConfig *monitors;  /* NULL: none received */
    const char *clipboard_owner[VDD_STATUS_NSEL];  /* "none", "client", "guest" */
    bool clipboard_gated;
    unsigned file_transfers;
    unsigned nagents;
    const VddStatusAgent *agents;
} VddStatusInfo;

/* Newly allocated JSON text (g_free). */
char *vdd_status_to_json(const VddStatusInfo *info);

/* `spice-vdagentd --status`: connect to socket_path as a CONTROL client,
 * ask, print (the JSON itself with as_json, else text) on stdout. Returns
 * the exit status: 0, or 1 with a message on stderr ("no daemon listening
 * on PATH", timeouts, protocol errors). */
int vdd_status_run_client(const char *socket_path, bool as_json);

#endif /* VDD_STATUS_H */
