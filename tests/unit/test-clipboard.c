/* test-clipboard.c - the session agent's clipboard (core + X11 backend) on
 * a real Xvfb, with a socketpair as the IPC: one end is the agent's
 * VdpIpcConn given to va_clipboard_set_conn, the other is driven here as
 * the daemon (it decodes what the module sends and injects GRAB/REQUEST
 * envelopes and CLIP streams). Guest applications are xclip processes and,
 * where a misbehaving or precisely timed application is needed, a second X
 * connection of this program.
 *
 * Every wait is bounded and waits on a condition. */
#include "config.h"

#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib-unix.h>
#include <glib.h>
#include <X11/Xatom.h>
#include <X11/Xlib.h>

#include "va-clipboard-backend.h"
#include "va-clipboard.h"
#include "va-x11.h"
#include "vdp-ipc-conn.h"
#include "vdp-ipc-msg.h"
#include "vdp-ipc.h"
#include "vdp-msg.h"
#include "vdp-wire.h"
#include "vdp-xserver.h"

#define SEL_CB VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD
#define SEL_PRI VD_AGENT_CLIPBOARD_SELECTION_PRIMARY
#define T_UTF8 VD_AGENT_CLIPBOARD_UTF8_TEXT
#define T_PNG VD_AGENT_CLIPBOARD_IMAGE_PNG

/* Generous bounds for a loaded 2-core machine. */
#define WAIT_MS 20000u
#define BIG_WAIT_MS 90000u
#define BIG_SIZE (64u * 1024u * 1024u)
/* Chunks the fake daemon sends (the daemon's own size). */
#define CHUNK 65536u

/* ---- the X server ---- */

static VdpXServer xserver = {-1, ""};
static char display_name[32];
static char *tmpdir;

static void start_xvfb(void)
{
    const char *argv[] = {"Xvfb", "-nolisten", "tcp", "-screen", "0", "640x480x24", "-noreset", NULL};
    if (!vdp_xserver_start(&xserver, argv, NULL, 30000))
        fail_msg("Xvfb did not start");
    g_strlcpy(display_name, xserver.name, sizeof(display_name));
    g_setenv("DISPLAY", display_name, TRUE);
}

/* ---- the fake daemon ---- */

typedef struct Rec {
    uint32_t kind;          /* VD_AGENT_* type, or 1000 + VDP_IPC_CLIP_DATA_FD */
    uint32_t sel, type;
    uint32_t types[VDP_MAX_GRAB_TYPES];
    unsigned ntypes;
    GBytes *data;           /* CLIPBOARD data or the memfd's content if small */
    uint64_t size;
    char *sha256;           /* of the data */
    bool sealed;
} Rec;
#define REC_DATA_FD 1000u

typedef enum Answer { ANSWER_DATA, ANSWER_NEVER, ANSWER_NONE, ANSWER_ABORT } Answer;

typedef struct Daemon {
    VdpIpcConn *conn;
    GPtrArray *recs;        /* of Rec* */
    unsigned nrequests;
    uint32_t last_req_sel, last_req_type;
    Answer answer;
    /* what to answer: bytes, or a generated stream of gen_size */
    GBytes *host_data;
    uint32_t host_type;
    uint64_t gen_size, gen_sent;
    uint64_t gen_pause_at;  /* stop sending at this offset until cleared */
    uint32_t gen_sel, gen_type;
    /* Requests not answered (ANSWER_NEVER) per selection. Like the real
     * daemon, every request gets its answer in order: these are answered
     * late, before the next answer on their selection, with late_type
     * (NONE, or 5 bytes "late!"). */
    unsigned owed[VDP_IPC_CLIP_SELECTION_MAX + 1];
    uint32_t late_type;
    bool gen_active;
    uint32_t gen_state;
    GChecksum *gen_sum;
    bool blocked;
    bool closed;
} Daemon;

static GMainContext *ctx;
static VaX11 *vx;
static VaClipboard *clip;
static VdpIpcConn *agent_conn;
static Daemon dm;
static Display *tdpy;       /* the test's own X connection */
static Window twin;
static GSource *tsrc;
static unsigned envelopes_sent, envelopes_handled;

static void rec_free(gpointer p)
{
    Rec *r = p;
    if (r->data)
        g_bytes_unref(r->data);
    g_free(r->sha256);
    g_free(r);
}

static uint8_t gen_byte(uint32_t *st)
{
    /* xorshift32: a pattern that any reordering or loss shows up in */
    uint32_t x = *st;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *st = x;
    return (uint8_t)(x >> 24);
}

static void gen_fill(uint32_t *st, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = gen_byte(st);
}

static char *gen_sha256(uint64_t size, uint32_t seed)
{
    GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
    uint8_t *buf = g_malloc(CHUNK);
    uint32_t st = seed;
    for (uint64_t off = 0; off < size; off += CHUNK) {
        size_t n = (size_t)MIN((uint64_t)CHUNK, size - off);
        gen_fill(&st, buf, n);
        g_checksum_update(c, buf, n);
    }
    g_free(buf);
    char *s = g_strdup(g_checksum_get_string(c));
    g_checksum_free(c);
    return s;
}

static void send_head(uint16_t frame, uint32_t sel, uint32_t type, uint64_t size)
{
    VdpIpcClipHead h = {.selection = sel, .type = type, .size = size};
    uint8_t buf[VDP_IPC_CLIP_HEAD_SIZE];
    size_t n = vdp_ipc_clip_head_encode(&h, buf, sizeof(buf));
    assert_int_equal(vdp_ipc_conn_send(dm.conn, frame, 0, buf, n, NULL, 0), VDP_OK);
}

static void gen_pump(void)
{
    uint8_t *buf = NULL;
    while (dm.gen_active && !dm.blocked && dm.gen_sent < dm.gen_size &&
           (dm.gen_pause_at == 0 || dm.gen_sent < dm.gen_pause_at)) {
        if (!buf)
            buf = g_malloc(CHUNK);
        size_t n = (size_t)MIN((uint64_t)CHUNK, dm.gen_size - dm.gen_sent);
        gen_fill(&dm.gen_state, buf, n);
        assert_int_equal(vdp_ipc_conn_send(dm.conn, VDP_IPC_CLIP_CHUNK, 0, buf, n, NULL, 0),
                         VDP_OK);
        dm.gen_sent += n;
        dm.blocked = vdp_ipc_conn_write_blocked(dm.conn);
    }
    if (dm.gen_active && dm.gen_sent == dm.gen_size)
        dm.gen_active = false;
    g_free(buf);
}

static void daemon_answer(uint32_t sel, uint32_t type)
{
    assert_true(sel < G_N_ELEMENTS(dm.owed));
    if (dm.answer == ANSWER_NEVER) {
        dm.owed[sel]++;
        return;
    }
    for (; dm.owed[sel] > 0; dm.owed[sel]--) {
        if (dm.late_type == VD_AGENT_CLIPBOARD_NONE) {
            send_head(VDP_IPC_CLIP_BEGIN, sel, VD_AGENT_CLIPBOARD_NONE, 0);
            continue;
        }
        send_head(VDP_IPC_CLIP_BEGIN, sel, dm.late_type, 5);
        assert_int_equal(vdp_ipc_conn_send(dm.conn, VDP_IPC_CLIP_CHUNK, 0,
                                           (const uint8_t *)"late!", 5, NULL, 0), VDP_OK);
    }
    if (dm.answer == ANSWER_NONE) {
        send_head(VDP_IPC_CLIP_BEGIN, sel, VD_AGENT_CLIPBOARD_NONE, 0);
        return;
    }
    if (dm.answer == ANSWER_ABORT) {
        /* the client went away after 10 of 100 bytes */
        send_head(VDP_IPC_CLIP_BEGIN, sel, type, 100);
        assert_int_equal(vdp_ipc_conn_send(dm.conn, VDP_IPC_CLIP_CHUNK, 0,
                                           (const uint8_t *)"0123456789", 10, NULL, 0), VDP_OK);
        uint8_t buf[VDP_IPC_CLIP_ABORT_SIZE];
        size_t n = vdp_ipc_clip_abort_encode(sel, buf, sizeof(buf));
        assert_int_equal(vdp_ipc_conn_send(dm.conn, VDP_IPC_CLIP_ABORT, 0, buf, n, NULL, 0), VDP_OK);
        return;
    }
    if (dm.gen_size > 0) {
        send_head(VDP_IPC_CLIP_BEGIN, sel, type, dm.gen_size);
        dm.gen_active = true;
        dm.gen_sent = 0;
        dm.gen_state = 0x12345678u;
        dm.gen_sel = sel;
        dm.gen_type = type;
        gen_pump();
        return;
    }
    size_t n = dm.host_data ? g_bytes_get_size(dm.host_data) : 0;
    const uint8_t *p = dm.host_data ? g_bytes_get_data(dm.host_data, NULL) : NULL;
    send_head(VDP_IPC_CLIP_BEGIN, sel, type, n);
    /* uneven chunks: the module must not depend on the daemon's sizes */
    size_t off = 0, step = 7;
    while (off < n) {
        size_t k = MIN(step, n - off);
        assert_int_equal(vdp_ipc_conn_send(dm.conn, VDP_IPC_CLIP_CHUNK, 0, p + off, k, NULL, 0),
                         VDP_OK);
        off += k;
        step = MIN(step * 3 + 1, (size_t)CHUNK);
    }
}

static bool daemon_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds,
                         unsigned nfds)
{
    (void)user;
    if (hdr->type == VDP_IPC_VDAGENT) {
        assert_true(hdr->size >= 4);
        uint32_t type = vdp_get_le32(payload);
        VdpMsg m;
        VdpError err = {0};
        VdpResult r = vdp_msg_decode(VDP_FROM_GUEST, vdp_msg_port_for_type(type), type,
                                     payload + 4, hdr->size - 4, &vdp_ipc_layout, &m, &err);
        if (r != VDP_OK)
            fail_msg("the module sent a bad %u message: %s", type, err.text);
        Rec *rec = g_new0(Rec, 1);
        rec->kind = type;
        switch (type) {
        case VD_AGENT_CLIPBOARD_GRAB:
            rec->sel = m.u.grab.selection;
            rec->ntypes = m.u.grab.ntypes;
            memcpy(rec->types, m.u.grab.types, m.u.grab.ntypes * sizeof(uint32_t));
            break;
        case VD_AGENT_CLIPBOARD_RELEASE:
            rec->sel = m.u.release.selection;
            break;
        case VD_AGENT_CLIPBOARD_REQUEST:
            rec->sel = m.u.request.selection;
            rec->type = m.u.request.type;
            dm.nrequests++;
            dm.last_req_sel = rec->sel;
            dm.last_req_type = rec->type;
            daemon_answer(rec->sel, rec->type);
            break;
        case VD_AGENT_CLIPBOARD:
            rec->sel = m.u.clipboard.selection;
            rec->type = m.u.clipboard.type;
            rec->data = g_bytes_new(m.u.clipboard.data, m.u.clipboard.size);
            rec->size = m.u.clipboard.size;
            rec->sha256 = g_compute_checksum_for_data(G_CHECKSUM_SHA256, m.u.clipboard.data,
                                                      m.u.clipboard.size);
            break;
        default:
            break;
        }
        g_ptr_array_add(dm.recs, rec);
    } else if (hdr->type == VDP_IPC_CLIP_DATA_FD) {
        VdpIpcClipHead h;
        VdpError err = {0};
        assert_int_equal(vdp_ipc_clip_head_decode(payload, hdr->size, &h, &err), VDP_OK);
        Rec *rec = g_new0(Rec, 1);
        rec->kind = REC_DATA_FD;
        rec->sel = h.selection;
        rec->type = h.type;
        rec->size = h.size;
        assert_int_equal(nfds, h.size > 0 ? 1 : 0);
        if (nfds == 1) {
            int seals = fcntl(fds[0], F_GET_SEALS);
            rec->sealed = seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
                                                  F_SEAL_SEAL)) ==
                                            (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
                                             F_SEAL_SEAL);
            GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
            GByteArray *small = g_byte_array_new();
            uint8_t *buf = g_malloc(1 << 20);
            uint64_t off = 0;
            while (off < h.size) {
                ssize_t r = pread(fds[0], buf, (size_t)MIN((uint64_t)(1 << 20), h.size - off),
                                  (off_t)off);
                if (r <= 0)
                    break;
                g_checksum_update(c, buf, (gssize)r);
                if (small->len < (1u << 20))
                    g_byte_array_append(small, buf, (guint)MIN((size_t)r, (1u << 20) - small->len));
                off += (uint64_t)r;
            }
            assert_int_equal(off, h.size);
            g_free(buf);
            rec->sha256 = g_strdup(g_checksum_get_string(c));
            g_checksum_free(c);
            rec->data = g_byte_array_free_to_bytes(small);
            close(fds[0]);
        }
        g_ptr_array_add(dm.recs, rec);
    } else {
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
    }
    return true;
}

static void daemon_closed(void *user, const char *why)
{
    (void)user;
    (void)why;
    dm.closed = true;
}

static void daemon_blocked(void *user)
{
    (void)user;
    dm.blocked = true;
}

static void daemon_ready(void *user)
{
    (void)user;
    dm.blocked = false;
    gen_pump();
}

static const VdpIpcConnCallbacks daemon_cbs = {
    .frame = daemon_frame,
    .closed = daemon_closed,
    .write_blocked = daemon_blocked,
    .write_ready = daemon_ready,
};

/* The agent's end: what the agent-core does with frames. */
static bool agent_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds,
                        unsigned nfds)
{
    (void)user;
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (hdr->type == VDP_IPC_VDAGENT) {
        uint32_t type = vdp_get_le32(payload);
        VdpMsg m;
        VdpError err = {0};
        if (vdp_msg_decode(VDP_FROM_HOST, vdp_msg_port_for_type(type), type, payload + 4,
                           hdr->size - 4, &vdp_ipc_layout, &m, &err) != VDP_OK)
            fail_msg("bad envelope from the test daemon: %s", err.text);
        assert_true(va_clipboard_handle_msg(clip, &m));
        envelopes_handled++;
        return true;
    }
    if (hdr->type == VDP_IPC_CLIP_BEGIN || hdr->type == VDP_IPC_CLIP_CHUNK ||
        hdr->type == VDP_IPC_CLIP_ABORT) {
        if (!va_clipboard_handle_frame(clip, hdr, payload))
            fail_msg("the module refused a valid frame");
    }
    return true;
}

static void agent_closed(void *user, const char *why)
{
    (void)user;
    (void)why;
}

static const VdpIpcConnCallbacks agent_cbs = {
    .frame = agent_frame,
    .closed = agent_closed,
};

static void daemon_send(const VdpMsg *m)
{
    envelopes_sent++;
    VdpError err = {0};
    assert_int_equal(vdp_ipc_conn_send_vdagent(dm.conn, 0, m, &err), VDP_OK);
}

static void host_grab(uint32_t sel, const uint32_t *types, unsigned n)
{
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_GRAB};
    m.u.grab.selection = (uint8_t)sel;
    m.u.grab.ntypes = n;
    memcpy(m.u.grab.types, types, n * sizeof(uint32_t));
    daemon_send(&m);
}

static void host_request(uint32_t sel, uint32_t type)
{
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_REQUEST};
    m.u.request.selection = (uint8_t)sel;
    m.u.request.type = type;
    daemon_send(&m);
}

static void host_release(uint32_t sel)
{
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_RELEASE};
    m.u.release.selection = (uint8_t)sel;
    daemon_send(&m);
}

/* ---- waiting ---- */

typedef bool (*Cond)(void *);

static gboolean expire_cb(gpointer p)
{
    *(bool *)p = true;
    return G_SOURCE_REMOVE;
}

static bool wait_for(Cond cond, void *data, unsigned ms)
{
    bool expired = false;
    GSource *t = g_timeout_source_new(ms);
    g_source_set_callback(t, expire_cb, &expired, NULL);
    g_source_attach(t, ctx);
    bool ok;
    while (!(ok = cond(data)) && !expired)
        g_main_context_iteration(ctx, TRUE);
    g_source_destroy(t);
    g_source_unref(t);
    return ok;
}

static bool never(void *d)
{
    (void)d;
    return false;
}

static void spin(unsigned ms)
{
    wait_for(never, NULL, ms);
}

static unsigned nrecs_at_start;

static Rec *find_rec(uint32_t kind, uint32_t sel)
{
    for (guint i = nrecs_at_start; i < dm.recs->len; i++) {
        Rec *r = g_ptr_array_index(dm.recs, i);
        if (r->kind == kind && r->sel == sel)
            return r;
    }
    return NULL;
}

/* The data answer (envelope or fd) after the mark. */
static Rec *find_answer(uint32_t sel)
{
    for (guint i = nrecs_at_start; i < dm.recs->len; i++) {
        Rec *r = g_ptr_array_index(dm.recs, i);
        if ((r->kind == VD_AGENT_CLIPBOARD || r->kind == REC_DATA_FD) && r->sel == sel)
            return r;
    }
    return NULL;
}

static void mark(void)
{
    nrecs_at_start = dm.recs->len;
}

typedef struct KindSel {
    uint32_t kind, sel;
} KindSel;

static bool has_rec(void *p)
{
    KindSel *k = p;
    return find_rec(k->kind, k->sel) != NULL;
}

static Rec *wait_rec(uint32_t kind, uint32_t sel, unsigned ms)
{
    KindSel k = {kind, sel};
    wait_for(has_rec, &k, ms);
    return find_rec(kind, sel);
}

static bool has_answer(void *p)
{
    return find_answer(*(uint32_t *)p) != NULL;
}

static Rec *wait_answer(uint32_t sel, unsigned ms)
{
    wait_for(has_answer, &sel, ms);
    return find_answer(sel);
}

static Atom sel_atom(uint32_t sel)
{
    return sel == SEL_PRI ? XA_PRIMARY : XInternAtom(tdpy, "CLIPBOARD", False);
}

typedef struct OwnerIs {
    Atom sel;
    Window w;
} OwnerIs;

static bool owner_is(void *p)
{
    OwnerIs *o = p;
    return envelopes_handled == envelopes_sent && XGetSelectionOwner(tdpy, o->sel) == o->w;
}

/* The client grabs sel; returns once the agent owns it in X. */
static void client_owns(uint32_t sel, const uint32_t *types, unsigned n)
{
    host_grab(sel, types, n);
    OwnerIs o = {sel_atom(sel), va_x11_window(vx)};
    assert_true(wait_for(owner_is, &o, WAIT_MS));
}

/* ---- guest applications: xclip ---- */

typedef struct Proc {
    GPid pid;
    int out;                /* stdout pipe, -1 when done */
    GSource *src;
    GByteArray *buf;        /* at most keep bytes */
    size_t keep;
    uint64_t total;
    GChecksum *sum;
    bool eof, exited;
    int status;
    gint64 t_start, t_end;
} Proc;

static gboolean proc_read(gint fd, GIOCondition c, gpointer data)
{
    (void)c;
    Proc *p = data;
    uint8_t buf[65536];
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return G_SOURCE_CONTINUE;
    if (r <= 0) {
        p->eof = true;
        p->t_end = g_get_monotonic_time();
        close(p->out);
        p->out = -1;
        g_source_unref(p->src);
        p->src = NULL;
        return G_SOURCE_REMOVE;
    }
    p->total += (uint64_t)r;
    g_checksum_update(p->sum, buf, r);
    if (p->buf->len < p->keep)
        g_byte_array_append(p->buf, buf, (guint)MIN((size_t)r, p->keep - p->buf->len));
    return G_SOURCE_CONTINUE;
}

static void proc_exit(GPid pid, gint status, gpointer data)
{
    Proc *p = data;
    (void)pid;
    p->exited = true;
    p->status = status;
    g_spawn_close_pid(pid);
}

/* Spawn argv (NULL-terminated); stdin from in_path or /dev/null. */
static Proc *proc_spawn(const char *in_path, size_t keep, char **argv)
{
    Proc *p = g_new0(Proc, 1);
    p->buf = g_byte_array_new();
    p->keep = keep;
    p->sum = g_checksum_new(G_CHECKSUM_SHA256);
    p->t_start = g_get_monotonic_time();
    int outp[2];
    assert_int_equal(pipe2(outp, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
        dup2(in, 0);
        dup2(outp[1], 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(outp[1]);
    p->pid = pid;
    p->out = outp[0];
    g_unix_set_fd_nonblocking(p->out, TRUE, NULL);
    p->src = g_unix_fd_source_new(p->out, G_IO_IN | G_IO_HUP | G_IO_ERR);
    g_source_set_callback(p->src, (GSourceFunc)(void (*)(void))proc_read, p, NULL);
    g_source_attach(p->src, ctx);
    GSource *cs = g_child_watch_source_new(pid);
    g_source_set_callback(cs, (GSourceFunc)(void (*)(void))proc_exit, p, NULL);
    g_source_attach(cs, ctx);
    g_source_unref(cs);
    return p;
}

static bool proc_done(void *d)
{
    Proc *p = d;
    return p->eof && p->exited;
}

static bool proc_exited(void *d)
{
    return ((Proc *)d)->exited;
}

static void proc_free(Proc *p)
{
    if (!p)
        return;
    if (!p->exited) {
        kill(p->pid, SIGTERM);
        wait_for(proc_exited, p, WAIT_MS);
    }
    if (p->src) {
        g_source_destroy(p->src);
        g_source_unref(p->src);
    }
    if (p->out >= 0)
        close(p->out);
    g_byte_array_unref(p->buf);
    g_checksum_free(p->sum);
    g_free(p);
}

static const char *xsel_name(uint32_t sel)
{
    return sel == SEL_PRI ? "primary" : "clipboard";
}

/* xclip -o: paste sel as target. */
static Proc *paste(uint32_t sel, const char *target)
{
    char *argv[] = {"xclip", "-o", "-selection", (char *)xsel_name(sel), "-t", (char *)target,
                    NULL};
    return proc_spawn(NULL, 1u << 20, argv);
}

/* xclip -i in the foreground (-quiet): owns sel with data from a file. */
static Proc *copy_file(uint32_t sel, const char *target, const char *path)
{
    char *argv[] = {"xclip", "-quiet", "-i", "-selection", (char *)xsel_name(sel), "-t",
                    (char *)target, NULL};
    return proc_spawn(path, 0, argv);
}

static char *write_tmp(const char *name, const void *data, size_t n)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    assert_true(g_file_set_contents(path, data, (gssize)n, NULL));
    return path;
}

/* A guest app copies data; returns once the module announced it. */
static Proc *guest_copies(uint32_t sel, const char *target, const void *data, size_t n,
                          uint32_t expect_type)
{
    char *path = write_tmp("copy.bin", data, n);
    mark();
    Proc *p = copy_file(sel, target, path);
    g_free(path);
    Rec *g = wait_rec(VD_AGENT_CLIPBOARD_GRAB, sel, WAIT_MS);
    assert_non_null(g);
    bool found = false;
    for (unsigned i = 0; i < g->ntypes; i++)
        found |= g->types[i] == expect_type;
    assert_true(found);
    return p;
}

/* ---- setup ---- */

static void reset_daemon(void)
{
    dm.answer = ANSWER_DATA;
    if (dm.host_data)
        g_bytes_unref(dm.host_data);
    dm.host_data = NULL;
    dm.gen_size = 0;
    dm.gen_pause_at = 0;
    dm.gen_active = false;
    dm.late_type = VD_AGENT_CLIPBOARD_NONE;    /* (owed answers stay owed) */
}

static int setup_all(void **state)
{
    (void)state;
    tmpdir = g_dir_make_tmp("test-clipboard-XXXXXX", NULL);
    start_xvfb();
    ctx = g_main_context_default();
    GError *error = NULL;
    vx = va_x11_open(ctx, display_name, &error);
    if (!vx)
        fail_msg("va_x11_open: %s", error->message);
    clip = va_clipboard_new(vx, &error);
    if (!clip)
        fail_msg("va_clipboard_new: %s", error->message);
    /* Short timeouts for the tests that wait for them. */
    va_clipboard_set_timeouts(clip, 3000, 3000);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    agent_conn = vdp_ipc_conn_new(ctx, sv[0], NULL, &agent_cbs, NULL);
    dm.conn = vdp_ipc_conn_new(ctx, sv[1], NULL, &daemon_cbs, NULL);
    dm.recs = g_ptr_array_new_with_free_func(rec_free);
    va_clipboard_set_conn(clip, agent_conn);
    va_clipboard_session_state(clip, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_CLIENT_CONNECTED);
    tdpy = XOpenDisplay(display_name);
    assert_non_null(tdpy);
    twin = XCreateSimpleWindow(tdpy, DefaultRootWindow(tdpy), 0, 0, 1, 1, 0, 0, 0);
    XSelectInput(tdpy, twin, PropertyChangeMask);
    XFlush(tdpy);
    reset_daemon();
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    if (tsrc) {
        g_source_destroy(tsrc);
        g_source_unref(tsrc);
    }
    va_clipboard_set_conn(clip, NULL);
    va_clipboard_free(clip);
    vdp_ipc_conn_free(agent_conn);
    vdp_ipc_conn_free(dm.conn);
    va_x11_free(vx);
    XCloseDisplay(tdpy);
    g_ptr_array_free(dm.recs, TRUE);
    reset_daemon();
    vdp_xserver_stop(&xserver);
    char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        g_message("cannot remove %s", tmpdir);
    g_free(cmd);
    g_free(tmpdir);
    return 0;
}

static int setup_each(void **state)
{
    (void)state;
    reset_daemon();
    mark();
    return 0;
}

/* ---- host -> guest ---- */

static void host_to_guest_text(uint32_t sel, const char *text, const char *target)
{
    reset_daemon();
    dm.host_data = g_bytes_new(text, strlen(text));
    uint32_t types[] = {T_UTF8};
    client_owns(sel, types, 1);
    Proc *p = paste(sel, target);
    assert_true(wait_for(proc_done, p, WAIT_MS));
    assert_true(WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0);
    assert_int_equal(p->buf->len, strlen(text));
    assert_memory_equal(p->buf->data, text, strlen(text));
    proc_free(p);
}

static const char *scripts[] = {
    "plain ASCII",
    "中文 日本語のテキスト 한국어",               /* CJK */
    "مرحبا بالعالم",                               /* Arabic */
    "emoji 😀🎉👍🏽 and ZWJ 👩‍💻",
    "Ελληνικά, русский, עברית, हिन्दी\nsecond line\n",
};

static void test_text_host_to_guest(void **state)
{
    (void)state;
    for (unsigned sel = SEL_CB; sel <= SEL_PRI; sel++)
        for (size_t i = 0; i < G_N_ELEMENTS(scripts); i++) {
            printf("  host->guest %s: %s (UTF8_STRING, text/plain;charset=utf-8)\n",
                   xsel_name(sel), scripts[i]);
            host_to_guest_text(sel, scripts[i], "UTF8_STRING");
            host_to_guest_text(sel, scripts[i], "text/plain;charset=utf-8");
        }
    host_to_guest_text(SEL_CB, scripts[1], "TEXT");
}

static void test_text_guest_to_host(void **state)
{
    (void)state;
    for (unsigned sel = SEL_CB; sel <= SEL_PRI; sel++)
        for (size_t i = 0; i < G_N_ELEMENTS(scripts); i++) {
            printf("  guest->host %s: %s\n", xsel_name(sel), scripts[i]);
            size_t n = strlen(scripts[i]);
            Proc *p = guest_copies(sel, "UTF8_STRING", scripts[i], n, T_UTF8);
            mark();
            host_request(sel, T_UTF8);
            Rec *a = wait_answer(sel, WAIT_MS);
            assert_non_null(a);
            assert_int_equal(a->kind, VD_AGENT_CLIPBOARD);   /* small: an envelope */
            assert_int_equal(a->type, T_UTF8);
            assert_int_equal(g_bytes_get_size(a->data), n);
            assert_memory_equal(g_bytes_get_data(a->data, NULL), scripts[i], n);
            proc_free(p);
        }
}

static void test_latin1(void **state)
{
    (void)state;
    /* host -> guest: STRING is ISO-8859-1; what Latin-1 lacks becomes '?' */
    reset_daemon();
    const char *utf8 = "café ÿ naïve € 中 end";
    const char *latin1 = "caf\xe9 \xff na\xefve ? ? end";
    dm.host_data = g_bytes_new(utf8, strlen(utf8));
    uint32_t types[] = {T_UTF8};
    client_owns(SEL_CB, types, 1);
    Proc *p = paste(SEL_CB, "STRING");
    assert_true(wait_for(proc_done, p, WAIT_MS));
    assert_int_equal(p->buf->len, strlen(latin1));
    assert_memory_equal(p->buf->data, latin1, strlen(latin1));
    proc_free(p);
    printf("  host->guest STRING: UTF-8 converted to Latin-1, others as '?'\n");

    /* the same through INCR, sequences cut by chunk and piece bounds */
    reset_daemon();
    GString *u = g_string_new(NULL), *l = g_string_new(NULL);
    for (unsigned i = 0; i < 300000; i++) {
        g_string_append(u, "é€a");
        g_string_append(l, "\xe9?a");
    }
    dm.host_data = g_bytes_new(u->str, u->len);
    client_owns(SEL_CB, types, 1);
    p = paste(SEL_CB, "STRING");
    assert_true(wait_for(proc_done, p, WAIT_MS));
    assert_int_equal(p->total, l->len);
    char *want_sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)l->str, l->len);
    assert_string_equal(g_checksum_get_string(p->sum), want_sum);
    g_free(want_sum);
    proc_free(p);
    printf("  host->guest STRING through INCR: %zu UTF-8 bytes -> %zu Latin-1 bytes\n", u->len,
           l->len);
    g_string_free(u, TRUE);
    g_string_free(l, TRUE);

    /* guest -> host: an application offering only STRING (Latin-1) */
    const char *in = "Gr\xfc\xdf" "e, \xe0 bient\xf4t \xa9";
    const char *want = "Grüße, à bientôt ©";
    p = guest_copies(SEL_PRI, "STRING", in, strlen(in), T_UTF8);
    mark();
    host_request(SEL_PRI, T_UTF8);
    Rec *a = wait_answer(SEL_PRI, WAIT_MS);
    assert_non_null(a);
    assert_int_equal(a->type, T_UTF8);
    assert_int_equal(g_bytes_get_size(a->data), strlen(want));
    assert_memory_equal(g_bytes_get_data(a->data, NULL), want, strlen(want));
    proc_free(p);
    printf("  guest->host STRING: Latin-1 converted to UTF-8\n");
}

/* The test's own requestor: convert and read, with INCR; pumps the loop. */
typedef struct Conv {
    Atom target, prop;
    bool notified, done, incr;
    Atom type;
    int format;
    GByteArray *data;
    unsigned pieces;
    unsigned stop_after;    /* destroy the window after this many pieces */
    bool stall;             /* start an INCR transfer, then never read */
    bool destroyed;         /* the window is gone already */
    Window win;
} Conv;

static void conv_read(Conv *c, bool del)
{
    Atom type;
    int format;
    unsigned long n, after;
    unsigned char *d = NULL;
    XGetWindowProperty(tdpy, c->win, c->prop, 0, 0x7fffffff / 4, del, AnyPropertyType, &type,
                       &format, &n, &after, &d);
    c->type = type;
    c->format = format;
    size_t unit = format == 32 ? sizeof(long) : format == 16 ? sizeof(short) : 1;
    if (d) {
        g_byte_array_append(c->data, d, (guint)(n * unit));
        XFree(d);
    }
    if (c->incr && n == 0)
        c->done = true;
}

static bool conv_step(void *p)
{
    Conv *c = p;
    while (XPending(tdpy)) {
        XEvent ev;
        XNextEvent(tdpy, &ev);
        if (ev.type == SelectionNotify && ev.xselection.requestor == c->win) {
            c->notified = true;
            if (ev.xselection.property == None) {
                c->done = true;
                c->type = None;
                continue;
            }
            Atom type;
            int format;
            unsigned long n, after;
            unsigned char *d = NULL;
            XGetWindowProperty(tdpy, c->win, c->prop, 0, 0, False, AnyPropertyType, &type,
                               &format, &n, &after, &d);
            if (d)
                XFree(d);
            if (type == XInternAtom(tdpy, "INCR", False)) {
                c->incr = true;
                XDeleteProperty(tdpy, c->win, c->prop);
                if (c->stall)
                    c->done = true;     /* and never delete the first piece */
            } else {
                conv_read(c, true);
                c->done = true;
            }
        } else if (ev.type == PropertyNotify && ev.xproperty.window == c->win && c->incr &&
                   ev.xproperty.atom == c->prop && ev.xproperty.state == PropertyNewValue) {
            conv_read(c, true);
            c->pieces++;
            if (c->stop_after && c->pieces >= c->stop_after) {
                XDestroyWindow(tdpy, c->win);
                c->destroyed = true;
                c->done = true;
            }
        }
    }
    XFlush(tdpy);
    if (!c->done) {
        /* let the module run; wake up for the test connection too */
        struct pollfd pf = {.fd = ConnectionNumber(tdpy), .events = POLLIN};
        g_main_context_iteration(ctx, FALSE);
        poll(&pf, 1, 2);
    }
    return c->done;
}

static Conv *convert_at(uint32_t sel, const char *target, unsigned stop_after, bool stall,
                        const Atom *multiple_pairs, unsigned npairs, Time time);

static Conv *convert_ex(uint32_t sel, const char *target, unsigned stop_after, bool stall,
                        const Atom *multiple_pairs, unsigned npairs)
{
    return convert_at(sel, target, stop_after, stall, multiple_pairs, npairs, CurrentTime);
}

static Conv *convert_at(uint32_t sel, const char *target, unsigned stop_after, bool stall,
                        const Atom *multiple_pairs, unsigned npairs, Time time)
{
    Conv *c = g_new0(Conv, 1);
    c->data = g_byte_array_new();
    c->target = XInternAtom(tdpy, target, False);
    c->prop = XInternAtom(tdpy, "TEST_PROP", False);
    c->stop_after = stop_after;
    c->stall = stall;
    c->win = XCreateSimpleWindow(tdpy, DefaultRootWindow(tdpy), 0, 0, 1, 1, 0, 0, 0);
    XSelectInput(tdpy, c->win, PropertyChangeMask);
    if (multiple_pairs)
        XChangeProperty(tdpy, c->win, c->prop, XInternAtom(tdpy, "ATOM_PAIR", False), 32,
                        PropModeReplace, (const unsigned char *)multiple_pairs, (int)npairs);
    XConvertSelection(tdpy, sel_atom(sel), c->target, c->prop, c->win, time);
    XFlush(tdpy);
    assert_true(wait_for(conv_step, c, BIG_WAIT_MS));
    return c;
}

static Conv *convert(uint32_t sel, const char *target, unsigned stop_after,
                     const Atom *multiple_pairs, unsigned npairs)
{
    return convert_ex(sel, target, stop_after, false, multiple_pairs, npairs);
}

static void conv_free(Conv *c)
{
    if (!c->destroyed)
        XDestroyWindow(tdpy, c->win);
    g_byte_array_unref(c->data);
    g_free(c);
}

static bool atoms_have(const GByteArray *d, const char *name)
{
    Atom a = XInternAtom(tdpy, name, False);
    const long *l = (const long *)d->data;
    for (size_t i = 0; i < d->len / sizeof(long); i++)
        if ((Atom)l[i] == a)
            return true;
    return false;
}

static void test_targets_timestamp_multiple(void **state)
{
    (void)state;
    reset_daemon();
    dm.host_data = g_bytes_new_static("multi", 5);
    uint32_t types[] = {T_UTF8, T_PNG, VD_AGENT_CLIPBOARD_FILE_LIST};
    Time before = CurrentTime;
    client_owns(SEL_CB, types, 3);

    Conv *c = convert(SEL_CB, "TARGETS", 0, NULL, 0);
    assert_int_equal(c->type, XA_ATOM);
    const char *must[] = {"TARGETS", "TIMESTAMP", "MULTIPLE", "UTF8_STRING", "STRING", "TEXT",
                          "text/plain;charset=utf-8", "image/png"};
    for (size_t i = 0; i < G_N_ELEMENTS(must); i++)
        if (!atoms_have(c->data, must[i]))
            fail_msg("TARGETS lacks %s", must[i]);
    assert_false(atoms_have(c->data, "image/jpeg"));
    assert_false(atoms_have(c->data, "text/uri-list"));   /* FILE_LIST is not carried */
    conv_free(c);
    printf("  TARGETS lists the client's types and TARGETS/TIMESTAMP/MULTIPLE\n");

    c = convert(SEL_CB, "TIMESTAMP", 0, NULL, 0);
    assert_int_equal(c->type, XA_INTEGER);
    assert_int_equal(c->data->len, sizeof(long));
    long ts = *(long *)c->data->data;
    assert_true(ts != (long)before);    /* the acquisition time, not CurrentTime */
    conv_free(c);
    /* the same value later: it is the acquisition time, not the request's */
    spin(20);
    c = convert(SEL_CB, "TIMESTAMP", 0, NULL, 0);
    assert_int_equal(*(long *)c->data->data, ts);
    conv_free(c);
    printf("  TIMESTAMP is the acquisition time (%ld)\n", ts);

    Atom pairs[] = {XInternAtom(tdpy, "UTF8_STRING", False), XInternAtom(tdpy, "P1", False),
                    XInternAtom(tdpy, "image/jpeg", False), XInternAtom(tdpy, "P2", False),
                    XInternAtom(tdpy, "TARGETS", False), XInternAtom(tdpy, "P3", False),
                    XA_STRING, XInternAtom(tdpy, "P4", False)};
    unsigned req0 = dm.nrequests;
    c = convert(SEL_CB, "MULTIPLE", 0, pairs, 8);
    assert_int_equal(c->type, XInternAtom(tdpy, "ATOM_PAIR", False));
    assert_int_equal(c->data->len, 8 * sizeof(long));
    const long *res = (const long *)c->data->data;
    assert_int_equal(res[1], (long)pairs[1]);
    assert_int_equal(res[3], None);                 /* jpeg not offered: refused */
    assert_int_equal(res[5], (long)pairs[5]);
    assert_int_equal(res[7], (long)pairs[7]);
    /* The two text targets share one request to the client. */
    assert_int_equal(dm.nrequests - req0, 1);
    unsigned char *d;
    Atom type;
    int format;
    unsigned long n, after;
    XGetWindowProperty(tdpy, c->win, pairs[1], 0, 100, False, AnyPropertyType, &type, &format, &n,
                       &after, &d);
    assert_int_equal(n, 5);
    assert_memory_equal(d, "multi", 5);
    XFree(d);
    XGetWindowProperty(tdpy, c->win, pairs[7], 0, 100, False, AnyPropertyType, &type, &format, &n,
                       &after, &d);
    assert_int_equal(type, XA_STRING);
    assert_int_equal(n, 5);
    XFree(d);
    conv_free(c);
    printf("  MULTIPLE: 4 pairs, the one not offered refused, one request for both texts\n");
}

/* X timestamps are 32-bit milliseconds that wrap every 49.7 days; "earlier
 * than the acquisition" (refused, ICCCM) is decided modulo 2^32 like the X
 * server does, so that requests after a wrap are not all refused while a
 * selection taken before it is owned. */
static void test_request_time_wraps(void **state)
{
    (void)state;
    reset_daemon();
    dm.host_data = g_bytes_new_static("timely", 6);
    uint32_t types[] = {T_UTF8};
    client_owns(SEL_CB, types, 1);
    Conv *c = convert(SEL_CB, "TIMESTAMP", 0, NULL, 0);
    assert_int_equal(c->data->len, sizeof(long));
    uint32_t acq = (uint32_t)*(long *)c->data->data;
    conv_free(c);
    struct {
        uint32_t delta;     /* request time - acquisition time, mod 2^32 */
        bool served;
    } cases[] = {
        {0, true},
        {1000, true},
        {0x7fff0000u, true},            /* later, by almost half the circle */
        {0u - 1000u, false},            /* 1 s before the acquisition */
        {0x80010000u, false},           /* earlier, by almost half the circle */
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        Time t = (Time)(uint32_t)(acq + cases[i].delta);
        c = convert_at(SEL_CB, "UTF8_STRING", 0, false, NULL, 0, t == CurrentTime ? 1 : t);
        if (cases[i].served) {
            assert_int_equal(c->data->len, 6);
            assert_memory_equal(c->data->data, "timely", 6);
        } else {
            assert_int_equal(c->type, None);
        }
        conv_free(c);
    }
    printf("  request times compared with the acquisition time modulo 2^32\n");
}

static long vm_hwm_kb(void)
{
    char *s = NULL;
    long v = -1;
    if (g_file_get_contents("/proc/self/status", &s, NULL, NULL)) {
        char *p = strstr(s, "VmHWM:");
        if (p)
            v = strtol(p + 6, NULL, 10);
    }
    g_free(s);
    return v;
}

static void test_big_host_to_guest(void **state)
{
    (void)state;
    reset_daemon();
    dm.gen_size = BIG_SIZE;
    char *want = gen_sha256(BIG_SIZE, 0x12345678u);
    uint32_t types[] = {T_UTF8};
    client_owns(SEL_CB, types, 1);
    long hwm0 = vm_hwm_kb();
    Proc *p = paste(SEL_CB, "UTF8_STRING");
    assert_true(wait_for(proc_done, p, BIG_WAIT_MS));
    assert_int_equal(p->total, BIG_SIZE);
    assert_string_equal(g_checksum_get_string(p->sum), want);
    VaClipStats st;
    va_clipboard_get_stats(clip, &st);
    long hwm1 = vm_hwm_kb();
    printf("  host->guest 64 MiB through INCR: %.2f s, sha256 ok, module backlog peak %zu KiB, "
           "VmHWM %ld -> %ld KiB\n",
           (double)(p->t_end - p->t_start) / 1e6, st.backlog_peak / 1024, hwm0, hwm1);
    /* The module never held more than its backlog bound (4 MiB + a chunk). */
    assert_true(st.backlog_peak <= 5u * 1024u * 1024u);
#ifndef __SANITIZE_ADDRESS__
    /* (ASan's quarantine keeps freed memory: the peak means nothing there) */
    assert_true(hwm1 - hwm0 < 32 * 1024);
#endif
    proc_free(p);
    g_free(want);
}

static void test_big_guest_to_host(void **state)
{
    (void)state;
    char *path = g_build_filename(tmpdir, "big.bin", NULL);
    {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        uint8_t *buf = g_malloc(CHUNK);
        uint32_t st = 0x12345678u;
        for (uint64_t off = 0; off < BIG_SIZE; off += CHUNK) {
            gen_fill(&st, buf, CHUNK);
            assert_int_equal(fwrite(buf, 1, CHUNK, f), CHUNK);
        }
        fclose(f);
        g_free(buf);
    }
    char *want = gen_sha256(BIG_SIZE, 0x12345678u);
    mark();
    Proc *p = copy_file(SEL_CB, "image/png", path);
    Rec *g = wait_rec(VD_AGENT_CLIPBOARD_GRAB, SEL_CB, WAIT_MS);
    assert_non_null(g);
    mark();
    gint64 t0 = g_get_monotonic_time();
    host_request(SEL_CB, T_PNG);
    Rec *a = wait_answer(SEL_CB, BIG_WAIT_MS);
    gint64 t1 = g_get_monotonic_time();
    assert_non_null(a);
    assert_int_equal(a->kind, REC_DATA_FD);
    assert_int_equal(a->type, T_PNG);
    assert_int_equal(a->size, BIG_SIZE);
    assert_true(a->sealed);
    assert_string_equal(a->sha256, want);
    printf("  guest->host 64 MiB (INCR receive into a sealed memfd): %.2f s, sha256 ok\n",
           (double)(t1 - t0) / 1e6);
    proc_free(p);
    g_free(want);
    unlink(path);
    g_free(path);
}

static void test_image(void **state)
{
    (void)state;
    /* A real 1x1 PNG. */
    static const uint8_t png[] = {
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f,
        0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8,
        0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00,
        0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
    reset_daemon();
    dm.host_data = g_bytes_new_static(png, sizeof(png));
    uint32_t types[] = {T_PNG};
    client_owns(SEL_CB, types, 1);
    Proc *p = paste(SEL_CB, "image/png");
    assert_true(wait_for(proc_done, p, WAIT_MS));
    assert_int_equal(p->buf->len, sizeof(png));
    assert_memory_equal(p->buf->data, png, sizeof(png));
    proc_free(p);
    /* not offered as text */
    p = paste(SEL_CB, "UTF8_STRING");
    assert_true(wait_for(proc_done, p, WAIT_MS));
    assert_int_equal(p->total, 0);
    assert_int_not_equal(WEXITSTATUS(p->status), 0);
    proc_free(p);
    printf("  host->guest image/png ok, UTF8_STRING refused\n");

    p = guest_copies(SEL_CB, "image/png", png, sizeof(png), T_PNG);
    mark();
    host_request(SEL_CB, T_PNG);
    Rec *a = wait_answer(SEL_CB, WAIT_MS);
    assert_non_null(a);
    assert_int_equal(a->type, T_PNG);
    assert_int_equal(g_bytes_get_size(a->data), sizeof(png));
    assert_memory_equal(g_bytes_get_data(a->data, NULL), png, sizeof(png));
    /* a type the guest does not offer: NONE */
    mark();
    host_request(SEL_CB, VD_AGENT_CLIPBOARD_IMAGE_JPG);
    a = wait_answer(SEL_CB, WAIT_MS);
    assert_non_null(a);
    assert_int_equal(a->type, VD_AGENT_CLIPBOARD_NONE);
    assert_int_equal(a->size, 0);
    proc_free(p);
    printf("  guest->host image/png ok, a request for jpeg answered NONE\n");
}

static void test_request_not_offered(void **state)
{
    (void)state;
    /* nobody in the guest owns PRIMARY for the client: NONE */
    uint32_t types[] = {T_UTF8};
    client_owns(SEL_PRI, types, 1);
    mark();
    host_request(SEL_PRI, T_UTF8);
    Rec *a = wait_answer(SEL_PRI, WAIT_MS);
    assert_non_null(a);
    assert_int_equal(a->type, VD_AGENT_CLIPBOARD_NONE);
    host_release(SEL_PRI);
    OwnerIs o = {XA_PRIMARY, None};
    assert_true(wait_for(owner_is, &o, WAIT_MS));
    printf("  REQUEST while the client owns the selection: NONE; RELEASE gives it up\n");
}

static void test_daemon_never_answers(void **state)
{
    (void)state;
    reset_daemon();
    dm.answer = ANSWER_NEVER;
    uint32_t types[] = {T_UTF8};
    client_owns(SEL_CB, types, 1);
    gint64 t0 = g_get_monotonic_time();
    Proc *p = paste(SEL_CB, "UTF8_STRING");
    assert_true(wait_for(proc_done, p, WAIT_MS));
    double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
    assert_int_not_equal(WEXITSTATUS(p->status), 0);    /* refused, not hanging */
    assert_int_equal(p->total, 0);
    assert_true(secs >= 2.5);                           /* waited for the answer timeout */
    proc_free(p);
    printf("  no answer from the client: the requestor was refused after %.1f s\n", secs);
    /* the client answers NONE: refused at once */
    dm.answer = ANSWER_NONE;
    p = paste(SEL_CB, "UTF8_STRING");
    assert_true(wait_for(proc_done, p, WAIT_MS));
    assert_int_not_equal(WEXITSTATUS(p->status), 0);
    proc_free(p);
    /* and then it works again */
    host_to_guest_text(SEL_CB, "after the timeouts", "UTF8_STRING");
    printf("  NONE refused at once; the next paste works\n");
}

/* The IPC rules: answers come in the order of the requests, per selection.
 * A request the module gave up on (the client did not start answering in
 * time) still gets its answer later, and that answer must not be taken for
 * the answer to the next request: the application pasting next gets its
 * own data, not the late one nor a refusal. */
static void test_late_answer(void **state)
{
    (void)state;
    reset_daemon();
    dm.answer = ANSWER_NEVER;
    uint32_t types[] = {T_UTF8, T_PNG};
    client_owns(SEL_PRI, types, 2);
    /* (the test's own requestor: xclip would retry another target) */
    Conv *c = convert(SEL_PRI, "image/png", 0, NULL, 0);
    assert_int_equal(c->type, None);        /* given up after 3 s */
    conv_free(c);
    /* the client answers that request late, just before the next answer */
    dm.answer = ANSWER_DATA;
    dm.host_data = g_bytes_new_static("on time", 7);
    dm.late_type = T_PNG;
    c = convert(SEL_PRI, "UTF8_STRING", 0, NULL, 0);
    assert_int_equal(c->type, XInternAtom(tdpy, "UTF8_STRING", False));
    assert_int_equal(c->data->len, 7);
    assert_memory_equal(c->data->data, "on time", 7);
    conv_free(c);
    /* a late answer of the same type is not pasted either */
    dm.answer = ANSWER_NEVER;
    c = convert(SEL_PRI, "UTF8_STRING", 0, NULL, 0);
    assert_int_equal(c->type, None);
    conv_free(c);
    dm.answer = ANSWER_DATA;
    dm.late_type = T_UTF8;
    c = convert(SEL_PRI, "UTF8_STRING", 0, NULL, 0);
    assert_int_equal(c->data->len, 7);
    assert_memory_equal(c->data->data, "on time", 7);
    conv_free(c);
    host_release(SEL_PRI);
    printf("  answers to requests given up on are dropped, not given to the next paste\n");
}

static bool gen_done(void *p)
{
    (void)p;
    return !dm.gen_active;
}

static void test_abort_and_max(void **state)
{
    (void)state;
    reset_daemon();
    dm.answer = ANSWER_ABORT;
    uint32_t types[] = {T_UTF8};
    client_owns(SEL_CB, types, 1);
    char *argv[] = {"xclip", "-o", "-selection", "clipboard", "-t", "text/plain;charset=utf-8",
                    NULL};
    Proc *p = proc_spawn(NULL, 1024, argv);
    assert_true(wait_for(proc_done, p, WAIT_MS));
    assert_int_not_equal(WEXITSTATUS(p->status), 0);    /* refused, nothing partial */
    assert_int_equal(p->total, 0);
    proc_free(p);
    host_to_guest_text(SEL_CB, "after an abort", "UTF8_STRING");
    printf("  CLIP_ABORT after 10 of 100 bytes: the requestor is refused; the next paste works\n");

    /* The client accepts at most 1000 bytes: 5000 are answered empty. */
    VdpMsg m = {.type = VD_AGENT_MAX_CLIPBOARD};
    m.u.max_clipboard.max = 1000;
    daemon_send(&m);
    char big[5000];
    memset(big, 'x', sizeof(big));
    p = guest_copies(SEL_CB, "UTF8_STRING", big, sizeof(big), T_UTF8);
    mark();
    host_request(SEL_CB, T_UTF8);
    Rec *a = wait_answer(SEL_CB, WAIT_MS);
    assert_non_null(a);
    assert_int_equal(a->type, T_UTF8);
    assert_int_equal(a->size, 0);
    m.u.max_clipboard.max = -1;
    daemon_send(&m);
    mark();
    host_request(SEL_CB, T_UTF8);
    a = wait_answer(SEL_CB, WAIT_MS);
    assert_non_null(a);
    assert_int_equal(a->size, sizeof(big));
    proc_free(p);
    printf("  MAX_CLIPBOARD 1000: 5000 bytes answered empty; without a limit they go\n");
}

static void test_requestor_vanishes(void **state)
{
    (void)state;
    reset_daemon();
    dm.gen_size = 8u * 1024u * 1024u;
    uint32_t types[] = {T_UTF8};
    client_owns(SEL_CB, types, 1);
    Conv *c = convert(SEL_CB, "UTF8_STRING", 3, NULL, 0);
    assert_true(c->incr);
    conv_free(c);
    XSync(tdpy, False);
    /* the client's data keeps coming; the module reads and drops it */
    assert_true(wait_for(gen_done, NULL, BIG_WAIT_MS));
    /* the module forgets it (backlog back to 0), later pastes work */
    host_to_guest_text(SEL_CB, "after a vanished requestor", "UTF8_STRING");
    reset_daemon();
    dm.gen_size = 2u * 1024u * 1024u;
    char *want = gen_sha256(dm.gen_size, 0x12345678u);
    Proc *p = paste(SEL_CB, "UTF8_STRING");
    assert_true(wait_for(proc_done, p, WAIT_MS));
    assert_string_equal(g_checksum_get_string(p->sum), want);
    g_free(want);
    proc_free(p);
    printf("  requestor destroyed mid-INCR: dropped; small and INCR pastes work after it\n");
}

static bool reading_paused(void *p)
{
    (void)p;
    VaClipStats st;
    va_clipboard_get_stats(clip, &st);
    return st.reading_paused;
}

static bool reading_resumed(void *p)
{
    (void)p;
    VaClipStats st;
    va_clipboard_get_stats(clip, &st);
    return !st.reading_paused && st.backlog == 0;
}

/* A requestor starts an INCR transfer of 16 MiB and then stops reading
 * (first round) or destroys its window (second round) while the module
 * holds so much of the client's data that it stopped reading the daemon.
 * Once the requestor is given up (the 3 s application timeout, or the
 * DestroyNotify) the module must drop what it buffered for it and read the
 * IPC again: otherwise the whole daemon connection stays paused for good
 * (nothing else from the daemon is read, the rest of the stream never
 * arrives, every later paste hangs). */
static void test_stalled_reader_while_paused(void **state)
{
    (void)state;
    for (int destroy = 0; destroy <= 1; destroy++) {
        reset_daemon();
        dm.gen_size = 16u * 1024u * 1024u;
        uint32_t types[] = {T_UTF8};
        client_owns(SEL_CB, types, 1);
        Conv *c = convert_ex(SEL_CB, "UTF8_STRING", 0, true, NULL, 0);
        assert_true(c->incr);
        /* the module buffers up to its high mark and stops reading */
        assert_true(wait_for(reading_paused, NULL, WAIT_MS));
        gint64 t0 = g_get_monotonic_time();
        if (destroy) {
            XDestroyWindow(tdpy, c->win);
            c->destroyed = true;
            XFlush(tdpy);
        }
        /* the rest of the client's data is read (and dropped) */
        assert_true(wait_for(gen_done, NULL, WAIT_MS));
        assert_true(wait_for(reading_resumed, NULL, WAIT_MS));
        printf("  %s while the IPC was paused: reading resumed after %.1f s\n",
               destroy ? "INCR requestor destroyed" : "INCR requestor stopped reading",
               (double)(g_get_monotonic_time() - t0) / 1e6);
        conv_free(c);
        host_to_guest_text(SEL_CB, "after a stalled reader", "UTF8_STRING");
    }
}

/* Reads one INCR piece if there is one (deleting it: the next is asked). */
static void conv_take_piece(Conv *c)
{
    while (XPending(tdpy)) {
        XEvent ev;
        XNextEvent(tdpy, &ev);
    }
    Atom type = None;
    int format;
    unsigned long n = 0, after;
    unsigned char *d = NULL;
    XGetWindowProperty(tdpy, c->win, c->prop, 0, 0x7fffffff / 4, False, AnyPropertyType, &type,
                       &format, &n, &after, &d);
    if (d)
        XFree(d);
    if (type != None && n > 0) {
        c->pieces++;
        XDeleteProperty(tdpy, c->win, c->prop);
        XFlush(tdpy);
    }
}

/* A requestor that reads, but slowly: a 256 KiB piece a second, each well
 * within the application timeout. While it holds the module's backlog the
 * daemon connection is not read at all (the other selection, the display,
 * everything waits): after the application timeout it is given up and the
 * module reads again, instead of waiting for it to drain 3 MiB (12 s here,
 * minutes for a reader as slow as the timeout allows). */
static void test_slow_reader_shed(void **state)
{
    (void)state;
    reset_daemon();
    dm.gen_size = 16u * 1024u * 1024u;
    uint32_t types[] = {T_UTF8};
    client_owns(SEL_CB, types, 1);
    Conv *c = convert_ex(SEL_CB, "UTF8_STRING", 0, true, NULL, 0);
    assert_true(c->incr);
    assert_true(wait_for(reading_paused, NULL, WAIT_MS));
    gint64 t0 = g_get_monotonic_time();
    while (!reading_resumed(NULL) && g_get_monotonic_time() - t0 < 20 * G_USEC_PER_SEC) {
        conv_take_piece(c);
        spin(1000);     /* the reader's pace */
    }
    double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
    printf("  a requestor reading 256 KiB/s held the daemon unread for %.1f s (%u pieces)\n",
           secs, c->pieces);
    assert_true(reading_resumed(NULL));
    assert_true(secs < 9.0);    /* the 3 s timeout (+ slack), not the 12 s drain */
    assert_true(wait_for(gen_done, NULL, WAIT_MS));
    conv_free(c);
    host_to_guest_text(SEL_CB, "after a slow reader", "UTF8_STRING");
}

/* A guest owner of our own that answers TARGETS and then starts INCR for
 * the data but never sends a piece (or never answers at all). */
typedef struct Owner {
    Atom sel;
    bool answer_data;
    unsigned requests;
    /* incr_total > 0: the data is sent, INCR, in incr_total pieces of
     * OWNER_PIECE bytes, at most incr_allowed of them until the test allows
     * more (owner_send_pieces) */
    unsigned incr_total, incr_allowed, incr_sent;
    bool incr_ended;
    bool incr_ready;        /* the requestor deleted the property: next piece */
    Window incr_win;
    Atom incr_prop;
    /* the data target offered (NULL: UTF8_STRING) */
    const char *target;
    /* direct != NULL: answer the data request at once with these bytes of
     * type direct_type (which need not be the target) */
    const char *direct;
    const char *direct_type;
    /* hold_targets: keep the TARGETS request unanswered until
     * owner_answer_targets() */
    bool hold_targets;
    XSelectionRequestEvent held;
    bool have_held;
    Window win2;            /* a second owner window of the test, or None */
} Owner;
#define OWNER_PIECE 65536u

static Owner own;

/* The next INCR piece (or the zero-length end) if the requestor is ready
 * and the test allows it. */
static void owner_send_pieces(void)
{
    if (!own.incr_ready || own.incr_ended)
        return;
    if (own.incr_sent == own.incr_total) {
        XChangeProperty(tdpy, own.incr_win, own.incr_prop, XInternAtom(tdpy, "UTF8_STRING", False),
                        8, PropModeReplace, (const unsigned char *)"", 0);
        own.incr_ended = true;
    } else if (own.incr_sent < own.incr_allowed) {
        static uint8_t piece[OWNER_PIECE];
        memset(piece, 'a' + (int)(own.incr_sent % 26), sizeof(piece));
        XChangeProperty(tdpy, own.incr_win, own.incr_prop, XInternAtom(tdpy, "UTF8_STRING", False),
                        8, PropModeReplace, piece, (int)sizeof(piece));
        own.incr_sent++;
    } else {
        return;
    }
    own.incr_ready = false;
    XFlush(tdpy);
}

static gboolean owner_events(gint fd, GIOCondition c, gpointer data)
{
    (void)fd;
    (void)c;
    (void)data;
    while (XPending(tdpy)) {
        XEvent ev;
        XNextEvent(tdpy, &ev);
        if (ev.type == PropertyNotify && own.incr_total && ev.xproperty.window == own.incr_win &&
            ev.xproperty.atom == own.incr_prop && ev.xproperty.state == PropertyDelete) {
            own.incr_ready = true;
            owner_send_pieces();
            continue;
        }
        if (ev.type != SelectionRequest ||
            (ev.xselectionrequest.owner != twin &&
             (own.win2 == None || ev.xselectionrequest.owner != own.win2)))
            continue;
        XSelectionRequestEvent *r = &ev.xselectionrequest;
        XEvent n = {0};
        n.xselection.type = SelectionNotify;
        n.xselection.requestor = r->requestor;
        n.xselection.selection = r->selection;
        n.xselection.target = r->target;
        n.xselection.time = r->time;
        n.xselection.property = r->property;
        if (r->target == XInternAtom(tdpy, "TARGETS", False)) {
            if (own.hold_targets) {
                own.held = *r;
                own.have_held = true;
                continue;
            }
            Atom t[] = {XInternAtom(tdpy, "TARGETS", False),
                        XInternAtom(tdpy, own.target ? own.target : "UTF8_STRING", False)};
            XChangeProperty(tdpy, r->requestor, r->property, XA_ATOM, 32, PropModeReplace,
                            (unsigned char *)t, 2);
        } else {
            own.requests++;
            if (!own.answer_data)
                continue;       /* never answers */
            if (own.direct) {
                XChangeProperty(tdpy, r->requestor, r->property,
                                XInternAtom(tdpy, own.direct_type, False), 8, PropModeReplace,
                                (const unsigned char *)own.direct, (int)strlen(own.direct));
                XSendEvent(tdpy, r->requestor, False, 0, &n);
                continue;
            }
            if (own.incr_total) {
                /* INCR with pieces: learn when the requestor deletes */
                own.incr_win = r->requestor;
                own.incr_prop = r->property;
                own.incr_sent = 0;
                own.incr_ended = false;
                own.incr_ready = false;
                XSelectInput(tdpy, r->requestor, PropertyChangeMask);
            }
            long big = 1 << 24;
            XChangeProperty(tdpy, r->requestor, r->property, XInternAtom(tdpy, "INCR", False), 32,
                            PropModeReplace, (unsigned char *)&big, 1);
            /* ... and never sends a piece */
        }
        XSendEvent(tdpy, r->requestor, False, 0, &n);
    }
    XFlush(tdpy);
    return G_SOURCE_CONTINUE;
}

static void owner_start(uint32_t sel, bool answer_data)
{
    own.sel = sel_atom(sel);
    own.answer_data = answer_data;
    own.requests = 0;
    own.incr_total = 0;
    own.target = NULL;
    own.direct = NULL;
    own.hold_targets = false;
    own.have_held = false;
    own.win2 = None;
    if (!tsrc) {
        tsrc = g_unix_fd_source_new(ConnectionNumber(tdpy), G_IO_IN);
        g_source_set_callback(tsrc, (GSourceFunc)(void (*)(void))owner_events, NULL, NULL);
        g_source_attach(tsrc, ctx);
    }
    mark();
    XSetSelectionOwner(tdpy, own.sel, twin, CurrentTime);
    XFlush(tdpy);
}

static void owner_stop(void)
{
    if (tsrc) {
        g_source_destroy(tsrc);
        g_source_unref(tsrc);
        tsrc = NULL;
    }
}

static bool owner_asked(void *d)
{
    (void)d;
    owner_events(0, 0, NULL);
    return own.requests > 0;
}

static void test_owner_change_mid_fetch(void **state)
{
    (void)state;
    /* A guest owner that starts INCR and stalls; another app copies. */
    owner_start(SEL_CB, true);
    assert_non_null(wait_rec(VD_AGENT_CLIPBOARD_GRAB, SEL_CB, WAIT_MS));
    mark();
    host_request(SEL_CB, T_UTF8);
    assert_true(wait_for(owner_asked, NULL, WAIT_MS));
    spin(100);
    assert_null(find_answer(SEL_CB));
    Proc *p = guest_copies(SEL_CB, "UTF8_STRING", "new owner", 9, T_UTF8);
    /* guest_copies marked before the copy: the answer to the old request
     * (NONE) and the new GRAB are both after it */
    Rec *a = wait_answer(SEL_CB, WAIT_MS);
    assert_non_null(a);
    assert_int_equal(a->type, VD_AGENT_CLIPBOARD_NONE);
    mark();
    host_request(SEL_CB, T_UTF8);
    a = wait_answer(SEL_CB, WAIT_MS);
    assert_non_null(a);
    assert_int_equal(a->type, T_UTF8);
    assert_int_equal(a->size, 9);
    proc_free(p);
    printf("  owner change during an INCR fetch: NONE at once, the new owner is announced "
           "and served\n");

    /* An owner that never answers the data request: NONE after the timeout. */
    owner_start(SEL_PRI, false);
    assert_non_null(wait_rec(VD_AGENT_CLIPBOARD_GRAB, SEL_PRI, WAIT_MS));
    mark();
    gint64 t0 = g_get_monotonic_time();
    host_request(SEL_PRI, T_UTF8);
    a = wait_answer(SEL_PRI, WAIT_MS);
    assert_non_null(a);
    assert_int_equal(a->type, VD_AGENT_CLIPBOARD_NONE);
    printf("  a guest owner that never answers: NONE after %.1f s\n",
           (double)(g_get_monotonic_time() - t0) / 1e6);
    owner_stop();
    XSetSelectionOwner(tdpy, XA_PRIMARY, None, CurrentTime);
    XSetSelectionOwner(tdpy, sel_atom(SEL_CB), None, CurrentTime);
    XFlush(tdpy);
    assert_non_null(wait_rec(VD_AGENT_CLIPBOARD_RELEASE, SEL_PRI, WAIT_MS));
}

/* An owner that offers only STRING but answers with UTF8_STRING data (the
 * type, not the target, says what the bytes are): the text is passed as it
 * is, not converted from Latin-1 a second time. And the other way round:
 * UTF8_STRING asked, STRING (Latin-1) answered: converted. */
static void test_owner_answers_other_type(void **state)
{
    (void)state;
    owner_start(SEL_CB, true);
    own.target = "STRING";
    own.direct = "caf\xc3\xa9 \xe2\x82\xac";        /* "café €" in UTF-8 */
    own.direct_type = "UTF8_STRING";
    assert_non_null(wait_rec(VD_AGENT_CLIPBOARD_GRAB, SEL_CB, WAIT_MS));
    mark();
    host_request(SEL_CB, T_UTF8);
    Rec *a = wait_answer(SEL_CB, WAIT_MS);
    assert_non_null(a);
    assert_int_equal(a->type, T_UTF8);
    assert_int_equal(g_bytes_get_size(a->data), strlen(own.direct));
    assert_memory_equal(g_bytes_get_data(a->data, NULL), own.direct, strlen(own.direct));
    owner_stop();

    owner_start(SEL_CB, true);
    own.direct = "caf\xe9";                            /* Latin-1 */
    own.direct_type = "STRING";
    assert_non_null(wait_rec(VD_AGENT_CLIPBOARD_GRAB, SEL_CB, WAIT_MS));
    mark();
    host_request(SEL_CB, T_UTF8);
    a = wait_answer(SEL_CB, WAIT_MS);
    assert_non_null(a);
    assert_int_equal(g_bytes_get_size(a->data), 5);
    assert_memory_equal(g_bytes_get_data(a->data, NULL), "caf\xc3\xa9", 5);
    owner_stop();
    XSetSelectionOwner(tdpy, sel_atom(SEL_CB), None, CurrentTime);
    XFlush(tdpy);
    assert_non_null(wait_rec(VD_AGENT_CLIPBOARD_RELEASE, SEL_CB, WAIT_MS));
    printf("  text of another type than asked: decoded by its type\n");
}

static bool targets_held(void *p)
{
    (void)p;
    owner_events(0, 0, NULL);
    return own.have_held;
}

static bool prop_gone(void *p)
{
    const XSelectionRequestEvent *r = p;
    Atom type = None;
    int format;
    unsigned long n, after;
    unsigned char *d = NULL;
    XGetWindowProperty(tdpy, r->requestor, r->property, 0, 0, False, AnyPropertyType, &type,
                       &format, &n, &after, &d);
    if (d)
        XFree(d);
    return type == None;
}

/* Answer a TARGETS request held earlier with TARGETS + target. */
static void answer_targets(const XSelectionRequestEvent *r, const char *target)
{
    Atom t[] = {XInternAtom(tdpy, "TARGETS", False), XInternAtom(tdpy, target, False)};
    XChangeProperty(tdpy, r->requestor, r->property, XA_ATOM, 32, PropModeReplace,
                    (unsigned char *)t, 2);
    XEvent n = {0};
    n.xselection.type = SelectionNotify;
    n.xselection.requestor = r->requestor;
    n.xselection.selection = r->selection;
    n.xselection.target = r->target;
    n.xselection.time = r->time;
    n.xselection.property = r->property;
    XSendEvent(tdpy, r->requestor, False, 0, &n);
    XFlush(tdpy);
}

/* Two guest owners one after the other; the first answers the module's
 * TARGETS request only after the second took the selection: that late
 * answer is about the old owner and must not be announced as the new
 * owner's types (the client would ask the new owner for what it lacks). */
static void test_stale_targets_answer(void **state)
{
    (void)state;
    /* (the test holds the TARGETS answers: no app timeout meanwhile) */
    va_clipboard_set_timeouts(clip, 0, WAIT_MS);
    owner_start(SEL_PRI, true);
    own.hold_targets = true;
    assert_true(wait_for(targets_held, NULL, WAIT_MS));
    XSelectionRequestEvent first = own.held;
    own.have_held = false;
    own.win2 = XCreateSimpleWindow(tdpy, DefaultRootWindow(tdpy), 0, 0, 1, 1, 0, 0, 0);
    XSetSelectionOwner(tdpy, XA_PRIMARY, own.win2, CurrentTime);
    XFlush(tdpy);
    assert_true(wait_for(targets_held, NULL, WAIT_MS));
    XSelectionRequestEvent second = own.held;
    answer_targets(&first, "image/png");        /* late, about the old owner */
    /* the module has read (or dropped) that answer */
    assert_true(wait_for(prop_gone, &first, WAIT_MS));
    answer_targets(&second, "UTF8_STRING");
    Rec *g = wait_rec(VD_AGENT_CLIPBOARD_GRAB, SEL_PRI, WAIT_MS);
    assert_non_null(g);
    assert_int_equal(g->ntypes, 1);
    assert_int_equal(g->types[0], T_UTF8);
    /* and nothing else is announced */
    spin(200);
    for (guint i = nrecs_at_start; i < dm.recs->len; i++) {
        Rec *r = g_ptr_array_index(dm.recs, i);
        if (r->kind == VD_AGENT_CLIPBOARD_GRAB && r->sel == SEL_PRI)
            assert_int_equal(r->types[0], T_UTF8);
    }
    va_clipboard_set_timeouts(clip, 0, 3000);
    owner_stop();
    XSetSelectionOwner(tdpy, XA_PRIMARY, None, CurrentTime);
    XDestroyWindow(tdpy, own.win2);
    own.win2 = None;
    XFlush(tdpy);
    assert_non_null(wait_rec(VD_AGENT_CLIPBOARD_RELEASE, SEL_PRI, WAIT_MS));
    printf("  a late TARGETS answer of a previous owner is not announced for the new one\n");
}

static bool owner_stuck(void *p)
{
    (void)p;
    owner_events(0, 0, NULL);
    return own.incr_sent == own.incr_allowed && own.incr_ready;
}

static void send_max_clipboard(int32_t max)
{
    VdpMsg m = {.type = VD_AGENT_MAX_CLIPBOARD};
    m.u.max_clipboard.max = max;
    daemon_send(&m);
}

static bool envelopes_done(void *p)
{
    (void)p;
    return envelopes_handled == envelopes_sent;
}

/* The client lowers its MAX_CLIPBOARD while an INCR fetch is running and
 * already holds more than the new maximum: what comes after is still
 * checked against it (no wrap-around of "maximum - fetched") and the
 * client gets empty data of the type, not 2.5 MiB it said it refuses. */
static void test_max_lowered_mid_fetch(void **state)
{
    (void)state;
    /* (the owner waits on the test between pieces: no app timeout then) */
    va_clipboard_set_timeouts(clip, 0, WAIT_MS);
    send_max_clipboard(1024 * 1024);
    owner_start(SEL_CB, true);
    own.incr_total = 40;                    /* 2.5 MiB */
    own.incr_allowed = 4;                   /* 256 KiB, then wait */
    assert_non_null(wait_rec(VD_AGENT_CLIPBOARD_GRAB, SEL_CB, WAIT_MS));
    mark();
    host_request(SEL_CB, T_UTF8);
    /* the module read 4 pieces and asks for the fifth */
    assert_true(wait_for(owner_stuck, NULL, WAIT_MS));
    assert_null(find_answer(SEL_CB));
    send_max_clipboard(100000);
    assert_true(wait_for(envelopes_done, NULL, WAIT_MS));
    own.incr_allowed = own.incr_total;
    owner_send_pieces();
    Rec *a = wait_answer(SEL_CB, WAIT_MS);
    assert_non_null(a);
    assert_int_equal(a->type, T_UTF8);
    assert_int_equal(a->size, 0);
    printf("  MAX_CLIPBOARD lowered below what an INCR fetch holds: answered empty\n");
    /* without a limit the same owner's 2.5 MiB go through */
    send_max_clipboard(-1);
    mark();
    host_request(SEL_CB, T_UTF8);
    a = wait_answer(SEL_CB, WAIT_MS);
    assert_non_null(a);
    assert_int_equal(a->kind, REC_DATA_FD);
    assert_int_equal(a->size, (uint64_t)own.incr_total * OWNER_PIECE);
    va_clipboard_set_timeouts(clip, 0, 3000);
    owner_stop();
    XSetSelectionOwner(tdpy, sel_atom(SEL_CB), None, CurrentTime);
    XFlush(tdpy);
    assert_non_null(wait_rec(VD_AGENT_CLIPBOARD_RELEASE, SEL_CB, WAIT_MS));
}

static bool gen_paused(void *p)
{
    return dm.nrequests > *(unsigned *)p && dm.gen_sent == dm.gen_pause_at;
}

static void test_owner_change_mid_stream(void **state)
{
    (void)state;
    /* host -> guest: 16 MiB streaming to xclip, the daemon paused halfway;
     * a guest app takes the selection; the transfer in flight completes. */
    reset_daemon();
    dm.gen_size = 16u * 1024u * 1024u;
    dm.gen_pause_at = 8u * 1024u * 1024u;
    char *want = gen_sha256(dm.gen_size, 0x12345678u);
    uint32_t types[] = {T_UTF8};
    client_owns(SEL_CB, types, 1);
    unsigned req0 = dm.nrequests;
    Proc *p = paste(SEL_CB, "UTF8_STRING");
    /* the paste is under way (the daemon paused halfway) */
    assert_true(wait_for(gen_paused, &req0, WAIT_MS));
    Proc *q = guest_copies(SEL_CB, "UTF8_STRING", "taken", 5, T_UTF8);
    dm.gen_pause_at = 0;
    gen_pump();
    assert_true(wait_for(proc_done, p, BIG_WAIT_MS));
    assert_int_equal(p->total, dm.gen_size);
    assert_string_equal(g_checksum_get_string(p->sum), want);
    g_free(want);
    proc_free(p);
    /* the new owner is the guest app: its data is what pastes now */
    p = paste(SEL_CB, "UTF8_STRING");
    assert_true(wait_for(proc_done, p, WAIT_MS));
    assert_int_equal(p->buf->len, 5);
    assert_memory_equal(p->buf->data, "taken", 5);
    proc_free(p);
    proc_free(q);
    printf("  owner change during a host->guest INCR: the transfer in flight completes, "
           "the new owner is announced\n");
}

static void test_two_requestors(void **state)
{
    (void)state;
    /* two applications paste 16 MiB at once (both INCR), plus a small
     * STRING paste of the same data's type in between: all are served */
    reset_daemon();
    dm.gen_size = 16u * 1024u * 1024u;
    char *want = gen_sha256(dm.gen_size, 0x12345678u);
    uint32_t types[] = {T_UTF8};
    client_owns(SEL_CB, types, 1);
    Proc *p1 = paste(SEL_CB, "UTF8_STRING");
    Proc *p2 = paste(SEL_CB, "text/plain;charset=utf-8");
    assert_true(wait_for(proc_done, p1, BIG_WAIT_MS));
    assert_true(wait_for(proc_done, p2, BIG_WAIT_MS));
    assert_string_equal(g_checksum_get_string(p1->sum), want);
    assert_string_equal(g_checksum_get_string(p2->sum), want);
    printf("  two requestors of 16 MiB at once: both served (%u requests to the client)\n",
           dm.nrequests);
    proc_free(p1);
    proc_free(p2);
    g_free(want);
}

static void test_reannounce_and_disconnect(void **state)
{
    (void)state;
    Proc *p = guest_copies(SEL_CB, "UTF8_STRING", "still here", 10, T_UTF8);
    /* the client goes away and another one connects */
    va_clipboard_session_state(clip, VDP_IPC_SESSION_ACTIVE);
    mark();
    va_clipboard_session_state(clip, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_CLIENT_CONNECTED);
    Rec *g = wait_rec(VD_AGENT_CLIPBOARD_GRAB, SEL_CB, WAIT_MS);
    assert_non_null(g);
    assert_int_equal(g->types[0], T_UTF8);
    proc_free(p);
    printf("  a newly connected client gets the guest's clipboard announced\n");
    /* selections owned for the client are given up when it leaves */
    uint32_t types[] = {T_UTF8};
    client_owns(SEL_PRI, types, 1);
    va_clipboard_session_state(clip, VDP_IPC_SESSION_ACTIVE);
    OwnerIs o = {XA_PRIMARY, None};
    assert_true(wait_for(owner_is, &o, WAIT_MS));
    va_clipboard_session_state(clip, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_CLIENT_CONNECTED);
    printf("  client disconnect gives up the selections owned for it\n");
}

static void test_protocol_errors(void **state)
{
    (void)state;
    /* A chunk without a stream and a BEGIN inside one are refused (the
     * caller closes the connection); checked on the module directly. */
    uint8_t byte = 0;
    VdpIpcHeader h = {.type = VDP_IPC_CLIP_CHUNK, .size = 1};
    assert_false(va_clipboard_handle_frame(clip, &h, &byte));
    uint8_t head[VDP_IPC_CLIP_HEAD_SIZE];
    VdpIpcClipHead ch = {.selection = 0, .type = T_UTF8, .size = 4};
    vdp_ipc_clip_head_encode(&ch, head, sizeof(head));
    h.type = VDP_IPC_CLIP_BEGIN;
    h.size = sizeof(head);
    assert_true(va_clipboard_handle_frame(clip, &h, head));   /* nobody waits: dropped */
    assert_false(va_clipboard_handle_frame(clip, &h, head));
    h.type = VDP_IPC_CLIP_CHUNK;
    h.size = 5;
    uint8_t five[5] = {0};
    assert_false(va_clipboard_handle_frame(clip, &h, five));  /* past the size */
    h.size = 4;
    assert_true(va_clipboard_handle_frame(clip, &h, five));
    h.type = VDP_IPC_CLIP_BEGIN;
    h.size = 3;
    assert_false(va_clipboard_handle_frame(clip, &h, head));  /* truncated */
    printf("  chunk without a stream, BEGIN inside one, chunk past the size: refused\n");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    char *xvfb = g_find_program_in_path("Xvfb"), *xclip = g_find_program_in_path("xclip");
    bool have = xvfb && xclip;
    g_free(xvfb);
    g_free(xclip);
    if (!have) {
        printf("1..0 # SKIP Xvfb or xclip missing\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_protocol_errors, setup_each),
        cmocka_unit_test_setup(test_text_host_to_guest, setup_each),
        cmocka_unit_test_setup(test_text_guest_to_host, setup_each),
        cmocka_unit_test_setup(test_latin1, setup_each),
        cmocka_unit_test_setup(test_targets_timestamp_multiple, setup_each),
        cmocka_unit_test_setup(test_request_time_wraps, setup_each),
        cmocka_unit_test_setup(test_image, setup_each),
        cmocka_unit_test_setup(test_request_not_offered, setup_each),
        cmocka_unit_test_setup(test_daemon_never_answers, setup_each),
        cmocka_unit_test_setup(test_late_answer, setup_each),
        cmocka_unit_test_setup(test_abort_and_max, setup_each),
        cmocka_unit_test_setup(test_requestor_vanishes, setup_each),
        cmocka_unit_test_setup(test_stalled_reader_while_paused, setup_each),
        cmocka_unit_test_setup(test_slow_reader_shed, setup_each),
        cmocka_unit_test_setup(test_owner_change_mid_fetch, setup_each),
        cmocka_unit_test_setup(test_max_lowered_mid_fetch, setup_each),
        cmocka_unit_test_setup(test_owner_answers_other_type, setup_each),
        cmocka_unit_test_setup(test_stale_targets_answer, setup_each),
        cmocka_unit_test_setup(test_owner_change_mid_stream, setup_each),
        cmocka_unit_test_setup(test_two_requestors, setup_each),
        cmocka_unit_test_setup(test_reannounce_and_disconnect, setup_each),
        cmocka_unit_test_setup(test_big_host_to_guest, setup_each),
        cmocka_unit_test_setup(test_big_guest_to_host, setup_each),
    };
    if (g_getenv("TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
