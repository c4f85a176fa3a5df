/* daemon-harness.h - what the tests of the real spice-vdagentd binary
 * share: a per-test directory (port, socket, FIFO, daemon log), helper
 * processes that die with the test (PR_SET_PDEATHSIG), the daemon started
 * and stopped with its log, the host library on its port, a private
 * dbus-daemon with python3-dbusmock's logind on it (sessions, the seat,
 * GetSessionByPID), agents in forked processes and the teardown that
 * checks the daemon exits 0 on SIGTERM.
 *
 * Failures are cmocka assertions (the helpers run inside a test or its
 * setup). One harness at a time per process; the private bus is set up
 * once per program (dh_bus_init). VDD_TEST_VERBOSE=1 shows the helper
 * processes' output and the daemon's log after each test. */
#ifndef DAEMON_HARNESS_H
#define DAEMON_HARNESS_H

#include <gio/gio.h>
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "test-agent.h"
#include "vdh-host.h"
#include "vdp-dbusmock.h"

/* Forked agent processes one test keeps (the most any test starts). */
#define DH_MAX_KIDS 8
/* pid -> session mappings one test publishes through GetSessionByPID. */
#define DH_MAX_MAP 8
/* A D-Bus call to the bus or the mock: generous for a loaded machine. */
#define DH_CTL_TIMEOUT_MS 10000
/* How long a helper process gets to exit on its signal before SIGKILL. */
#define DH_STOP_MS 5000u

typedef struct DaemonHarness {
    unsigned wait_ms;  /* start-up and exit waits (the test's WAIT_MS) */
    char *dir, *port_path, *sock_path, *fifo_path, *log_path;
    int fifo_fd;       /* read end of the input FIFO, non-blocking */
    GPid daemon_pid, bus_pid, mock_pid;
    bool daemon_reaped;  /* the test waited for the daemon itself ... */
    int daemon_status;   /* ... and this is what teardown checks */
    GDBusConnection *ctl;  /* the test's connection to the private bus */
    VdhHost *host;         /* the host library on the port, if started */
    pid_t kids[DH_MAX_KIDS];
    unsigned nkids;
    struct {
        pid_t pid;
        char *path;
    } map[DH_MAX_MAP];
    unsigned nmap;
    double delay;  /* seconds GetSessionByPID waits before answering */
} DaemonHarness;

/* VDD_TEST_VERBOSE is set. */
bool dh_verbose(void);

/* ---- the test directory ---- */

/* The test's failure timeout (alarm, timeout_s; dh_finish clears it), a
 * new directory <prefix>-XXXXXX with the paths of the port, the socket,
 * the FIFO (made, and opened for reading) and the daemon log. */
void dh_setup(DaemonHarness *h, const char *prefix, unsigned wait_ms, unsigned timeout_s);

/* ---- processes ---- */

typedef enum DhOutput {
    DH_OUT_QUIET,    /* /dev/null, unless verbose */
    DH_OUT_LOG,      /* appended to h->log_path */
    DH_OUT_INHERIT,  /* the test's own stdout and stderr */
} DhOutput;

/* Starts argv (not reaped; killed if the test dies). Fails the test if it
 * cannot start. */
GPid dh_spawn(DaemonHarness *h, char **argv, char **envp, DhOutput out);
/* waitpid with a deadline, iterating the default context meanwhile; true
 * if it exited (status set). */
bool dh_wait_exit(pid_t pid, int *status, unsigned ms);
/* sig, then SIGKILL after DH_STOP_MS; *pid set to 0. */
void dh_stop_process(GPid *pid, int sig);

/* ---- the daemon ---- */

/* $top_builddir/spice-vdagentd. */
const char *dh_daemon_path(void);

typedef struct DhDaemonOpts {
    const char *const *args;     /* options after -x (NULL-terminated), or NULL */
    unsigned handshake_ms;       /* VDAGENTD_TEST_HANDSHAKE_MS */
    bool small_asan_quarantine;  /* so that the peak RSS says what the daemon holds */
    DhOutput out;                /* DH_OUT_LOG or DH_OUT_INHERIT */
} DhDaemonOpts;

/* spice-vdagentd -x ARGS -f -s PORT -S SOCK -u FIFO; waits until its
 * socket accepts. */
void dh_start_daemon(DaemonHarness *h, const DhDaemonOpts *o);
/* The daemon's log so far (newly allocated, "" if none). */
char *dh_daemon_log(DaemonHarness *h);
/* How often needle stands in the log. */
unsigned dh_log_count(DaemonHarness *h, const char *needle);

/* ---- the host library on the port ---- */

/* VdhHost listening on the port, with these caps (NULL: the host's) and
 * events (NULL: none); max_clipboard 0 is the library's default. */
void dh_start_host(DaemonHarness *h, const VdpCaps *caps, int32_t max_clipboard, const VdhHostEvents *ev,
                   void *user);
/* The daemon connected and the handshake is done. */
void dh_host_ready(DaemonHarness *h);
/* Conditions for test_wait; data is the harness. */
bool dh_host_connected(void *h);
bool dh_host_disconnected(void *h);

/* A host call running while the test iterates the default context; the
 * callbacks below fill it in (set host first). */
typedef struct DhAsync {
    VdhHost *host;
    bool done, ok;
    GError *error;
    uint64_t sent;  /* bytes of files sent so far (dh_files_progress) */
} DhAsync;

/* VdhXferProgressFunc, user a DhAsync. */
void dh_files_progress(void *user, const VdhXferProgress *p);
/* GAsyncReadyCallbacks of vdh_host_send_files_async and
 * vdh_host_set_monitors_async, user a DhAsync. */
void dh_files_sent(GObject *src, GAsyncResult *res, gpointer user);
void dh_monitors_set(GObject *src, GAsyncResult *res, gpointer user);
/* Condition for test_wait: the call ended. */
bool dh_async_done(void *d);

/* ---- agents ---- */

/* Conditions for test_wait; data is the TestAgent. */
bool dh_agent_answered(void *a);
/* An agent connected from this process that got WELCOME or REJECT (or was
 * closed). */
TestAgent *dh_agent_connect(DaemonHarness *h);
/* The same on a socket connected elsewhere; takes fd. */
TestAgent *dh_agent_on_fd(DaemonHarness *h, int fd);
/* A layout of one or two displays. */
void dh_send_layout(TestAgent *a, bool two);
/* Wait until *p >= want. */
bool dh_wait_count(const unsigned *p, unsigned want, unsigned ms);

typedef enum DhKidMode {
    DH_KID_STAY,  /* stays alive until teardown kills it */
    DH_KID_EXIT,  /* exits right after handing over the socket */
} DhKidMode;

/* Forks a process that (as uid, if not 0) connects to the daemon's socket
 * and hands the connection over (SCM_RIGHTS), so the daemon sees its pid
 * and uid. With session_path, its pid is mapped to that session before it
 * connects. Returns the connected fd; *pid_out is the child. */
int dh_kid_connect(DaemonHarness *h, uid_t uid, DhKidMode mode, const char *session_path, pid_t *pid_out);

/* ---- the private bus and the logind mock ---- */

/* Program start: a directory for the private bus, DBUS_SYSTEM_BUS_ADDRESS
 * and DBUS_SESSION_BUS_ADDRESS pointing to it (the daemon and the mock
 * inherit them: never a real bus), no socket activation or notify
 * variables. false if the directory cannot be made. */
bool dh_bus_init(const char *prefix);
/* dbus-daemon's path, NULL if there is none. */
const char *dh_bus_dbus_daemon(void);
void dh_bus_fini(void);

/* The dbus-daemon on the private bus, the logind mock on it, seat0. */
void dh_bus_and_mock_start(DaemonHarness *h);
/* A call on the bus (fails the test on error); the reply. */
GVariant *dh_ctl_call(DaemonHarness *h, const char *dest, const char *path, const char *iface,
                      const char *method, GVariant *params);
/* A call to the mock, reply dropped. */
void dh_mock_call(DaemonHarness *h, const char *path, const char *iface, const char *method, GVariant *params);
/* A session on seat0 (active, remote). */
void dh_add_session(DaemonHarness *h, const char *id, unsigned uid, const char *user);
void dh_set_active(DaemonHarness *h, const char *id, const char *path);
/* An active greeter session of root at path, its agent the test process. */
void dh_add_greeter(DaemonHarness *h, const char *id, const char *path);
/* One property of an object of the mock, with its PropertiesChanged. */
void dh_update_prop(DaemonHarness *h, const char *path, const char *iface, const char *name, GVariant *value);
/* (Re)defines GetSessionByPID from the map: mapped pids get their session
 * after h->delay seconds, others NoSessionForPID like logind. */
void dh_publish_map(DaemonHarness *h);
/* Maps pid to the session at path (copied) and publishes the map. */
void dh_map_pid(DaemonHarness *h, pid_t pid, const char *path);

/* ---- the end of a test ---- */

typedef struct DhExit {
    bool had_daemon, gone;
    int status;
} DhExit;

/* SIGTERM to the daemon unless the test reaped it (SIGKILL if it does not
 * exit within wait_ms), then kills the kids, frees the host, stops the mock
 * and the bus, prints the log if verbose, removes the directory, frees the
 * paths and clears the alarm. How the daemon ended, for: */
DhExit dh_finish(DaemonHarness *h);
/* The daemon (if one ran) exited 0 in time. */
void dh_assert_clean_exit(const DhExit *e);

#endif /* DAEMON_HARNESS_H */
