/* test-files.c - va-files with real files in a temporary directory: names
 * confined or refused, symlinks never followed, collisions, cancel, data
 * limits, free space (statvfs and a small tmpfs when root may mount one),
 * the bound on data waiting for a slow disk. Statuses are read back from
 * the other end of a real socket pair, as the daemon would. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "va-files.h"
#include "vdp-wire.h"

/* Every message the module logs (MESSAGE fields), for checks that what a
 * client sends never reaches the log raw. */
static GPtrArray *logged;
static GMutex logged_lock; /* the worker thread logs too */

static GLogWriterOutput capture_log(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data)
{
    g_mutex_lock(&logged_lock);
    for (gsize i = 0; i < n; i++)
        if (strcmp(fields[i].key, "MESSAGE") == 0 && fields[i].length < 0)
            g_ptr_array_add(logged, g_strdup(fields[i].value));
    g_mutex_unlock(&logged_lock);
    return g_log_writer_default(level, fields, n, data);
}

/* Generous: a loaded 2-core CI machine. */
#define WAIT_MS 20000u
#define CHUNK (128u * 1024u)

typedef struct Status {
    uint32_t id, result;
    bool has_detail;
    uint64_t free_space;
    uint32_t error_code;
} Status;

typedef struct Fix {
    char *dir;          /* the save directory */
    char *outside;      /* a sibling directory: nothing may land there */
    VaFiles *f;
    VdpIpcConn *agent;  /* given to va_files */
    VdpIpcConn *daemon; /* reads the statuses */
    GArray *statuses;
    unsigned bad;
    bool closed;
} Fix;

static bool daemon_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds, unsigned nfds)
{
    Fix *fx = user;
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    VdpMsg *m = g_new0(VdpMsg, 1);
    if (hdr->type == VDP_IPC_VDAGENT && hdr->size >= 4 && vdp_get_le32(payload) == VD_AGENT_FILE_XFER_STATUS &&
        vdp_msg_decode(VDP_FROM_GUEST, VDP_CLIENT_PORT, VD_AGENT_FILE_XFER_STATUS, payload + 4, hdr->size - 4,
                       &vdp_ipc_layout, m, NULL) == VDP_OK) {
        Status s = {
            .id = m->u.xfer_status.id,
            .result = m->u.xfer_status.result,
            .has_detail = m->u.xfer_status.has_detail,
            .free_space = m->u.xfer_status.disk_free_space,
            .error_code = m->u.xfer_status.error_code,
        };
        g_array_append_val(fx->statuses, s);
    } else {
        fx->bad++;
    }
    g_free(m);
    return true;
}

static void daemon_closed(void *user, const char *why)
{
    ((Fix *)user)->closed = true;
}

static bool agent_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds, unsigned nfds)
{
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    return true;
}

static void agent_closed(void *user, const char *why)
{
}

static const VdpIpcConnCallbacks daemon_cb = {.frame = daemon_frame, .closed = daemon_closed};
static const VdpIpcConnCallbacks agent_cb = {.frame = agent_frame, .closed = agent_closed};

static bool wait_cond(bool (*cond)(void *), void *data, unsigned ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
    while (!cond(data)) {
        if (g_get_monotonic_time() > end)
            return false;
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(1000);
    }
    return true;
}

/* Modules made by fix_new* show the directory with xdg-open. */
static bool fix_open_dir;

static Fix *fix_new_dir(const char *dir)
{
    Fix *fx = g_new0(Fix, 1);
    fx->statuses = g_array_new(FALSE, TRUE, sizeof(Status));
    char *base = g_dir_make_tmp("test-files-XXXXXX", NULL);
    assert_non_null(base);
    fx->outside = g_build_filename(base, "outside", NULL);
    assert_int_equal(g_mkdir(fx->outside, 0755), 0);
    if (dir) {
        fx->dir = g_strdup(dir);
    } else {
        fx->dir = g_build_filename(base, "save", NULL);
        assert_int_equal(g_mkdir(fx->dir, 0755), 0);
    }
    g_free(base);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fx->agent = vdp_ipc_conn_new(NULL, sv[0], NULL, &agent_cb, fx);
    fx->daemon = vdp_ipc_conn_new(NULL, sv[1], NULL, &daemon_cb, fx);
    assert_non_null(fx->agent);
    assert_non_null(fx->daemon);
    GError *error = NULL;
    fx->f = va_files_new(NULL, fx->dir, fix_open_dir, &error);
    assert_null(error);
    assert_non_null(fx->f);
    va_files_set_conn(fx->f, fx->agent);
    return fx;
}

static Fix *fix_new(void)
{
    return fix_new_dir(NULL);
}

static void rm_rf(const char *path)
{
    char *argv[] = {(char *)"rm", (char *)"-rf", (char *)path, NULL};
    g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
}

static void fix_free(Fix *fx, bool remove_dir)
{
    va_files_free(fx->f);
    vdp_ipc_conn_free(fx->agent);
    vdp_ipc_conn_free(fx->daemon);
    g_array_free(fx->statuses, TRUE);
    char *base = g_path_get_dirname(fx->outside);
    if (remove_dir)
        rm_rf(fx->dir);
    rm_rf(base);
    g_free(base);
    g_free(fx->dir);
    g_free(fx->outside);
    g_free(fx);
}

static int batch_nr, batch_total;   /* added to the next START when set */

static void start(Fix *fx, uint32_t id, const char *name, const char *size_text)
{
    GString *kf = g_string_new("[vdagent-file-xfer]\n");
    if (batch_total)
        g_string_append_printf(kf, "file-xfer-nr=%d\nfile-xfer-total=%d\n", batch_nr, batch_total);
    if (name) {
        /* Key file escapes for \n, \t and \\ so that those reach the
         * parser; every other byte goes in raw. */
        g_string_append(kf, "name=");
        for (const char *c = name; *c; c++) {
            if (*c == '\n')
                g_string_append(kf, "\\n");
            else if (*c == '\t')
                g_string_append(kf, "\\t");
            else if (*c == '\\')
                g_string_append(kf, "\\\\");
            else
                g_string_append_c(kf, *c);
        }
        g_string_append_c(kf, '\n');
    }
    if (size_text)
        g_string_append_printf(kf, "size=%s\n", size_text);
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_FILE_XFER_START;
    m->u.xfer_start.id = id;
    m->u.xfer_start.keyfile = kf->str;
    m->u.xfer_start.keyfile_len = kf->len;
    assert_true(va_files_handle_msg(fx->f, m));
    g_free(m);
    g_string_free(kf, TRUE);
}

/* A START with exactly this key file text. */
static void start_raw(Fix *fx, uint32_t id, const char *text)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_FILE_XFER_START;
    m->u.xfer_start.id = id;
    m->u.xfer_start.keyfile = text;
    m->u.xfer_start.keyfile_len = strlen(text);
    assert_true(va_files_handle_msg(fx->f, m));
    g_free(m);
}

static void start_n(Fix *fx, uint32_t id, const char *name, uint64_t size)
{
    char text[32];
    g_snprintf(text, sizeof(text), "%" G_GUINT64_FORMAT, size);
    start(fx, id, name, text);
}

static void data(Fix *fx, uint32_t id, const void *buf, size_t len)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_FILE_XFER_DATA;
    m->u.xfer_data.id = id;
    m->u.xfer_data.size = len;
    m->u.xfer_data.data = buf;
    assert_true(va_files_handle_msg(fx->f, m));
    g_free(m);
}

static void client_status(Fix *fx, uint32_t id, uint32_t result)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_FILE_XFER_STATUS;
    m->u.xfer_status.id = id;
    m->u.xfer_status.result = result;
    assert_true(va_files_handle_msg(fx->f, m));
    g_free(m);
}

typedef struct StatusWait {
    Fix *fx;
    uint32_t id;
    unsigned nth;
} StatusWait;

static const Status *find_status(Fix *fx, uint32_t id, unsigned nth)
{
    for (guint i = 0; i < fx->statuses->len; i++) {
        const Status *s = &g_array_index(fx->statuses, Status, i);
        if (s->id == id && nth-- == 0)
            return s;
    }
    return NULL;
}

static bool have_status(void *data)
{
    StatusWait *w = data;
    return find_status(w->fx, w->id, w->nth) != NULL;
}

/* The nth status for id (0: the first), waiting for it. */
static Status status_n(Fix *fx, uint32_t id, unsigned nth)
{
    StatusWait w = {fx, id, nth};
    if (!wait_cond(have_status, &w, WAIT_MS))
        fail_msg("no status #%u for transfer %u within %u ms", nth, id, WAIT_MS);
    return *find_status(fx, id, nth);
}

static unsigned count_status(Fix *fx, uint32_t id)
{
    unsigned n = 0;
    for (guint i = 0; i < fx->statuses->len; i++)
        if (g_array_index(fx->statuses, Status, i).id == id)
            n++;
    return n;
}

static void expect_status(Fix *fx, uint32_t id, unsigned nth, uint32_t result)
{
    Status s = status_n(fx, id, nth);
    if (s.result != result)
        fail_msg("transfer %u: status %s, expected %s", id, vdp_xfer_status_name(s.result),
                 vdp_xfer_status_name(result));
}

static bool idle_cond(void *data)
{
    return va_files_active(((Fix *)data)->f) == 0;
}

static void wait_idle(Fix *fx)
{
    assert_true(wait_cond(idle_cond, fx, WAIT_MS));
}

static char *path_in(const char *dir, const char *name)
{
    return g_build_filename(dir, name, NULL);
}

static bool file_has(const char *dir, const char *name, const void *buf, size_t len)
{
    char *p = path_in(dir, name), *got = NULL;
    gsize n = 0;
    struct stat st;
    bool ok = lstat(p, &st) == 0 && S_ISREG(st.st_mode) && g_file_get_contents(p, &got, &n, NULL) && n == len &&
              memcmp(got, buf, len) == 0;
    g_free(got);
    g_free(p);
    return ok;
}

static bool exists(const char *dir, const char *name)
{
    char *p = path_in(dir, name);
    struct stat st;
    bool ok = lstat(p, &st) == 0;
    g_free(p);
    return ok;
}

static unsigned count_entries(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    unsigned n = 0;
    if (!d)
        return 0;
    while (g_dir_read_name(d))
        n++;
    g_dir_close(d);
    return n;
}

typedef struct GoneWait {
    const char *dir;
    const char *name;
} GoneWait;

static bool gone_cond(void *data)
{
    GoneWait *g = data;
    return !exists(g->dir, g->name);
}

static void wait_gone(const char *dir, const char *name)
{
    GoneWait g = {dir, name};
    if (!wait_cond(gone_cond, &g, WAIT_MS))
        fail_msg("%s/%s was not removed within %u ms", dir, name, WAIT_MS);
}

/* Send name with the given content in 100-byte pieces; expect SUCCESS. */
static void send_file(Fix *fx, uint32_t id, const char *name, const void *buf, size_t len)
{
    start_n(fx, id, name, len);
    expect_status(fx, id, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    const uint8_t *p = buf;
    size_t off = 0;
    do {
        size_t n = MIN(len - off, (size_t)100);
        data(fx, id, p + off, n);
        off += n;
    } while (off < len);
    expect_status(fx, id, 1, VD_AGENT_FILE_XFER_STATUS_SUCCESS);
}

/* ---- tests ---- */

static void test_simple(void **state)
{
    Fix *fx = fix_new();
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7);
    send_file(fx, 1, "hello.txt", buf, sizeof(buf));
    assert_true(file_has(fx->dir, "hello.txt", buf, sizeof(buf)));
    send_file(fx, 2, "empty", "", 0);
    assert_true(file_has(fx->dir, "empty", "", 0));
    /* Exactly two statuses each, nothing malformed. */
    assert_int_equal(count_status(fx, 1), 2);
    assert_int_equal(fx->bad, 0);
    assert_int_equal(va_files_active(fx->f), 0);
    fix_free(fx, true);
}

static void test_collisions(void **state)
{
    Fix *fx = fix_new();
    char *p = path_in(fx->dir, "a.txt");
    assert_true(g_file_set_contents(p, "old", 3, NULL));
    g_free(p);
    send_file(fx, 1, "a.txt", "one", 3);
    send_file(fx, 2, "a.txt", "two", 3);
    assert_true(file_has(fx->dir, "a.txt", "old", 3));
    assert_true(file_has(fx->dir, "a (1).txt", "one", 3));
    assert_true(file_has(fx->dir, "a (2).txt", "two", 3));
    send_file(fx, 3, "a.tar.gz", "x", 1);
    send_file(fx, 4, "a.tar.gz", "y", 1);
    assert_true(file_has(fx->dir, "a.tar (1).gz", "y", 1));
    /* Dotfiles have no extension; names without one get the suffix. */
    send_file(fx, 5, ".bashrc", "d1", 2);
    send_file(fx, 6, ".bashrc", "d2", 2);
    assert_true(file_has(fx->dir, ".bashrc", "d1", 2));
    assert_true(file_has(fx->dir, ".bashrc (1)", "d2", 2));
    send_file(fx, 7, "noext", "n1", 2);
    send_file(fx, 8, "noext", "n2", 2);
    assert_true(file_has(fx->dir, "noext (1)", "n2", 2));
    fix_free(fx, true);
}

static void test_traversal_confined(void **state)
{
    Fix *fx = fix_new();
    char *parent = g_path_get_dirname(fx->dir);
    bool etc_had = access("/etc/vdagent-test-x", F_OK) == 0;
    send_file(fx, 1, "../escape1", "1", 1);
    send_file(fx, 2, "/etc/vdagent-test-x", "2", 1);
    send_file(fx, 3, "a/../../escape3", "3", 1);
    send_file(fx, 4, "../outside/escape4", "4", 1);
    send_file(fx, 5, "sub/dir/deep.txt", "5", 1);
    assert_true(file_has(fx->dir, "escape1", "1", 1));
    assert_true(file_has(fx->dir, "vdagent-test-x", "2", 1));
    assert_true(file_has(fx->dir, "escape3", "3", 1));
    assert_true(file_has(fx->dir, "escape4", "4", 1));
    assert_true(file_has(fx->dir, "deep.txt", "5", 1));
    assert_false(exists(parent, "escape1"));
    assert_false(exists(parent, "escape3"));
    assert_false(exists(fx->outside, "escape4"));
    assert_false(exists(fx->dir, "sub"));
    if (!etc_had)
        assert_int_not_equal(access("/etc/vdagent-test-x", F_OK), 0);
    assert_int_equal(count_entries(fx->outside), 0);
    g_free(parent);
    fix_free(fx, true);
}

static void test_names_refused(void **state)
{
    Fix *fx = fix_new();
    static const char *const bad[] = {
        "", ".", "..", "foo/", "a/..", "/", "bad\nname", "tab\tname", "del\x7f", "esc\x1b[31m", "bad\xff\xfe",
        /* C1 controls: NEL, CSI (a terminal's ESC [), APC */
        "nel\xc2\x85x", "csi\xc2\x9b" "31m", "apc\xc2\x9fx",
        /* bidi embeddings, overrides and isolates: "gpj.exe" shown as
         * "exe.jpg" */
        "a\xe2\x80\xaa" "b", "a\xe2\x80\xab" "b", "a\xe2\x80\xac" "b", "a\xe2\x80\xad" "b",
        "evil\xe2\x80\xaegpj.exe", "a\xe2\x81\xa6" "b", "a\xe2\x81\xa7" "b", "a\xe2\x81\xa8" "b",
        "a\xe2\x81\xa9" "b",
        /* line and paragraph separators */
        "a\xe2\x80\xa8" "b", "a\xe2\x80\xa9" "b",
    };
    uint32_t id = 10;
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++, id++) {
        start_n(fx, id, bad[i], 5);
        Status s = status_n(fx, id, 0);
        if (s.result != VD_AGENT_FILE_XFER_STATUS_ERROR)
            fail_msg("name #%zu accepted (%s)", i, vdp_xfer_status_name(s.result));
        assert_true(s.has_detail);
        /* Not UTF-8 is already refused by the key file parser. */
        if (s.error_code != G_IO_ERROR_INVALID_FILENAME && s.error_code != G_IO_ERROR_INVALID_DATA)
            fail_msg("name #%zu: error code %u", i, s.error_code);
    }
    /* Ordinary non-ASCII names (accents, CJK, an emoji sequence joined
     * with U+200D) are fine. */
    static const char *const good[] = {
        "caf\xc3\xa9.txt", "\xe6\x97\xa5\xe6\x9c\xac.txt",
        "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb.png",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(good); i++, id++) {
        send_file(fx, id, good[i], "ok", 2);
        assert_true(file_has(fx->dir, good[i], "ok", 2));
        char *p = path_in(fx->dir, good[i]);
        assert_int_equal(g_unlink(p), 0);
        g_free(p);
    }
    /* A name of NAME_MAX bytes: no room for " (N)", refused. */
    char *longname = g_strnfill(NAME_MAX, 'n');
    start_n(fx, id, longname, 1);
    expect_status(fx, id, 0, VD_AGENT_FILE_XFER_STATUS_ERROR);
    g_free(longname);
    id++;
    /* Bad key files: no name, no size, a negative or non-numeric size. */
    start(fx, id, NULL, "5");
    expect_status(fx, id++, 0, VD_AGENT_FILE_XFER_STATUS_ERROR);
    start(fx, id, "x", NULL);
    expect_status(fx, id++, 0, VD_AGENT_FILE_XFER_STATUS_ERROR);
    start(fx, id, "x", "-1");
    expect_status(fx, id++, 0, VD_AGENT_FILE_XFER_STATUS_ERROR);
    start(fx, id, "x", "12abc");
    Status s = status_n(fx, id++, 0);
    assert_int_equal(s.result, VD_AGENT_FILE_XFER_STATUS_ERROR);
    assert_int_equal(s.error_code, G_IO_ERROR_INVALID_DATA);
    assert_int_equal(count_entries(fx->dir), 0);
    assert_int_equal(va_files_active(fx->f), 0);
    fix_free(fx, true);
}

static void test_symlinks(void **state)
{
    Fix *fx = fix_new();
    char *victim = path_in(fx->outside, "victim.txt");
    assert_true(g_file_set_contents(victim, "keep", 4, NULL));
    char *dangling = path_in(fx->outside, "created.txt");
    char *l1 = path_in(fx->dir, "link.txt"), *l2 = path_in(fx->dir, "dangling.txt"), *l3 = path_in(fx->dir, "sub");
    assert_int_equal(symlink(victim, l1), 0);
    assert_int_equal(symlink(dangling, l2), 0);
    assert_int_equal(symlink(fx->outside, l3), 0);
    send_file(fx, 1, "link.txt", "new1", 4);
    send_file(fx, 2, "dangling.txt", "new2", 4);
    send_file(fx, 3, "sub/victim.txt", "new3", 4);
    /* The targets are untouched, nothing was created through a link. */
    assert_true(file_has(fx->outside, "victim.txt", "keep", 4));
    assert_false(exists(fx->outside, "created.txt"));
    assert_int_equal(count_entries(fx->outside), 1);
    assert_true(file_has(fx->dir, "link (1).txt", "new1", 4));
    assert_true(file_has(fx->dir, "dangling (1).txt", "new2", 4));
    assert_true(file_has(fx->dir, "victim.txt", "new3", 4));
    struct stat st;
    assert_int_equal(lstat(l1, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    g_free(victim);
    g_free(dangling);
    g_free(l1);
    g_free(l2);
    g_free(l3);
    fix_free(fx, true);
}

static void test_cancel(void **state)
{
    Fix *fx = fix_new();
    size_t len = 1024 * 1024;
    uint8_t *buf = g_malloc(len);
    memset(buf, 0x5a, len);
    start_n(fx, 1, "big.bin", len);
    expect_status(fx, 1, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    data(fx, 1, buf, len / 2);
    assert_true(exists(fx->dir, "big.bin"));
    client_status(fx, 1, VD_AGENT_FILE_XFER_STATUS_CANCELLED);
    assert_int_equal(va_files_active(fx->f), 0);
    wait_gone(fx->dir, "big.bin");
    /* Data in flight after the cancel is ignored: no status, no file. */
    data(fx, 1, buf, 100);
    g_usleep(50000);
    while (g_main_context_iteration(NULL, FALSE))
        ;
    assert_int_equal(count_status(fx, 1), 1);
    assert_int_equal(count_entries(fx->dir), 0);

    /* Losing the daemon connection cancels too. */
    start_n(fx, 2, "conn.bin", len);
    expect_status(fx, 2, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    data(fx, 2, buf, 1000);
    va_files_set_conn(fx->f, NULL);
    assert_int_equal(va_files_active(fx->f), 0);
    wait_gone(fx->dir, "conn.bin");
    va_files_set_conn(fx->f, fx->agent);

    /* Session state without file transfers cancels running ones and
     * refuses new ones; locked gives SESSION_LOCKED. */
    start_n(fx, 3, "state.bin", len);
    expect_status(fx, 3, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    va_files_session_state(fx->f, VDP_IPC_SESSION_ACTIVE);
    wait_gone(fx->dir, "state.bin");
    start_n(fx, 4, "x", 1);
    expect_status(fx, 4, 0, VD_AGENT_FILE_XFER_STATUS_DISABLED);
    va_files_session_state(fx->f, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED |
                                      VDP_IPC_SESSION_FILE_XFER_ENABLED);
    start_n(fx, 5, "x", 1);
    expect_status(fx, 5, 0, VD_AGENT_FILE_XFER_STATUS_SESSION_LOCKED);
    va_files_session_state(fx->f, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_FILE_XFER_ENABLED);
    send_file(fx, 6, "after.txt", "ok", 2);

    /* Freeing the module (the agent exits) removes partial files. */
    start_n(fx, 7, "exit.bin", len);
    expect_status(fx, 7, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    data(fx, 7, buf, len / 4);
    char *dir = g_strdup(fx->dir);
    va_files_free(fx->f);
    assert_false(exists(dir, "exit.bin"));
    assert_true(exists(dir, "after.txt"));
    fx->f = va_files_new(NULL, dir, false, NULL);
    g_free(dir);
    g_free(buf);
    fix_free(fx, true);
}

static void test_bad_data(void **state)
{
    Fix *fx = fix_new();
    uint8_t buf[64] = {0};
    /* More than announced: ERROR, partial file removed. */
    start_n(fx, 1, "short.bin", 10);
    expect_status(fx, 1, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    data(fx, 1, buf, 20);
    Status s = status_n(fx, 1, 1);
    assert_int_equal(s.result, VD_AGENT_FILE_XFER_STATUS_ERROR);
    assert_int_equal(s.error_code, G_IO_ERROR_INVALID_DATA);
    wait_gone(fx->dir, "short.bin");
    /* Data before CAN_SEND_DATA (the worker is held, the file not yet
     * created): ERROR, nothing left behind. */
    va_files_test_hold_worker(fx->f, true);
    start_n(fx, 2, "early.bin", 10);
    data(fx, 2, buf, 5);
    expect_status(fx, 2, 0, VD_AGENT_FILE_XFER_STATUS_ERROR);
    va_files_test_hold_worker(fx->f, false);
    wait_gone(fx->dir, "early.bin");
    /* A second START with a running id is ignored (no answer would be
     * right: it would end the running one). */
    start_n(fx, 3, "dup.bin", 4);
    expect_status(fx, 3, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    start_n(fx, 3, "dup2.bin", 4);
    data(fx, 3, "abcd", 4);
    expect_status(fx, 3, 1, VD_AGENT_FILE_XFER_STATUS_SUCCESS);
    assert_int_equal(count_status(fx, 3), 2);
    assert_true(file_has(fx->dir, "dup.bin", "abcd", 4));
    assert_false(exists(fx->dir, "dup2.bin"));
    /* An unexpected CAN_SEND_DATA from the client changes nothing. */
    start_n(fx, 4, "c.bin", 2);
    expect_status(fx, 4, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    client_status(fx, 4, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    data(fx, 4, "hi", 2);
    expect_status(fx, 4, 1, VD_AGENT_FILE_XFER_STATUS_SUCCESS);
    fix_free(fx, true);
}

static void test_not_enough_space(void **state)
{
    Fix *fx = fix_new();
    struct statvfs st;
    assert_int_equal(statvfs(fx->dir, &st), 0);
    uint64_t avail = (uint64_t)st.f_bavail * st.f_frsize;
    uint64_t want = avail + 1024ull * 1024 * 1024;
    start_n(fx, 1, "huge.iso", want);
    Status s = status_n(fx, 1, 0);
    assert_int_equal(s.result, VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE);
    assert_true(s.has_detail);
    /* The free space reported explains the refusal. (Other tests may
     * write to this filesystem meanwhile: the exact figure is checked on
     * a private tmpfs below.) */
    assert_true(s.free_space < want);
    assert_int_equal(count_entries(fx->dir), 0);
    fix_free(fx, true);
}

/* A 1 MiB tmpfs: a disk that really is full. */
static void test_small_tmpfs(void **state)
{
    char *base = g_dir_make_tmp("test-files-tmpfs-XXXXXX", NULL);
    assert_non_null(base);
    if (mount("vdagent-test", base, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") < 0) {
        int e = errno;
        g_rmdir(base);
        g_free(base);
        print_message("cannot mount a tmpfs here (%s): full-disk test skipped\n", g_strerror(e));
        skip();
    }
    Fix *fx = fix_new_dir(base);
    struct statvfs st;
    assert_int_equal(statvfs(base, &st), 0);
    uint64_t total = (uint64_t)st.f_blocks * st.f_frsize;
    assert_true(total <= 1024 * 1024);
    size_t len = 600 * 1024;
    uint8_t *buf = g_malloc(len);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i ^ (i >> 8));
    /* The first reserves its space at START (fallocate): the second does
     * not fit although the first has not written a byte yet. */
    start_n(fx, 1, "first.bin", len);
    expect_status(fx, 1, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    start_n(fx, 2, "second.bin", len);
    Status s = status_n(fx, 2, 0);
    assert_int_equal(s.result, VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE);
    assert_true(s.has_detail);
    assert_true(s.free_space < len);
    assert_true(s.free_space <= total - len);
    assert_false(exists(base, "second.bin"));
    for (size_t off = 0; off < len; off += CHUNK)
        data(fx, 1, buf + off, MIN((size_t)CHUNK, len - off));
    expect_status(fx, 1, 1, VD_AGENT_FILE_XFER_STATUS_SUCCESS);
    assert_true(file_has(base, "first.bin", buf, len));
    /* Fill the rest with a file that fits the statvfs check, then one more
     * byte than what is left: refused, nothing partial remains. */
    assert_int_equal(statvfs(base, &st), 0);
    uint64_t left = (uint64_t)st.f_bavail * st.f_frsize;
    start_n(fx, 3, "rest.bin", left + 1);
    expect_status(fx, 3, 0, VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE);
    assert_int_equal(count_entries(base), 1);
    fix_free(fx, false);
    g_free(buf);
    assert_int_equal(umount(base), 0);
    g_rmdir(base);
    g_free(base);
}

static bool resumed_cond(void *data)
{
    Fix *fx = data;
    return !va_files_read_paused(fx->f) && va_files_pending(fx->f) == 0;
}

/* A disk that does not keep up: the data waiting for it is bounded, and
 * handle_msg never waits for the disk. */
static void test_slow_disk(void **state)
{
    Fix *fx = fix_new();
    size_t len = 24u * 1024 * 1024;
    struct statvfs st;
    assert_int_equal(statvfs(fx->dir, &st), 0);
    if ((uint64_t)st.f_bavail * st.f_frsize < 4ull * len) {
        fix_free(fx, true);
        skip();
    }
    uint8_t *chunk = g_malloc(CHUNK);
    GChecksum *want = g_checksum_new(G_CHECKSUM_SHA256);
    start_n(fx, 1, "slow.bin", len);
    expect_status(fx, 1, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    va_files_test_hold_worker(fx->f, true);
    size_t off = 0;
    unsigned n = 0;
    gint64 t0 = g_get_monotonic_time();
    while (!va_files_read_paused(fx->f)) {
        memset(chunk, (int)(n++ & 0xff), CHUNK);
        g_checksum_update(want, chunk, CHUNK);
        data(fx, 1, chunk, CHUNK);
        off += CHUNK;
        assert_true(off < len);
    }
    gint64 took = g_get_monotonic_time() - t0;
    /* Paused at the high watermark, not later. */
    assert_true(va_files_pending(fx->f) >= VA_FILES_PENDING_HIGH);
    assert_true(va_files_pending(fx->f) < VA_FILES_PENDING_HIGH + CHUNK);
    /* Queueing 8 MiB for a stalled disk took no disk time (generous). */
    assert_true(took < 5 * G_USEC_PER_SEC);
    va_files_test_hold_worker(fx->f, false);
    assert_true(wait_cond(resumed_cond, fx, WAIT_MS));
    while (off < len) {
        memset(chunk, (int)(n++ & 0xff), CHUNK);
        g_checksum_update(want, chunk, CHUNK);
        data(fx, 1, chunk, CHUNK);
        off += CHUNK;
    }
    expect_status(fx, 1, 1, VD_AGENT_FILE_XFER_STATUS_SUCCESS);
    char *p = path_in(fx->dir, "slow.bin"), *got = NULL;
    gsize glen = 0;
    assert_true(g_file_get_contents(p, &got, &glen, NULL));
    assert_int_equal(glen, len);
    char *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)got, glen);
    assert_string_equal(sum, g_checksum_get_string(want));
    g_free(sum);
    g_free(got);
    g_free(p);

    /* A daemon that ignores the pause: the transfer fails at the hard
     * bound instead of growing memory, and its file goes. */
    start_n(fx, 2, "flood.bin", 64u * 1024 * 1024);
    expect_status(fx, 2, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    va_files_test_hold_worker(fx->f, true);
    for (size_t i = 0; i < (VA_FILES_PENDING_MAX / CHUNK) + 4 && count_status(fx, 2) < 2; i++) {
        data(fx, 2, chunk, CHUNK);
        assert_true(va_files_pending(fx->f) <= VA_FILES_PENDING_MAX);
        while (g_main_context_iteration(NULL, FALSE))
            ;
    }
    Status s = status_n(fx, 2, 1);
    assert_int_equal(s.result, VD_AGENT_FILE_XFER_STATUS_ERROR);
    va_files_test_hold_worker(fx->f, false);
    wait_gone(fx->dir, "flood.bin");
    assert_true(wait_cond(resumed_cond, fx, WAIT_MS));
    g_checksum_free(want);
    g_free(chunk);
    fix_free(fx, true);
}

static bool drained_cond(void *data)
{
    return va_files_queued_jobs(((Fix *)data)->f) == 0;
}

/* Every job the worker got has come back and its status (if any) is in:
 * nothing more can arrive later. */
static void wait_drained(Fix *fx)
{
    assert_true(wait_cond(drained_cond, fx, WAIT_MS));
    /* Statuses sent from the last results cross the socket pair. */
    gint64 end = g_get_monotonic_time() + 100 * 1000;
    while (g_get_monotonic_time() < end)
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(1000);
}

/* The agent ends transfers on its own (the session locks, transfers are
 * disabled, the agent stops) while the daemon connection is up: the
 * client gets exactly one final status for each, so it does not wait
 * forever and the daemon forgets the id. A file whose data had all
 * arrived is kept and reported SUCCESS, not deleted. */
static void test_agent_cancel_status(void **state)
{
    Fix *fx = fix_new();
    enum { LEN = 4096 };
    uint8_t buf[LEN];
    memset(buf, 0x33, sizeof(buf));
    /* 1: receiving, half its data in. */
    start_n(fx, 1, "receiving.bin", LEN);
    expect_status(fx, 1, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    data(fx, 1, buf, LEN / 2);
    /* 2: all its data in, SUCCESS not sent yet (the disk is behind). */
    start_n(fx, 2, "complete.bin", LEN);
    expect_status(fx, 2, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    va_files_test_hold_worker(fx->f, true);
    data(fx, 2, buf, LEN);
    /* 3: started, its file not created yet. */
    start_n(fx, 3, "starting.bin", LEN);
    /* The session locks: the daemon sends LOCKED without
     * FILE_XFER_ENABLED. */
    va_files_session_state(fx->f, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED);
    expect_status(fx, 1, 1, VD_AGENT_FILE_XFER_STATUS_SESSION_LOCKED);
    expect_status(fx, 3, 0, VD_AGENT_FILE_XFER_STATUS_SESSION_LOCKED);
    /* Data the client had in flight is dropped quietly. */
    data(fx, 1, buf, 10);
    va_files_test_hold_worker(fx->f, false);
    expect_status(fx, 2, 1, VD_AGENT_FILE_XFER_STATUS_SUCCESS);
    wait_idle(fx);
    wait_drained(fx);
    assert_int_equal(count_status(fx, 1), 2);
    assert_int_equal(count_status(fx, 2), 2);
    assert_int_equal(count_status(fx, 3), 1);
    assert_true(file_has(fx->dir, "complete.bin", buf, LEN));
    assert_false(exists(fx->dir, "receiving.bin"));
    assert_false(exists(fx->dir, "starting.bin"));

    /* Transfers disabled without a lock (a greeter): DISABLED. */
    va_files_session_state(fx->f, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_FILE_XFER_ENABLED);
    start_n(fx, 4, "greeter.bin", LEN);
    expect_status(fx, 4, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    data(fx, 4, buf, 100);
    va_files_session_state(fx->f, VDP_IPC_SESSION_ACTIVE);
    expect_status(fx, 4, 1, VD_AGENT_FILE_XFER_STATUS_DISABLED);
    wait_gone(fx->dir, "greeter.bin");
    wait_drained(fx);
    assert_int_equal(count_status(fx, 4), 2);

    /* The agent stops with the connection up: CANCELLED. */
    va_files_session_state(fx->f, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_FILE_XFER_ENABLED);
    start_n(fx, 5, "stopping.bin", LEN);
    expect_status(fx, 5, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    data(fx, 5, buf, 100);
    va_files_free(fx->f);
    fx->f = NULL;
    assert_false(exists(fx->dir, "stopping.bin"));
    expect_status(fx, 5, 1, VD_AGENT_FILE_XFER_STATUS_CANCELLED);

    /* The connection is lost: nothing can be sent (the daemon tells the
     * client), nothing is sent on the next connection either. */
    fx->f = va_files_new(NULL, fx->dir, false, NULL);
    va_files_set_conn(fx->f, fx->agent);
    start_n(fx, 6, "lost.bin", LEN);
    expect_status(fx, 6, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    va_files_set_conn(fx->f, NULL);
    va_files_set_conn(fx->f, fx->agent);
    wait_gone(fx->dir, "lost.bin");
    wait_drained(fx);
    assert_int_equal(count_status(fx, 5), 2);
    assert_int_equal(count_status(fx, 6), 1);
    assert_int_equal(fx->bad, 0);
    fix_free(fx, true);
}

/* A START while the session is locked: SESSION_LOCKED (the daemon clears
 * FILE_XFER_ENABLED whenever it is locked), DISABLED when only disabled. */
static void test_locked_start(void **state)
{
    Fix *fx = fix_new();
    va_files_session_state(fx->f, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED);
    start_n(fx, 1, "x", 1);
    expect_status(fx, 1, 0, VD_AGENT_FILE_XFER_STATUS_SESSION_LOCKED);
    va_files_session_state(fx->f, VDP_IPC_SESSION_ACTIVE | VDP_IPC_SESSION_LOCKED |
                                      VDP_IPC_SESSION_FILE_XFER_ENABLED);
    start_n(fx, 2, "x", 1);
    expect_status(fx, 2, 0, VD_AGENT_FILE_XFER_STATUS_SESSION_LOCKED);
    va_files_session_state(fx->f, VDP_IPC_SESSION_ACTIVE);
    start_n(fx, 3, "x", 1);
    expect_status(fx, 3, 0, VD_AGENT_FILE_XFER_STATUS_DISABLED);
    assert_int_equal(count_entries(fx->dir), 0);
    fix_free(fx, true);
}

/* Many tiny DATA messages for a disk that does not keep up: what they
 * cost is bounded, not only their bytes. Consecutive pieces of one
 * transfer are merged into one buffer; pieces that cannot be merged are
 * charged a fixed cost each, so reading pauses (and a daemon ignoring
 * the pause fails the transfer) long before memory grows. */
static void test_tiny_data(void **state)
{
    Fix *fx = fix_new();
    enum { ONE = 1000000 };
    uint8_t byte = 0x42;
    /* One transfer, a million 1-byte messages, the disk held. */
    start_n(fx, 1, "tiny.bin", ONE);
    expect_status(fx, 1, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    va_files_test_hold_worker(fx->f, true);
    for (unsigned i = 0; i < ONE - 1; i++) {
        byte = (uint8_t)i;
        data(fx, 1, &byte, 1);
    }
    /* Merged: one job per VA_FILES_MERGE_MAX bytes, not one per message. */
    unsigned jobs = va_files_queued_jobs(fx->f);
    print_message("%u bytes in 1-byte messages: %u jobs, %zu bytes charged\n", ONE - 1, jobs,
                  va_files_pending(fx->f));
    assert_true(jobs <= ONE / VA_FILES_MERGE_MAX + 2);
    assert_true(va_files_pending(fx->f) >= ONE - 1);
    assert_true(va_files_pending(fx->f) <= 2u * ONE);
    byte = (uint8_t)(ONE - 1);
    data(fx, 1, &byte, 1);
    va_files_test_hold_worker(fx->f, false);
    expect_status(fx, 1, 1, VD_AGENT_FILE_XFER_STATUS_SUCCESS);
    uint8_t *want = g_malloc(ONE);
    for (unsigned i = 0; i < ONE; i++)
        want[i] = (uint8_t)i;
    assert_true(file_has(fx->dir, "tiny.bin", want, ONE));
    g_free(want);
    wait_drained(fx);
    assert_int_equal(va_files_pending(fx->f), 0);

    /* Two transfers taking turns, 1-byte pieces: each is merged into its
     * own transfer's newest write. */
    enum { HALF = 150000 };
    start_n(fx, 2, "even.bin", HALF);
    start_n(fx, 3, "odd.bin", HALF);
    expect_status(fx, 2, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    expect_status(fx, 3, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    va_files_test_hold_worker(fx->f, true);
    uint8_t even = 0xee, odd = 0x0d;
    for (unsigned i = 0; i < 2 * HALF - 2; i++)
        data(fx, 2 + (i & 1), i & 1 ? &odd : &even, 1);
    jobs = va_files_queued_jobs(fx->f);
    print_message("2 x %u bytes in interleaved 1-byte messages: %u jobs\n", HALF, jobs);
    assert_true(jobs <= 2 * (HALF / VA_FILES_MERGE_MAX + 1));
    data(fx, 2, &even, 1);
    data(fx, 3, &odd, 1);
    va_files_test_hold_worker(fx->f, false);
    expect_status(fx, 2, 1, VD_AGENT_FILE_XFER_STATUS_SUCCESS);
    expect_status(fx, 3, 1, VD_AGENT_FILE_XFER_STATUS_SUCCESS);
    uint8_t *fill = g_malloc(HALF);
    memset(fill, even, HALF);
    assert_true(file_has(fx->dir, "even.bin", fill, HALF));
    memset(fill, odd, HALF);
    assert_true(file_has(fx->dir, "odd.bin", fill, HALF));
    g_free(fill);
    wait_drained(fx);

    /* Jobs that carry no data (a START and a cancel, again and again)
     * are charged VA_FILES_JOB_COST each: reading pauses... */
    va_files_test_hold_worker(fx->f, true);
    uint32_t id = 1000;
    unsigned cycles = 0;
    while (!va_files_read_paused(fx->f)) {
        start_n(fx, id, "churn.bin", 1);
        assert_int_equal(va_files_active(fx->f), 1);
        client_status(fx, id++, VD_AGENT_FILE_XFER_STATUS_CANCELLED);
        cycles++;
        assert_true(cycles <= VA_FILES_PENDING_HIGH / (2 * VA_FILES_JOB_COST) + 2);
    }
    print_message("paused after %u START + cancel pairs (%u jobs)\n", cycles, va_files_queued_jobs(fx->f));
    /* ... and a daemon ignoring the pause gets its STARTs refused at the
     * hard bound: the queue stops growing. */
    for (;;) {
        start_n(fx, id, "churn.bin", 1);
        assert_true(va_files_pending(fx->f) <= VA_FILES_PENDING_MAX);
        assert_true(va_files_queued_jobs(fx->f) <= VA_FILES_PENDING_MAX / VA_FILES_JOB_COST);
        if (va_files_active(fx->f) == 0)
            break;
        client_status(fx, id++, VD_AGENT_FILE_XFER_STATUS_CANCELLED);
    }
    Status st = status_n(fx, id, 0);
    assert_int_equal(st.result, VD_AGENT_FILE_XFER_STATUS_ERROR);
    va_files_test_hold_worker(fx->f, false);
    assert_true(wait_cond(resumed_cond, fx, WAIT_MS));
    assert_false(exists(fx->dir, "churn.bin"));
    fix_free(fx, true);
}

/* What the client wrote never reaches the log raw: a key file the parser
 * refuses (GKeyFile quotes the offending line) with terminal escapes. */
static void test_log_escaped(void **state)
{
    Fix *fx = fix_new();
    g_mutex_lock(&logged_lock);
    g_ptr_array_set_size(logged, 0);
    g_mutex_unlock(&logged_lock);
    start_raw(fx, 1, "[vdagent-file-xfer]\n\x1b]0;owned\x07\x1b[2J\x9b" "31m no equals sign\nsize=1\n");
    Status s = status_n(fx, 1, 0);
    assert_int_equal(s.result, VD_AGENT_FILE_XFER_STATUS_ERROR);
    start_raw(fx, 2, "[vdagent-file-xfer\x1b[31m\nname=x\nsize=1\n");
    expect_status(fx, 2, 0, VD_AGENT_FILE_XFER_STATUS_ERROR);
    start_raw(fx, 3, "[vdagent-file-xfer]\nname=x\x1b[31m\nsize=1\n");
    expect_status(fx, 3, 0, VD_AGENT_FILE_XFER_STATUS_ERROR);
    start_raw(fx, 4, "[vdagent-file-xfer]\n\xe2\x80\xae" "evil\xc2\x85" "line\n");
    expect_status(fx, 4, 0, VD_AGENT_FILE_XFER_STATUS_ERROR);
    GPtrArray *lines = g_ptr_array_new_with_free_func(g_free);
    g_mutex_lock(&logged_lock);
    for (guint i = 0; i < logged->len; i++)
        g_ptr_array_add(lines, g_strdup(g_ptr_array_index(logged, i)));
    g_mutex_unlock(&logged_lock);
    assert_true(lines->len > 0);
    /* Valid UTF-8 without C0 or C1 controls, DEL or bidi controls. */
    for (guint i = 0; i < lines->len; i++) {
        const char *line = g_ptr_array_index(lines, i);
        if (!g_utf8_validate(line, -1, NULL))
            fail_msg("invalid UTF-8 logged: \"%s\"", g_strescape(line, NULL));
        for (const char *p = line; *p; p = g_utf8_next_char(p)) {
            gunichar c = g_utf8_get_char(p);
            if (g_unichar_iscntrl(c) || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069))
                fail_msg("U+%04X logged raw: \"%s\"", c, g_strescape(line, NULL));
        }
    }
    g_ptr_array_free(lines, TRUE);
    fix_free(fx, true);
}

static void test_disabled_without_dir(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    Fix fx = {.statuses = g_array_new(FALSE, TRUE, sizeof(Status))};
    fx.agent = vdp_ipc_conn_new(NULL, sv[0], NULL, &agent_cb, &fx);
    fx.daemon = vdp_ipc_conn_new(NULL, sv[1], NULL, &daemon_cb, &fx);
    GError *error = NULL;
    assert_null(va_files_new(NULL, "/nonexistent/vdagent-test", false, &error));
    assert_non_null(error);
    g_error_free(error);
    fx.f = va_files_new(NULL, NULL, false, NULL);
    assert_non_null(fx.f);
    va_files_set_conn(fx.f, fx.agent);
    start_n(&fx, 9, "x.txt", 3);
    expect_status(&fx, 9, 0, VD_AGENT_FILE_XFER_STATUS_DISABLED);
    va_files_free(fx.f);
    vdp_ipc_conn_free(fx.agent);
    vdp_ipc_conn_free(fx.daemon);
    g_array_free(fx.statuses, TRUE);
}

static void test_many_transfers(void **state)
{
    Fix *fx = fix_new();
    /* Interleaved transfers, each its own file and content. */
    enum { N = 20 };
    for (uint32_t i = 0; i < N; i++)
        start_n(fx, 100 + i, "multi.dat", 300);
    for (uint32_t i = 0; i < N; i++)
        expect_status(fx, 100 + i, 0, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    uint8_t buf[300];
    for (unsigned part = 0; part < 3; part++)
        for (uint32_t i = 0; i < N; i++) {
            memset(buf, (int)i, sizeof(buf));
            data(fx, 100 + i, buf, 100);
        }
    for (uint32_t i = 0; i < N; i++)
        expect_status(fx, 100 + i, 1, VD_AGENT_FILE_XFER_STATUS_SUCCESS);
    assert_int_equal(count_entries(fx->dir), N);
    /* Every file holds one transfer's bytes only. */
    GDir *d = g_dir_open(fx->dir, 0, NULL);
    const char *name;
    unsigned seen = 0;
    while ((name = g_dir_read_name(d))) {
        char *p = path_in(fx->dir, name), *got = NULL;
        gsize n = 0;
        assert_true(g_file_get_contents(p, &got, &n, NULL));
        assert_int_equal(n, 300);
        for (gsize k = 1; k < n; k++)
            assert_int_equal(got[k], got[0]);
        seen |= 1u << (unsigned)got[0];
        g_free(got);
        g_free(p);
    }
    g_dir_close(d);
    assert_int_equal(seen, (1u << N) - 1);
    wait_idle(fx);
    fix_free(fx, true);
}

typedef struct LinesWait {
    const char *path;
    unsigned n;
} LinesWait;

static unsigned count_lines(const char *path)
{
    char *text = NULL;
    unsigned n = 0;
    if (g_file_get_contents(path, &text, NULL, NULL))
        for (char *p = text; *p; p++)
            n += *p == '\n';
    g_free(text);
    return n;
}

static bool lines_cond(void *data)
{
    LinesWait *w = data;
    return count_lines(w->path) >= w->n;
}

/* Seconds on CLOCK_MONOTONIC, one per line (xdg-open stand-in calls). */
static GArray *read_times(const char *path)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(double));
    char *text = NULL;
    if (g_file_get_contents(path, &text, NULL, NULL)) {
        char **lines = g_strsplit(text, "\n", -1);
        for (char **l = lines; *l; l++)
            if (**l) {
                double v = g_ascii_strtod(*l, NULL);
                g_array_append_val(a, v);
            }
        g_strfreev(lines);
    }
    g_free(text);
    return a;
}

/* open_dir: xdg-open (a stand-in first in PATH) runs once per batch, after
 * its last file, with the directory as its only argument, and at most once
 * per VA_FILES_OPEN_DIR_INTERVAL_MS: batches finishing faster are merged
 * into one deferred call. */
static void test_open_dir(void **state)
{
    char *bin = g_dir_make_tmp("test-files-bin-XXXXXX", NULL);
    char *script = g_build_filename(bin, "xdg-open", NULL);
    char *log = g_build_filename(bin, "calls", NULL);
    char *times = g_build_filename(bin, "times", NULL);
    /* /proc/uptime: CLOCK_BOOTTIME seconds, good enough to 10 ms. */
    char *text = g_strdup_printf("#!/bin/sh\nprintf '%%s|%%s\\n' \"$#\" \"$1\" >>'%s'\n"
                                 "cut -d' ' -f1 /proc/uptime >>'%s'\n",
                                 log, times);
    assert_true(g_file_set_contents(script, text, -1, NULL));
    assert_int_equal(chmod(script, 0755), 0);
    char *old_path = g_strdup(g_getenv("PATH"));
    char *new_path = g_strdup_printf("%s:%s", bin, old_path ? old_path : "/usr/bin:/bin");
    g_setenv("PATH", new_path, TRUE);

    fix_open_dir = true;
    Fix *fx = fix_new();
    fix_open_dir = false;
    batch_total = 2;
    batch_nr = 1;
    send_file(fx, 1, "first.txt", "1", 1);
    batch_nr = 2;
    send_file(fx, 2, "second.txt", "2", 1);
    batch_total = 0;
    LinesWait w = {log, 1};
    assert_true(wait_cond(lines_cond, &w, WAIT_MS));
    /* A single file (no batch keys) is a batch of its own. */
    send_file(fx, 3, "third.txt", "3", 1);
    w.n = 2;
    assert_true(wait_cond(lines_cond, &w, WAIT_MS));
    char *calls = NULL;
    assert_true(g_file_get_contents(log, &calls, NULL, NULL));
    char *want = g_strdup_printf("1|%s\n1|%s\n", fx->dir, fx->dir);
    assert_string_equal(calls, want);
    g_free(want);
    g_free(calls);

    /* A burst of 30 one-file batches: one or two more calls (one at once
     * if the interval since the last has passed, one deferred), not 30
     * (one more per interval the burst itself lasts, on a slow machine). */
    gint64 burst_start = g_get_monotonic_time();
    for (uint32_t i = 0; i < 30; i++)
        send_file(fx, 10 + i, "burst.txt", "b", 1);
    unsigned extra = (unsigned)((g_get_monotonic_time() - burst_start) / (VA_FILES_OPEN_DIR_INTERVAL_MS * 1000));
    w.n = 3;
    assert_true(wait_cond(lines_cond, &w, WAIT_MS));
    /* Whatever was deferred has run after one more interval. */
    gint64 end = g_get_monotonic_time() + (VA_FILES_OPEN_DIR_INTERVAL_MS + 1500) * 1000;
    while (g_get_monotonic_time() < end)
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(1000);
    unsigned n = count_lines(log);
    print_message("xdg-open ran %u times for 32 batches\n", n);
    assert_true(n >= 3 && n <= 4 + extra);
    /* Calls are an interval apart (the stand-in's start-up time varies:
     * allow half an interval less). */
    GArray *t = read_times(times);
    assert_int_equal(t->len, n);
    for (guint i = 1; i < t->len; i++) {
        double gap = g_array_index(t, double, i) - g_array_index(t, double, i - 1);
        if (gap < VA_FILES_OPEN_DIR_INTERVAL_MS / 2000.0)
            fail_msg("xdg-open calls %u and %u only %.2f s apart", i - 1, i, gap);
    }
    g_array_free(t, TRUE);
    fix_free(fx, true);

    g_setenv("PATH", old_path ? old_path : "/usr/bin:/bin", TRUE);
    rm_rf(bin);
    g_free(old_path);
    g_free(new_path);
    g_free(text);
    g_free(log);
    g_free(times);
    g_free(script);
    g_free(bin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_collisions),
        cmocka_unit_test(test_traversal_confined),
        cmocka_unit_test(test_names_refused),
        cmocka_unit_test(test_symlinks),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_bad_data),
        cmocka_unit_test(test_not_enough_space),
        cmocka_unit_test(test_small_tmpfs),
        cmocka_unit_test(test_slow_disk),
        cmocka_unit_test(test_disabled_without_dir),
        cmocka_unit_test(test_many_transfers),
        cmocka_unit_test(test_open_dir),
        cmocka_unit_test(test_agent_cancel_status),
        cmocka_unit_test(test_locked_start),
        cmocka_unit_test(test_tiny_data),
        cmocka_unit_test(test_log_escaped),
    };
    logged = g_ptr_array_new_with_free_func(g_free);
    g_log_set_writer_func(capture_log, NULL, NULL);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    g_ptr_array_free(logged, TRUE);
    return rc;
}
