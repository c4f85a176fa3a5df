/* ctl.h - vdagentctl's shared declarations.
 *
 * vdagentctl is split in four parts:
 *  - vdagentctl.c: main(), global options, one-shot runs, dispatch;
 *  - ctl-cmd.c: parsing a command line into a validated CtlRequest, and
 *    running it asynchronously against a CtlSession (one VdhHost);
 *  - ctl-serve.c: `serve` (the control socket server) and the client that
 *    forwards a command to a running serve;
 *  - ctl-output.c: human and --json output, the progress bar.
 *
 * Every command runs the same way whether it is a one-shot invocation or a
 * request on a serve's control socket: parse -> CtlRequest -> ctl_cmd_run()
 * -> CtlResult (a JSON object, plus raw data for clipboard get) -> output.
 */
#ifndef CTL_H
#define CTL_H

#include <gio/gio.h>
#include <glib.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "vdh-host.h"

G_BEGIN_DECLS

/* ---- exit statuses (also the codes of CTL_ERROR) ---- */

enum {
    CTL_EXIT_OK = 0,
    CTL_EXIT_USAGE = 1,         /* usage or invalid arguments */
    CTL_EXIT_NO_GUEST = 2,      /* no guest agent within the timeout */
    CTL_EXIT_CAPABILITY = 3,    /* the guest lacks a capability */
    CTL_EXIT_TIMEOUT = 4,       /* no answer in time */
    CTL_EXIT_REFUSED = 5,       /* the guest said no */
    CTL_EXIT_IO = 6,            /* I/O or protocol error */
    CTL_EXIT_INTERRUPTED = 130, /* SIGINT/SIGTERM during a command (watch, serve: 0) */
};

#define CTL_ERROR (ctl_error_quark())
GQuark ctl_error_quark(void);

/* Exit status for an error from any domain we meet. */
int ctl_exit_for_error(const GError *error);

/* ---- limits ---- */

/* Clipboard data read from stdin by a one-shot `clipboard set`: what a
 * spice-gtk client announces as its maximum. */
#define CTL_MAX_STDIN (100u * 1024u * 1024u)
/* Base64 text of stdin in one control request (48 MiB of data). */
#define CTL_MAX_STDIN_BASE64 (64u * 1024u * 1024u)
/* One control request line: the base64 plus arguments and keys. */
#define CTL_MAX_REQUEST_LINE (CTL_MAX_STDIN_BASE64 + 1024u * 1024u)
/* Input buffered over all control clients of one serve. */
#define CTL_MAX_PENDING_INPUT (256u * 1024u * 1024u)
/* One response line read by a forwarding client: a clipboard of
 * VDP_MAX_CLIPBOARD_DEFAULT bytes in base64 plus the rest. */
#define CTL_MAX_RESPONSE_LINE (144u * 1024u * 1024u)
/* Control clients connected to one serve at once. */
#define CTL_MAX_CLIENTS 16u
/* Arguments of one command (files of one batch, monitors, ...). */
#define CTL_MAX_ARGS 1024u
/* Bytes of one argument. */
#define CTL_MAX_ARG_LEN 4096u
/* A control client has this long to send a complete request. */
#define CTL_REQUEST_IDLE_MS 30000u
/* Output queued for one control client before events are dropped (watch). */
#define CTL_MAX_CLIENT_BACKLOG (8u * 1024u * 1024u)
/* Longest timeout accepted (one day). */
#define CTL_MAX_TIMEOUT_S 86400.0

/* ---- global options ---- */

typedef struct CtlOptions {
    char *port;                 /* the port socket path */
    bool listen;                /* listen on port for a guest (else connect) */
    bool json;                  /* machine-readable output */
    bool debug;
    double timeout_s;           /* -t (default 10) */
    unsigned timeout_ms;
    size_t chunk_size;          /* 0 = library default */
} CtlOptions;

/* The control socket of a serve for a port: "<port>.ctl". */
char *ctl_control_path_for(const char *port);

/* ---- requests ---- */

typedef enum CtlCmdId {
    CTL_CMD_STATUS,
    CTL_CMD_MONITORS,
    CTL_CMD_MOUSE_MOVE,
    CTL_CMD_MOUSE_CLICK,
    CTL_CMD_MOUSE_SCROLL,
    CTL_CMD_CLIPBOARD_SET,
    CTL_CMD_CLIPBOARD_GET,
    CTL_CMD_SEND_FILE,
    CTL_CMD_WATCH,
    CTL_CMD_VOLUME,
    CTL_CMD_DISPLAY_CONFIG,
    CTL_CMD_DEVICE_INFO,
    CTL_CMD_DISCONNECT,
    CTL_CMD_SERVE,
} CtlCmdId;

typedef struct CtlRequest {
    CtlCmdId id;
    char *command;              /* first word: "mouse", "status", ... */
    char **args;                /* the words after it, as given (forwarded as is) */
    unsigned timeout_ms;

    /* monitors */
    VdpMonitorsConfig *monitors;
    /* mouse */
    uint32_t x, y;
    bool has_pos;
    uint32_t buttons;           /* move: held buttons */
    uint32_t button_mask;       /* click: the button; scroll: U/DBUTTON */
    const char *button_name;    /* static */
    uint8_t display;
    bool has_display;           /* --display given */
    unsigned count;             /* scroll */
    /* clipboard */
    uint8_t selection;
    uint32_t clip_type;         /* 0 = get: first type offered */
    bool wait_served;
    GBytes *data;               /* set: the data (from stdin) */
    /* send-file */
    char **paths;               /* absolute */
    /* volume */
    bool playback, mute;
    unsigned nchannels;
    uint16_t volume[VDP_MAX_AUDIO_CHANNELS];
    /* display-config */
    uint32_t display_flags, depth;
    /* device-info */
    VdpGraphicsDeviceInfo *devinfo;
    char **addresses;           /* storage for devinfo's views */
    /* serve */
    char *control_path;
} CtlRequest;

/* Parse words (argv[0] is the command, NULL-terminated) into a request.
 * allow_help: "--help" prints help and exits (one-shot runs only; a serve
 * never lets a control client end it). timeout_ms applies to the request.
 * Errors: CTL_ERROR / CTL_EXIT_USAGE, with a sentence for the user. */
CtlRequest *ctl_request_parse(char **argv, bool allow_help, unsigned timeout_ms, GError **error);
void ctl_request_free(CtlRequest *req);
/* Does the command read stdin (clipboard set)? */
bool ctl_request_wants_stdin(const CtlRequest *req);
/* Attach stdin data (validated for the clipboard type). Takes a ref. */
bool ctl_request_set_data(CtlRequest *req, GBytes *data, GError **error);

/* Usage summary of all commands (global --help). */
const char *ctl_commands_help(void);

/* ---- results ---- */

typedef struct CtlResult {
    int exit;                   /* CTL_EXIT_* */
    char *error;                /* the sentence for the user when exit != 0 */
    json_object *obj;           /* result fields (never NULL) */
    GBytes *data;               /* clipboard get: the data */
} CtlResult;

CtlResult *ctl_result_new(void);
CtlResult *ctl_result_new_error(int exit, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
CtlResult *ctl_result_new_gerror(const GError *error);
void ctl_result_free(CtlResult *res);

/* The wire form of a result (serve responses): obj + "ok", "error",
 * "exit", and data as "data_base64". New reference. */
json_object *ctl_result_to_json(const CtlResult *res);
/* And back (a forwarding client). */
CtlResult *ctl_result_from_json(json_object *obj, GError **error);

/* ---- sessions: one host endpoint, its events, and commands on it ---- */

typedef struct CtlSession CtlSession;

/* serve: the session outlives commands (clipboard offers stay alive). */
CtlSession *ctl_session_new(const CtlOptions *opts, bool serve, GError **error);
void ctl_session_free(CtlSession *s);
void ctl_session_start(CtlSession *s);
/* Before a one-shot exit: let what was queued for the guest go out
 * (bounded by timeout_ms), then call cb. */
void ctl_session_flush(CtlSession *s, unsigned timeout_ms, void (*cb)(void *user), void *user);

typedef struct CtlHooks {
    /* watch: one event object per guest message / connection change
     * (borrowed: take a ref to keep it). */
    void (*event)(void *user, json_object *ev);
    /* send-file progress. */
    void (*progress)(void *user, const VdhXferProgress *p);
    void *user;
} CtlHooks;

typedef void (*CtlDoneFunc)(void *user, CtlResult *res);  /* takes res */

/* Run req (taken) on the session. done is called exactly once, never from
 * inside this call. Cancelling c ends the command: watch then succeeds,
 * everything else fails with CTL_EXIT_INTERRUPTED. */
void ctl_cmd_run(CtlSession *s, CtlRequest *req, GCancellable *c, const CtlHooks *hooks,
                 CtlDoneFunc done, void *user);

/* ---- serve and forwarding (ctl-serve.c) ---- */

/* Run `serve` until SIGINT/SIGTERM; returns the exit status. */
int ctl_serve_run(const CtlOptions *opts, CtlRequest *req);

/* If a serve answers on the port's control socket, send req there, print
 * its result, set *exit_status and return true. false: no serve, run the
 * command locally. */
bool ctl_forward(const CtlOptions *opts, CtlRequest *req, int *exit_status);

/* ---- output (ctl-output.c) ---- */

/* Print a command's result (or error); returns res->exit. */
int ctl_output_result(const CtlOptions *opts, const CtlRequest *req, const CtlResult *res);
/* Print an error outside a command (usage, setup). */
void ctl_output_error(const CtlOptions *opts, int exit_status, const char *message);
/* A watch event line. */
void ctl_output_event(const CtlOptions *opts, json_object *ev);
/* `serve` started. */
void ctl_output_serving(const CtlOptions *opts, const char *port, const char *control);

/* Event objects (also sent by serve to watch clients). */
json_object *ctl_event_message(const VdpMsg *msg);
json_object *ctl_event_connection(bool connected, const char *why);
json_object *ctl_event_dropped(const char *why);
/* Progress as a JSON object ({"file": ..., "sent": ...}) and back. */
json_object *ctl_progress_to_json(const VdhXferProgress *p);
bool ctl_progress_from_json(json_object *obj, VdhXferProgress *p, char **name_storage);

typedef struct CtlProgress CtlProgress;
/* A progress bar on stderr; inert unless stderr is a terminal. */
CtlProgress *ctl_progress_new(void);
bool ctl_progress_active(const CtlProgress *pb);
void ctl_progress_update(CtlProgress *pb, const VdhXferProgress *p);
void ctl_progress_clear(CtlProgress *pb);
void ctl_progress_free(CtlProgress *pb);

/* Debug line on stderr with -d. */
void ctl_debug(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void ctl_set_debug(bool on);

/* Names used in results and parsing. */
const char *ctl_selection_name(uint8_t selection);
const char *ctl_clipboard_type_word(uint32_t type);   /* "text", "png", ... */
/* g_format_size() with plain spaces ("12.0 MB"). */
char *ctl_format_size(uint64_t bytes);
/* Replace no-break spaces (U+00A0) by spaces, in place; returns text. */
char *ctl_plain_spaces(char *text);
/* Seconds as the user wrote them ("10 s", "0.5 s"). */
char *ctl_format_seconds(unsigned ms);

G_END_DECLS

#endif /* CTL_H */
