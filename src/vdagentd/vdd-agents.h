/* vdd-agents.h - the daemon's IPC server: accepting session agents and
 * control clients, authenticating them, the handshake, and one
 * connection's state.
 *
 * Policy (reference section 6.2: the socket is mode 0666, so any local user
 * can connect):
 *  - connection limits, total and per uid, checked at accept before
 *    anything is read (CVE-2020-25652): beyond them a REJECT TOO_MANY and
 *    close;
 *  - a HELLO within the handshake timeout, else the connection is dropped;
 *    HELLO checked (magic, major version, role AGENT or CONTROL);
 *  - AGENT with session integration: the peer's pid (SO_PEERCRED, taken
 *    at connect()) is mapped to its logind session; the peer uid must be 0
 *    or the session's owner, and /proc/<pid> must still belong to that uid
 *    (PID reuse, CVE-2020-25653), else REJECT NOT_AUTHORIZED; a second
 *    agent of the same session gets REJECT DUPLICATE (CVE-2020-25652);
 *  - AGENT without session integration (-X): one agent at all; a second
 *    gets REJECT DUPLICATE and the first keeps working;
 *  - then WELCOME; the daemon sends SESSION_STATE next;
 *  - CONTROL: WELCOME, then STATUS_REQUEST is answered with STATUS_REPLY;
 *  - bounded write queues; a malformed frame, a frame the role may not
 *    send, or a full queue disconnects that one client with a log line.
 *    Nothing a client does makes the daemon exit.
 */
#ifndef VDD_AGENTS_H
#define VDD_AGENTS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vdd-input.h"
#include "vdd-session.h"
#include "vdp-ipc-msg.h"
#include "vdp-msg.h"

/* At most this many IPC connections at once, whatever their state: a real
 * guest has one agent per graphical session plus the odd --status; 64 is
 * far above that and keeps descriptors and memory bounded
 * (CVE-2020-25652; 0.22.1 allows 128 with no per-user bound). */
#define VDD_AGENTS_MAX_TOTAL 64u
/* At most this many per peer uid, so one user cannot take every slot
 * (one agent per session, a user rarely has more than a few sessions). */
#define VDD_AGENTS_MAX_PER_UID 8u
/* A client must have sent HELLO within this time. An honest client sends
 * it right after connect(); 5 s covers a loaded machine. Tests shorten it
 * through the environment variable VDAGENTD_TEST_HANDSHAKE_MS. */
#define VDD_AGENTS_HANDSHAKE_MS 5000u
/* Per-connection write queue: a monitors config with 256 monitors is about
 * 8 KiB; a queue of 256 KiB (high) / 1 MiB (limit) holds hundreds of
 * messages for an agent that is briefly busy, and an agent that stops
 * reading is disconnected instead of growing the daemon. */
#define VDD_AGENT_QUEUE_HIGH (256u * 1024u)
#define VDD_AGENT_QUEUE_LIMIT (1024u * 1024u)

typedef struct VddAgents VddAgents;
typedef struct VddAgent VddAgent;

typedef struct VddAgentsEvents {
    /* An agent passed the handshake (WELCOME sent). */
    void (*agent_added)(void *user, VddAgent *a);
    /* An agent is going away (still valid during the call). */
    void (*agent_removed)(void *user, VddAgent *a);
    /* An agent reported a (new) layout. */
    void (*agent_layout)(void *user, VddAgent *a);
    /* A VDAgent message from an agent (decoded; views valid during the call). */
    void (*agent_vdagent)(void *user, VddAgent *a, const VdpMsg *msg);
    /* An agent's write queue drained below its low watermark after having
     * been above its high one (vdd_agent_write_blocked). Optional. */
    void (*agent_write_ready)(void *user, VddAgent *a);
    /* CLIP_DATA_FD from an agent, head decoded and checked, the descriptor
     * count matching (one when head->size > 0, else none): the callee owns
     * fd (-1 when there is none). Optional (the fd is closed). */
    void (*agent_clip_fd)(void *user, VddAgent *a, const VdpIpcClipHead *head, int fd);
    /* A control client wants the status: return newly allocated JSON text. */
    char *(*status_json)(void *user);
} VddAgentsEvents;

typedef struct VddAgentsConfig {
    const char *socket_path;      /* to listen on (listen_fd < 0), and unlink at exit */
    int listen_fd;                /* an inherited listening socket (systemd), or -1 */
    VddSessions *sessions;        /* not owned; vdd_sessions_enabled() decides the policy */
    unsigned handshake_ms;        /* 0 = VDD_AGENTS_HANDSHAKE_MS */
    unsigned max_total, max_per_uid;  /* 0 = the defaults above */
} VddAgentsConfig;

/* Listens (or takes listen_fd). NULL with error if the socket cannot be
 * created. */
VddAgents *vdd_agents_new(GMainContext *ctx, const VddAgentsConfig *cfg, const VddAgentsEvents *ev,
                          void *user, GError **error);
/* Closes every connection (no events) and the socket; unlinks the socket
 * file when it created it. */
void vdd_agents_free(VddAgents *as);

/* Agents that passed the handshake, in connection order. */
unsigned vdd_agents_count(const VddAgents *as);
VddAgent *vdd_agents_nth(const VddAgents *as, unsigned i);
/* The agent of a logind session, or NULL. */
VddAgent *vdd_agents_find_session(const VddAgents *as, const char *session_id);
/* Connections of any kind and state (limits, status). */
unsigned vdd_agents_connections(const VddAgents *as);

pid_t vdd_agent_pid(const VddAgent *a);
uid_t vdd_agent_uid(const VddAgent *a);
const char *vdd_agent_session(const VddAgent *a);   /* NULL without session integration */
const char *vdd_agent_name(const VddAgent *a);      /* from HELLO */
/* The agent's last GUEST_LAYOUT, or NULL if it has not sent one. */
const VddLayout *vdd_agent_layout(const VddAgent *a);

/* The agent's write queue is above its high watermark (until
 * agent_write_ready): producers of bulk data should wait. */
bool vdd_agent_write_blocked(const VddAgent *a);

/* Sending; a failure (queue full) disconnects the agent later from an idle
 * callback (agent_removed is called then), so the caller's pointer stays
 * valid until it returns to the loop. Return false if not sent. */
bool vdd_agent_send_vdagent(VddAgent *a, const VdpMsg *msg);
bool vdd_agent_send_mouse(VddAgent *a, int32_t x, int32_t y, uint32_t buttons);
/* Clipboard data towards the agent (vdp-ipc-msg.h): CLIP_BEGIN, then
 * CLIP_CHUNK frames (len 1..VDP_IPC_MAX_FRAME), or CLIP_ABORT. */
bool vdd_agent_send_clip_begin(VddAgent *a, const VdpIpcClipHead *head);
bool vdd_agent_send_clip_chunk(VddAgent *a, const uint8_t *data, size_t len);
bool vdd_agent_send_clip_abort(VddAgent *a, uint32_t selection);
/* Is the agent about to be disconnected (a send failed)? Nothing more
 * reaches it. */
bool vdd_agent_dropping(const VddAgent *a);
/* Sends only when flags differ from what this agent was last told. */
bool vdd_agent_send_session_state(VddAgent *a, uint32_t flags);

#endif /* VDD_AGENTS_H */
