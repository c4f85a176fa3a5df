/* vdagentctl - drive a SPICE guest agent from the host, without a SPICE
 * client: monitors, mouse, clipboard, files, and the rest of the VDAgent
 * protocol, over a QEMU virtserialport socket (or a socket a guest daemon
 * connects to with --listen).
 *
 * main() parses the global options, the command's words into a request,
 * and then either runs `serve`, forwards the request to a serve running
 * for the same port, or runs it here on a session of its own (one-shot).
 * See vdagentctl(1).
 */
#include "config.h"

#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>

#include "ctl.h"

/* A one-shot run lets queued output reach the guest for this long at most
 * before it closes the port. */
#define FLUSH_TIMEOUT_MS 3000u

/* ---- global options ---- */

typedef struct GlobalArgs {
    char *port;
    gboolean listen, json, debug, version;
    char *timeout;
    char *chunk_size;
} GlobalArgs;

static GOptionEntry *global_entries(GlobalArgs *g)
{
    GOptionEntry e[] = {
        {"port", 'p', 0, G_OPTION_ARG_FILENAME, &g->port,
         "the agent port's UNIX socket (default: $VDAGENTCTL_PORT)", "PATH"},
        {"listen", 0, 0, G_OPTION_ARG_NONE, &g->listen,
         "listen on PATH for a guest daemon to connect (else connect to PATH, a QEMU chardev socket)", NULL},
        {"json", 0, 0, G_OPTION_ARG_NONE, &g->json, "machine-readable output: one JSON object per line", NULL},
        {"timeout", 't', 0, G_OPTION_ARG_FILENAME, &g->timeout,
         "how long to wait for the guest, per step (default 10)", "SECONDS"},
        {"debug", 'd', 0, G_OPTION_ARG_NONE, &g->debug, "print debugging information on stderr", NULL},
        {"chunk-size", 0, 0, G_OPTION_ARG_FILENAME, &g->chunk_size,
         "chunk payload written to the port, 20..65536 (default 2048, like spice-server)", "N"},
        {"version", 0, 0, G_OPTION_ARG_NONE, &g->version, "print the version and exit", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    return g_memdup2(e, sizeof(e));
}

/* Global options written after the command ("vdagentctl status --json")
 * are taken out of its words, up to a "--". */
static char **take_late_globals(char ***words)
{
    static const char *const flags[] = {"--json", "--listen", "--debug", "-d", NULL};
    static const char *const valued[] = {"--port", "-p", "--timeout", "-t", "--chunk-size", NULL};
    GPtrArray *found = g_ptr_array_new_with_free_func(g_free);
    GPtrArray *kept = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(found, g_strdup("vdagentctl"));
    char **w = *words;
    bool done = false;
    for (guint i = 0; w[i]; i++) {
        const char *a = w[i];
        bool take = false, take_next = false;
        if (!done && strcmp(a, "--") == 0) {
            done = true;
        } else if (!done) {
            for (const char *const *f = flags; *f && !take; f++)
                take = strcmp(a, *f) == 0;
            for (const char *const *v = valued; *v && !take; v++) {
                size_t n = strlen(*v);
                if (strcmp(a, *v) == 0 && w[i + 1]) {
                    take = take_next = true;
                } else if (strncmp(a, *v, n) == 0 && (a[n] == '=' || (n == 2 && a[n] != '\0'))) {
                    take = true;   /* --port=X, -pX */
                }
            }
        }
        if (take) {
            g_ptr_array_add(found, g_strdup(a));
            if (take_next)
                g_ptr_array_add(found, g_strdup(w[++i]));
        } else {
            g_ptr_array_add(kept, g_strdup(a));
        }
    }
    g_ptr_array_add(found, NULL);
    g_ptr_array_add(kept, NULL);
    g_strfreev(*words);
    *words = (char **)g_ptr_array_free(kept, FALSE);
    return (char **)g_ptr_array_free(found, FALSE);
}

static bool finish_globals(const GlobalArgs *g, CtlOptions *o, GError **error)
{
    o->listen = g->listen;
    o->json = g->json;
    o->debug = g->debug;
    o->timeout_s = 10.0;
    if (g->timeout) {
        char *end = NULL;
        double t = g_ascii_strtod(g->timeout, &end);
        if (!end || end == g->timeout || *end || !(t >= 0.001 && t <= CTL_MAX_TIMEOUT_S)) {
            g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE,
                        "--timeout must be a number of seconds from 0.001 to %.0f, not \"%.40s\"",
                        CTL_MAX_TIMEOUT_S, g->timeout);
            return false;
        }
        o->timeout_s = t;
    }
    o->timeout_ms = (unsigned)(o->timeout_s * 1000.0 + 0.5);
    if (g->chunk_size) {
        guint64 v;
        if (!g_ascii_isdigit(g->chunk_size[0]) ||
            !g_ascii_string_to_unsigned(g->chunk_size, 10, 20, 65536, &v, NULL)) {
            g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE,
                        "--chunk-size must be a whole number from 20 to 65536, not \"%.40s\"", g->chunk_size);
            return false;
        }
        o->chunk_size = (size_t)v;
    }
    const char *port = g->port ? g->port : g_getenv("VDAGENTCTL_PORT");
    if (!port || !port[0]) {
        g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE,
                    "no port given: use -p PATH or set VDAGENTCTL_PORT (vdagentctl --help)");
        return false;
    }
    if (strlen(port) >= 104) {
        g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE,
                    "the port path is too long for a UNIX socket with its .ctl companion (at most 103 bytes)");
        return false;
    }
    o->port = g_strdup(port);
    return true;
}

/* ---- stdin ---- */

static GBytes *read_stdin(GError **error)
{
    GByteArray *buf = g_byte_array_new();
    uint8_t piece[65536];
    for (;;) {
        ssize_t n = read(STDIN_FILENO, piece, sizeof(piece));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            g_byte_array_unref(buf);
            g_set_error(error, CTL_ERROR, CTL_EXIT_IO, "cannot read stdin: %s", g_strerror(e));
            return NULL;
        }
        if (n == 0)
            break;
        if (buf->len + (size_t)n > CTL_MAX_STDIN) {
            g_byte_array_unref(buf);
            g_set_error(error, CTL_ERROR, CTL_EXIT_USAGE, "more than %u bytes on stdin", CTL_MAX_STDIN);
            return NULL;
        }
        g_byte_array_append(buf, piece, (guint)n);
    }
    return g_byte_array_free_to_bytes(buf);
}

/* ---- one-shot runs ---- */

typedef struct OneShot {
    const CtlOptions *opts;
    CtlRequest *req;           /* kept for output (the run takes a copy) */
    CtlSession *session;
    GMainLoop *loop;
    GCancellable *cancel;
    CtlProgress *pb;
    CtlResult *res;
    unsigned signals;
} OneShot;

static void oneshot_flushed(void *user)
{
    OneShot *os = user;
    g_main_loop_quit(os->loop);
}

static void oneshot_done(void *user, CtlResult *res)
{
    OneShot *os = user;
    os->res = res;
    ctl_progress_clear(os->pb);
    /* Let what we queued reach the guest before the port closes. */
    ctl_session_flush(os->session, FLUSH_TIMEOUT_MS, oneshot_flushed, os);
}

static void oneshot_event(void *user, json_object *ev)
{
    OneShot *os = user;
    ctl_output_event(os->opts, ev);
}

static void oneshot_progress(void *user, const VdhXferProgress *p)
{
    OneShot *os = user;
    ctl_progress_update(os->pb, p);
}

static gboolean oneshot_signal(gpointer data)
{
    OneShot *os = data;
    if (++os->signals > 1) {
        /* A second signal: the user does not want to wait. */
        ctl_progress_clear(os->pb);
        _exit(os->req->id == CTL_CMD_WATCH ? CTL_EXIT_OK : CTL_EXIT_INTERRUPTED);
    }
    ctl_debug("signal: ending the command");
    g_cancellable_cancel(os->cancel);
    return G_SOURCE_CONTINUE;
}

/* A copy of the request for the session (it frees what it runs). */
static CtlRequest *request_copy(const CtlRequest *req, GError **error)
{
    char **argv = g_new0(char *, g_strv_length(req->args) + 2);
    argv[0] = g_strdup(req->command);
    for (guint i = 0; req->args[i]; i++)
        argv[i + 1] = g_strdup(req->args[i]);
    CtlRequest *copy = ctl_request_parse(argv, false, req->timeout_ms, error);
    g_strfreev(argv);
    if (copy && req->data && !ctl_request_set_data(copy, req->data, error)) {
        ctl_request_free(copy);
        return NULL;
    }
    return copy;
}

static int run_oneshot(const CtlOptions *opts, CtlRequest *req)
{
    GError *error = NULL;
    CtlRequest *run = request_copy(req, &error);
    CtlSession *s = run ? ctl_session_new(opts, false, &error) : NULL;
    if (!s) {
        int st = ctl_exit_for_error(error);
        ctl_output_error(opts, st, error->message);
        g_error_free(error);
        ctl_request_free(run);
        return st;
    }
    OneShot os = {.opts = opts, .req = req, .session = s};
    os.loop = g_main_loop_new(NULL, FALSE);
    os.cancel = g_cancellable_new();
    os.pb = ctl_progress_new();
    guint s1 = g_unix_signal_add(SIGINT, oneshot_signal, &os);
    guint s2 = g_unix_signal_add(SIGTERM, oneshot_signal, &os);
    ctl_session_start(s);
    if (req->id == CTL_CMD_WATCH && !opts->json)
        fprintf(stderr, "vdagentctl: watching %s; Ctrl-C ends\n", opts->port);
    CtlHooks hooks = {.event = oneshot_event, .progress = oneshot_progress, .user = &os};
    ctl_cmd_run(s, run, os.cancel, &hooks, oneshot_done, &os);
    g_main_loop_run(os.loop);
    g_source_remove(s1);
    g_source_remove(s2);

    int st = CTL_EXIT_IO;
    if (os.res) {
        if (req->id == CTL_CMD_WATCH)
            st = os.res->exit;   /* the events were the output */
        else
            st = ctl_output_result(opts, req, os.res);
        ctl_result_free(os.res);
    }
    ctl_progress_free(os.pb);
    ctl_session_free(s);
    g_object_unref(os.cancel);
    g_main_loop_unref(os.loop);
    return st;
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    setlocale(LC_NUMERIC, "C");   /* numbers in output and JSON stay 1.5, not 1,5 */
    signal(SIGPIPE, SIG_IGN);     /* a closed stdout or socket is an error, not death */
    g_set_prgname("vdagentctl");

    GlobalArgs g = {0};
    GOptionEntry *entries = global_entries(&g);
    GOptionContext *ctx = g_option_context_new("COMMAND [ARGS...]");
    g_option_context_set_summary(ctx, "Drive a SPICE guest agent through its virtio-serial port socket.");
    g_option_context_set_description(ctx, ctl_commands_help());
    g_option_context_add_main_entries(ctx, entries, NULL);
    /* Options stop at the command: its words are its own. */
    g_option_context_set_strict_posix(ctx, TRUE);
    GError *error = NULL;
    CtlOptions opts = {0};
    bool ok = g_option_context_parse(ctx, &argc, &argv, &error);
    char **words = NULL;
    if (ok) {
        words = g_new0(char *, (gsize)argc);
        for (int i = 1; i < argc; i++)
            words[i - 1] = g_strdup(argv[i]);
        if (words[0] && strcmp(words[0], "--") == 0) {
            g_free(words[0]);
            memmove(words, words + 1, (gsize)(argc - 1) * sizeof(char *));
        }
    }
    if (ok && words[0]) {
        /* Globals after the command word. */
        char **late = take_late_globals(&words);
        int n = (int)g_strv_length(late);
        GOptionContext *ctx2 = g_option_context_new(NULL);
        g_option_context_set_help_enabled(ctx2, FALSE);
        g_option_context_add_main_entries(ctx2, entries, NULL);
        ok = g_option_context_parse(ctx2, &n, &late, &error);
        g_option_context_free(ctx2);
        g_strfreev(late);
    }
    g_option_context_free(ctx);
    g_free(entries);
    if (ok && g.version) {
        printf("vdagentctl %s\n", PACKAGE_VERSION);
        g_strfreev(words);
        return CTL_EXIT_OK;
    }
    opts.json = g.json;   /* so that even usage errors come as JSON */
    if (ok && !words[0]) {
        g_set_error(&error, CTL_ERROR, CTL_EXIT_USAGE, "no command given (vdagentctl --help lists them)");
        ok = false;
    }
    ok = ok && finish_globals(&g, &opts, &error);
    ctl_set_debug(opts.debug);
    CtlRequest *req = ok ? ctl_request_parse(words, true, opts.timeout_ms, &error) : NULL;
    g_strfreev(words);
    g_free(g.port);
    g_free(g.timeout);
    g_free(g.chunk_size);
    if (req && ctl_request_wants_stdin(req)) {
        GBytes *data = read_stdin(&error);
        if (!data || !ctl_request_set_data(req, data, &error)) {
            ctl_request_free(req);
            req = NULL;
        }
        if (data)
            g_bytes_unref(data);
    }
    if (!req) {
        int st = ctl_exit_for_error(error);
        ctl_output_error(&opts, st, error->message);
        g_error_free(error);
        g_free(opts.port);
        return st;
    }

    int st;
    if (req->id == CTL_CMD_SERVE) {
        st = ctl_serve_run(&opts, req);   /* takes req */
    } else {
        if (!ctl_forward(&opts, req, &st))
            st = run_oneshot(&opts, req);
        ctl_request_free(req);
    }
    g_free(opts.port);
    if (fflush(stdout) != 0 && st == CTL_EXIT_OK)
        st = CTL_EXIT_IO;
    return st;
}
