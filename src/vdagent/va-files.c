/* va-files.c - receiving files from the client (see va-files.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/openat2.h>
#endif

#include "vdp-ratelimit.h"
#include "va-files.h"

#define XFER_GROUP "vdagent-file-xfer"
/* Longest accepted name in bytes: NAME_MAX less room for " (999)". */
#define NAME_LEN_MAX (NAME_MAX - 8)

typedef enum JobKind { JOB_OPEN, JOB_WRITE, JOB_FINISH, JOB_DISCARD } JobKind;

/* Shared by the context and the worker, outlives the VaFiles when results
 * are still queued on the context after va_files_free. */
typedef struct Core {
    gint refs;
    VaFiles *files;          /* NULL after va_files_free (context thread only) */
    GMutex lock;
    GCond cond;
    bool hold;               /* tests: the worker waits */
} Core;

/* One transfer. Fields marked [w] belong to the worker until the result
 * of the job that set them reaches the context. */
typedef struct Task {
    gint refs;
    uint32_t id;
    char *name;              /* sanitised base name from the client */
    uint64_t size;
    uint64_t queued;         /* bytes handed to the worker */
    bool opened;             /* CAN_SEND_DATA sent */
    bool finishing;          /* all data queued, FINISH queued */
    bool batch_last;         /* the last file of its batch (file-xfer-nr == -total) */
    gint cancelled;          /* atomic: the worker skips writes */
    bool failed;             /* [w] a write failed: later writes and FINISH skipped */
    int dirfd;               /* borrowed from VaFiles (lives until the pool is done) */
    int fd;                  /* [w] */
    char *path;              /* [w] the name created in the directory */
    struct Job *tail;        /* newest queued write the worker has not
                              * taken yet (under Core.lock): merged into */
} Task;

typedef struct Job {
    JobKind kind;
    Core *core;
    Task *task;
    uint8_t *data;
    size_t len;
    size_t cap;              /* allocated size of data */
    size_t cost;             /* charged in VaFiles.pending */
    uint64_t offset;
    /* results */
    uint32_t status;         /* VD_AGENT_FILE_XFER_STATUS_*; CAN_SEND_DATA = ok */
    uint64_t free_space;
    int err;                 /* errno of a failure */
} Job;

struct VaFiles {
    GMainContext *ctx;
    Core *core;
    char *save_dir;
    int dirfd;
    bool open_dir;
    VdpIpcConn *conn;
    GHashTable *tasks;       /* id -> Task* (reference) */
    GThreadPool *pool;
    size_t pending;          /* cost of queued jobs: buffers + VA_FILES_JOB_COST each */
    unsigned jobs;           /* submitted, result not back yet */
    bool paused;
    bool have_state;
    uint32_t session_flags;
    VdpRateLimit rl;
    gint64 last_open;        /* monotonic time of the last xdg-open, 0: never */
    GSource *open_timer;     /* a deferred xdg-open */
};

static void task_unref(Task *t)
{
    if (!t || !g_atomic_int_dec_and_test(&t->refs))
        return;
    if (t->fd >= 0)
        close(t->fd);
    g_free(t->name);
    g_free(t->path);
    g_free(t);
}

static Task *task_ref(Task *t)
{
    g_atomic_int_inc(&t->refs);
    return t;
}

static void core_unref(Core *c)
{
    if (!g_atomic_int_dec_and_test(&c->refs))
        return;
    g_mutex_clear(&c->lock);
    g_cond_clear(&c->cond);
    g_free(c);
}

/* ---- names ---- */

/* Characters that must not appear in a name we create nor reach the log
 * raw: C0 and C1 controls and DEL (terminal escapes: U+009B is a CSI),
 * line and paragraph separators, and the bidi embeddings, overrides and
 * isolates (U+202A..202E, U+2066..2069), which make "gpj.exe" look like
 * "exe.jpg". Other format characters (U+200D in emoji sequences) are
 * ordinary parts of names. */
static bool unsafe_char(gunichar c)
{
    if (g_unichar_iscntrl(c))
        return true;
    if ((c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069))
        return true;
    GUnicodeType t = g_unichar_type(c);
    return t == G_UNICODE_LINE_SEPARATOR || t == G_UNICODE_PARAGRAPH_SEPARATOR;
}

/* text for the log: invalid UTF-8 replaced, unsafe characters as \u{X}. */
static char *log_safe(const char *text)
{
    char *valid = g_utf8_make_valid(text, -1);
    GString *out = g_string_new(NULL);
    for (const char *p = valid; *p; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        if (unsafe_char(c))
            g_string_append_printf(out, "\\u{%X}", (unsigned)c);
        else
            g_string_append_unichar(out, c);
    }
    g_free(valid);
    return g_string_free(out, FALSE);
}

/* The part of a client's name we use, or NULL with a reason. */
static char *sanitize_name(const char *raw, const char **why)
{
    if (!g_utf8_validate(raw, -1, NULL)) {
        *why = "not UTF-8";
        return NULL;
    }
    for (const char *p = raw; *p; p = g_utf8_next_char(p)) {
        if (unsafe_char(g_utf8_get_char(p))) {
            *why = "control characters";
            return NULL;
        }
    }
    const char *base = strrchr(raw, '/');
    base = base ? base + 1 : raw;
    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        *why = "no file name";
        return NULL;
    }
    if (strlen(base) > NAME_LEN_MAX) {
        *why = "too long";
        return NULL;
    }
    return g_strdup(base);
}

/* "name (n).ext"; the extension starts at the last '.' that is not the
 * first character (".bashrc" has none). */
static char *candidate(const char *name, unsigned n)
{
    if (n == 0)
        return g_strdup(name);
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name)
        return g_strdup_printf("%s (%u)", name, n);
    return g_strdup_printf("%.*s (%u)%s", (int)(dot - name), name, n, dot);
}

/* Create name in dirfd without following any symlink; -1 with errno. */
static int create_beneath(int dirfd, const char *name)
{
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
#if defined(SYS_openat2) && defined(RESOLVE_BENEATH)
    struct open_how how = {
        .flags = (uint64_t)flags,
        .mode = 0644,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
    if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
        return (int)fd;
    /* No openat2 (old kernel, or a seccomp filter): name is one path
     * component, so O_EXCL | O_NOFOLLOW alone keeps it beneath dirfd. */
#endif
    return openat(dirfd, name, flags, 0644);
}

static uint64_t free_space(int fd, bool *known)
{
    struct statvfs st;
    if (fstatvfs(fd, &st) < 0) {
        *known = false;
        return 0;
    }
    *known = true;
    return (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
}

/* ---- worker thread ---- */

static void job_fail(Job *j, int err)
{
    j->status = VD_AGENT_FILE_XFER_STATUS_ERROR;
    j->err = err ? err : EIO;
}

static void remove_file(Task *t)
{
    if (t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
    if (t->path) {
        if (unlinkat(t->dirfd, t->path, 0) < 0 && errno != ENOENT)
            g_warning("file transfer %u: could not remove the partial file %s: %s", t->id, t->path,
                      g_strerror(errno));
        g_clear_pointer(&t->path, g_free);
    }
}

static void do_open(Job *j)
{
    Task *t = j->task;
    if (g_atomic_int_get(&t->cancelled))
        return;   /* cancelled while queued: nothing to create */
    bool known;
    uint64_t avail = free_space(t->dirfd, &known);
    if (known && t->size > avail) {
        j->status = VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE;
        j->free_space = avail;
        return;
    }
    for (unsigned n = 0; n <= VA_FILES_MAX_COPIES; n++) {
        char *cand = candidate(t->name, n);
        int fd = create_beneath(t->dirfd, cand);
        if (fd >= 0) {
            t->fd = fd;
            t->path = cand;
            break;
        }
        int e = errno;
        g_free(cand);
        if (e == EEXIST || e == ELOOP)
            continue;
        job_fail(j, e);
        return;
    }
    if (t->fd < 0) {
        job_fail(j, EEXIST);
        return;
    }
    if (t->size > 0 && fallocate(t->fd, 0, 0, (off_t)t->size) < 0) {
        int e = errno;
        if (e == ENOSPC || e == EDQUOT || e == EFBIG) {
            remove_file(t);
            j->status = VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE;
            j->free_space = free_space(t->dirfd, &known);
            return;
        }
        if (e != EOPNOTSUPP && e != ENOSYS) {
            remove_file(t);
            job_fail(j, e);
            return;
        }
        /* The filesystem cannot reserve: the check above has to do. */
    }
    j->status = VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA;
}

static void do_write(Job *j)
{
    Task *t = j->task;
    if (g_atomic_int_get(&t->cancelled) || t->failed || t->fd < 0)
        return;
    size_t done = 0;
    while (done < j->len) {
        ssize_t n = pwrite(t->fd, j->data + done, j->len - done, (off_t)(j->offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            job_fail(j, n < 0 ? errno : ENOSPC);
            t->failed = true;
            return;
        }
        done += (size_t)n;
    }
}

static void do_finish(Job *j)
{
    Task *t = j->task;
    if (t->fd < 0 || t->failed)
        return;
    int fd = t->fd;
    t->fd = -1;
    if (close(fd) < 0 && errno != EINTR) {
        job_fail(j, errno);
        remove_file(t);
        return;
    }
    j->status = VD_AGENT_FILE_XFER_STATUS_SUCCESS;
}

static gboolean job_done(gpointer data);
static void job_free(gpointer data);

static void worker(gpointer data, gpointer user)
{
    Job *j = data;
    Core *c = j->core;
    g_mutex_lock(&c->lock);
    while (c->hold)
        g_cond_wait(&c->cond, &c->lock);
    /* Taken: the context no longer appends to it. */
    if (j->task->tail == j)
        j->task->tail = NULL;
    g_mutex_unlock(&c->lock);

    switch (j->kind) {
    case JOB_OPEN:
        do_open(j);
        break;
    case JOB_WRITE:
        do_write(j);
        break;
    case JOB_FINISH:
        do_finish(j);
        break;
    case JOB_DISCARD:
        remove_file(j->task);
        break;
    }
    g_clear_pointer(&j->data, g_free);
    /* Back to the context. */
    GSource *s = g_idle_source_new();
    g_source_set_priority(s, G_PRIORITY_DEFAULT);
    g_source_set_callback(s, job_done, j, job_free);
    g_source_attach(s, (GMainContext *)user);
    g_source_unref(s);
}

/* ---- the context side ---- */

static void send_status(VaFiles *f, uint32_t id, uint32_t result, uint64_t space, int err)
{
    if (!f->conn)
        return;
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_FILE_XFER_STATUS;
    m->u.xfer_status.id = id;
    m->u.xfer_status.result = result;
    if (result == VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE) {
        m->u.xfer_status.has_detail = true;
        m->u.xfer_status.disk_free_space = space;
    } else if (result == VD_AGENT_FILE_XFER_STATUS_ERROR && err) {
        m->u.xfer_status.has_detail = true;
        m->u.xfer_status.error_type = VD_AGENT_FILE_XFER_STATUS_ERROR_GLIB_IO;
        m->u.xfer_status.error_code = (uint32_t)err;
    }
    VdpError e = {0};
    if (vdp_ipc_conn_send_vdagent(f->conn, 0, m, &e) != VDP_OK && vdp_rate_ok(&f->rl, "file transfer"))
        g_message("file transfer %u: could not send the status: %s", id, e.text);
    g_free(m);
}

static void update_pause(VaFiles *f)
{
    if (!f->paused && f->pending >= VA_FILES_PENDING_HIGH) {
        f->paused = true;
        g_debug("file transfers: %zu bytes wait for the disk, pausing the daemon connection", f->pending);
        vdp_ipc_conn_pause_read(f->conn, true);
    } else if (f->paused && f->pending <= VA_FILES_PENDING_LOW) {
        f->paused = false;
        g_debug("file transfers: the disk caught up, resuming");
        vdp_ipc_conn_pause_read(f->conn, false);
    }
}

/* Queue a job; data (len bytes, g_malloc'ed) is taken over. */
static void submit(VaFiles *f, Task *t, JobKind kind, uint8_t *data, size_t len, uint64_t offset)
{
    Job *j = g_new0(Job, 1);
    j->kind = kind;
    j->core = f->core;
    g_atomic_int_inc(&f->core->refs);
    j->task = task_ref(t);
    j->data = data;
    j->len = len;
    j->cap = len;
    j->offset = offset;
    j->cost = len + VA_FILES_JOB_COST;
    f->pending += j->cost;
    f->jobs++;
    update_pause(f);
    g_mutex_lock(&f->core->lock);
    t->tail = kind == JOB_WRITE ? j : NULL;
    g_mutex_unlock(&f->core->lock);
    g_thread_pool_push(f->pool, j, NULL);
}

/* Append len bytes at offset to t's newest write if the worker has not
 * taken it yet, they follow on and the result stays within
 * VA_FILES_MERGE_MAX. Returns false when a new job is needed. */
static bool merge_write(VaFiles *f, Task *t, const uint8_t *data, size_t len, uint64_t offset)
{
    bool merged = false;
    g_mutex_lock(&f->core->lock);
    Job *j = t->tail;
    if (j && j->offset + j->len == offset && len <= VA_FILES_MERGE_MAX - j->len) {
        if (j->len + len > j->cap) {
            /* Grow by doubling: a run of tiny pieces costs O(n) copying. */
            size_t cap = MIN(MAX(j->len + len, j->cap * 2), (size_t)VA_FILES_MERGE_MAX);
            j->data = g_realloc(j->data, cap);
            f->pending += cap - j->cap;
            j->cost += cap - j->cap;
            j->cap = cap;
        }
        memcpy(j->data + j->len, data, len);
        j->len += len;
        merged = true;
    }
    g_mutex_unlock(&f->core->lock);
    if (merged)
        update_pause(f);
    return merged;
}

/* Forget t and remove its file (after whatever the worker has queued). */
static void task_drop(VaFiles *f, Task *t)
{
    g_atomic_int_set(&t->cancelled, 1);
    submit(f, t, JOB_DISCARD, NULL, 0, 0);
    g_hash_table_remove(f->tasks, GUINT_TO_POINTER(t->id));
}

static void run_xdg_open(VaFiles *f)
{
    f->last_open = g_get_monotonic_time();
    char *argv[] = {(char *)"xdg-open", f->save_dir, NULL};
    GError *error = NULL;
    if (!g_spawn_async(NULL, argv, NULL,
                       G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                       NULL, NULL, NULL, &error)) {
        g_message("could not run xdg-open: %s", error->message);
        g_error_free(error);
    }
}

static gboolean open_timer_cb(gpointer data)
{
    VaFiles *f = data;
    g_clear_pointer(&f->open_timer, g_source_unref);
    run_xdg_open(f);
    return G_SOURCE_REMOVE;
}

/* After the last file of a batch, with no other transfer running; at most
 * once per VA_FILES_OPEN_DIR_INTERVAL_MS, later batches merged into one
 * deferred call. */
static void maybe_open_dir(VaFiles *f, bool batch_last)
{
    if (!f->open_dir || !batch_last || g_hash_table_size(f->tasks) != 0 || !f->save_dir)
        return;
    if (f->open_timer)
        return;   /* one call is already due */
    const gint64 interval = (gint64)VA_FILES_OPEN_DIR_INTERVAL_MS * 1000;
    gint64 now = g_get_monotonic_time();
    if (f->last_open == 0 || now - f->last_open >= interval) {
        run_xdg_open(f);
        return;
    }
    gint64 wait_ms = (f->last_open + interval - now + 999) / 1000;
    g_debug("showing %s again in %" G_GINT64_FORMAT " ms (xdg-open is rate-limited)", f->save_dir, wait_ms);
    f->open_timer = g_timeout_source_new((guint)wait_ms);
    g_source_set_callback(f->open_timer, open_timer_cb, f, NULL);
    g_source_attach(f->open_timer, f->ctx);
}

static gboolean job_done(gpointer data)
{
    Job *j = data;
    Task *t = j->task;
    VaFiles *f = j->core->files;
    if (!f)
        goto out;
    f->jobs--;
    f->pending -= j->cost;
    update_pause(f);
    /* Results for a transfer that was cancelled meanwhile are moot. */
    if (g_atomic_int_get(&t->cancelled) || g_hash_table_lookup(f->tasks, GUINT_TO_POINTER(t->id)) != t)
        goto out;
    switch (j->kind) {
    case JOB_OPEN:
        if (j->status == VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA) {
            t->opened = true;
            g_debug("file transfer %u: receiving %s (%" G_GUINT64_FORMAT " bytes)", t->id, t->path, t->size);
            send_status(f, t->id, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA, 0, 0);
            if (t->size == 0) {
                t->finishing = true;
                submit(f, t, JOB_FINISH, NULL, 0, 0);
            }
            break;
        }
        if (j->status == VD_AGENT_FILE_XFER_STATUS_NOT_ENOUGH_SPACE) {
            char *want = g_format_size(t->size), *have = g_format_size(j->free_space);
            g_message("file transfer %u: %s does not fit: %s needed, %s free", t->id, t->name, want, have);
            g_free(want);
            g_free(have);
        } else {
            g_message("file transfer %u: cannot create %s: %s", t->id, t->name, g_strerror(j->err));
        }
        send_status(f, t->id, j->status, j->free_space, j->err ? g_io_error_from_errno(j->err) : 0);
        task_drop(f, t);
        break;
    case JOB_WRITE:
        if (j->status == VD_AGENT_FILE_XFER_STATUS_ERROR) {
            g_message("file transfer %u: writing %s failed: %s", t->id, t->name, g_strerror(j->err));
            send_status(f, t->id, VD_AGENT_FILE_XFER_STATUS_ERROR, 0, g_io_error_from_errno(j->err));
            task_drop(f, t);
        }
        break;
    case JOB_FINISH:
        if (j->status == VD_AGENT_FILE_XFER_STATUS_SUCCESS) {
            g_message("file transfer %u: saved %s", t->id, t->path);
            send_status(f, t->id, VD_AGENT_FILE_XFER_STATUS_SUCCESS, 0, 0);
            bool last = t->batch_last;
            g_hash_table_remove(f->tasks, GUINT_TO_POINTER(t->id));
            maybe_open_dir(f, last);
        } else {
            g_message("file transfer %u: closing %s failed: %s", t->id, t->name, g_strerror(j->err));
            send_status(f, t->id, VD_AGENT_FILE_XFER_STATUS_ERROR, 0, g_io_error_from_errno(j->err));
            task_drop(f, t);
        }
        break;
    case JOB_DISCARD:
        break;
    }
out:
    return G_SOURCE_REMOVE;
}

static void job_free(gpointer data)
{
    Job *j = data;
    task_unref(j->task);
    core_unref(j->core);
    g_free(j->data);
    g_free(j);
}

/* ---- messages ---- */

/* The agent ends transfers on its own. status: the final status the
 * client gets for each (through the daemon, which then forgets the id),
 * or 0 when the connection is gone (the daemon tells the client then).
 * keep_complete: transfers whose data has all arrived are left to finish
 * (their SUCCESS or ERROR is the final status) instead of deleted. */
static void cancel_all(VaFiles *f, const char *why, uint32_t status, bool keep_complete)
{
    GList *list = g_hash_table_get_values(f->tasks);
    unsigned n = 0, kept = 0;
    for (GList *l = list; l; l = l->next) {
        Task *t = l->data;
        if (keep_complete && t->finishing) {
            kept++;
            continue;
        }
        if (status)
            send_status(f, t->id, status, 0, 0);
        task_drop(f, t);
        n++;
    }
    g_list_free(list);
    if (n)
        g_message("cancelled %u file transfer(s): %s", n, why);
    if (kept)
        g_message("%u file transfer(s) with all their data received are being saved", kept);
}

static void handle_start(VaFiles *f, const VdpFileXferStart *st)
{
    uint32_t id = st->id;
    if (g_hash_table_lookup(f->tasks, GUINT_TO_POINTER(id))) {
        /* Answering would end the running transfer with that id. */
        if (vdp_rate_ok(&f->rl, "file transfer"))
            g_message("file transfer %u: START for a running transfer ignored", id);
        return;
    }
    /* LOCKED before FILE_XFER_ENABLED: the daemon clears the latter
     * whenever the session is locked. */
    if (f->dirfd >= 0 && f->have_state && (f->session_flags & VDP_IPC_SESSION_LOCKED)) {
        g_debug("file transfer %u refused: the session is locked", id);
        send_status(f, id, VD_AGENT_FILE_XFER_STATUS_SESSION_LOCKED, 0, 0);
        return;
    }
    if (f->dirfd < 0 || (f->have_state && !(f->session_flags & VDP_IPC_SESSION_FILE_XFER_ENABLED))) {
        g_debug("file transfer %u refused: file transfers are disabled", id);
        send_status(f, id, VD_AGENT_FILE_XFER_STATUS_DISABLED, 0, 0);
        return;
    }
    if (f->pending + VA_FILES_JOB_COST > VA_FILES_PENDING_MAX) {
        if (vdp_rate_ok(&f->rl, "file transfer"))
            g_message("file transfer %u refused: the daemon keeps sending while paused", id);
        send_status(f, id, VD_AGENT_FILE_XFER_STATUS_ERROR, 0, G_IO_ERROR_NO_SPACE);
        return;
    }
    if (g_hash_table_size(f->tasks) >= VA_FILES_MAX_TASKS) {
        if (vdp_rate_ok(&f->rl, "file transfer"))
            g_message("file transfer %u refused: %u transfers running", id, VA_FILES_MAX_TASKS);
        send_status(f, id, VD_AGENT_FILE_XFER_STATUS_ERROR, 0, G_IO_ERROR_TOO_MANY_OPEN_FILES);
        return;
    }
    GKeyFile *kf = g_key_file_new();
    GError *error = NULL;
    char *raw = NULL;
    char *name = NULL;
    guint64 size = 0;
    const char *why = NULL;
    if (!g_key_file_load_from_data(kf, st->keyfile, st->keyfile_len, G_KEY_FILE_NONE, &error) ||
        !(raw = g_key_file_get_string(kf, XFER_GROUP, "name", &error))) {
        why = error->message;
    } else {
        /* get_uint64 accepts "-1" and trailing garbage: parse it strictly. */
        char *text = g_key_file_get_value(kf, XFER_GROUP, "size", NULL);
        if (!text || !g_ascii_string_to_unsigned(g_strstrip(text), 10, 0, G_MAXINT64, &size, NULL))
            why = "no valid size";
        g_free(text);
    }
    if (why) {
        /* GKeyFile quotes the offending line: the client's bytes. */
        if (vdp_rate_ok(&f->rl, "file transfer")) {
            char *safe = log_safe(why);
            g_message("file transfer %u refused: bad FILE_XFER_START: %s", id, safe);
            g_free(safe);
        }
        send_status(f, id, VD_AGENT_FILE_XFER_STATUS_ERROR, 0, G_IO_ERROR_INVALID_DATA);
        goto out;
    }
    if (!(name = sanitize_name(raw, &why))) {
        if (vdp_rate_ok(&f->rl, "file transfer"))
            g_message("file transfer %u refused: unusable file name (%s)", id, why);
        send_status(f, id, VD_AGENT_FILE_XFER_STATUS_ERROR, 0, G_IO_ERROR_INVALID_FILENAME);
        goto out;
    }
    if (strcmp(name, raw) != 0)
        g_message("file transfer %u: name \"%s\" reduced to \"%s\"", id, raw, name);
    Task *t = g_new0(Task, 1);
    t->refs = 1;
    t->id = id;
    t->name = name;
    t->size = size;
    t->fd = -1;
    t->dirfd = f->dirfd;
    /* Batch position (spice-gtk and vdagentctl send both keys); without
     * them every file is a batch of its own. */
    gint nr = g_key_file_get_integer(kf, XFER_GROUP, "file-xfer-nr", NULL);
    gint total = g_key_file_get_integer(kf, XFER_GROUP, "file-xfer-total", NULL);
    t->batch_last = nr <= 0 || total <= 0 || nr >= total;
    g_hash_table_insert(f->tasks, GUINT_TO_POINTER(id), t);
    submit(f, t, JOB_OPEN, NULL, 0, 0);
out:
    if (error)
        g_error_free(error);
    g_free(raw);
    g_key_file_free(kf);
}

static void handle_data(VaFiles *f, const VdpFileXferData *d)
{
    Task *t = g_hash_table_lookup(f->tasks, GUINT_TO_POINTER(d->id));
    if (!t) {
        /* Normal right after a cancel: the client's data was in flight. */
        g_debug("file transfer %u: data for no transfer dropped", d->id);
        return;
    }
    if (d->size == 0) {
        /* Harmless (a client may send one for an empty file). */
        g_debug("file transfer %u: empty DATA ignored", d->id);
        return;
    }
    if (!t->opened || t->finishing) {
        if (vdp_rate_ok(&f->rl, "file transfer"))
            g_message("file transfer %u: data %s, failing it", d->id,
                      t->opened ? "past the end" : "before CAN_SEND_DATA");
        send_status(f, t->id, VD_AGENT_FILE_XFER_STATUS_ERROR, 0, G_IO_ERROR_INVALID_DATA);
        task_drop(f, t);
        return;
    }
    if (d->size > t->size - t->queued) {
        if (vdp_rate_ok(&f->rl, "file transfer"))
            g_message("file transfer %u: more data than the %" G_GUINT64_FORMAT " bytes announced", d->id,
                      t->size);
        send_status(f, t->id, VD_AGENT_FILE_XFER_STATUS_ERROR, 0, G_IO_ERROR_INVALID_DATA);
        task_drop(f, t);
        return;
    }
    if (f->pending + d->size + VA_FILES_JOB_COST > VA_FILES_PENDING_MAX) {
        if (vdp_rate_ok(&f->rl, "file transfer"))
            g_message("file transfer %u: the daemon keeps sending while paused, failing it", d->id);
        send_status(f, t->id, VD_AGENT_FILE_XFER_STATUS_ERROR, 0, G_IO_ERROR_NO_SPACE);
        task_drop(f, t);
        return;
    }
    uint64_t off = t->queued;
    t->queued += d->size;
    if (!merge_write(f, t, d->data, d->size, off))
        submit(f, t, JOB_WRITE, g_memdup2(d->data, d->size), d->size, off);
    if (t->queued == t->size) {
        t->finishing = true;
        submit(f, t, JOB_FINISH, NULL, 0, 0);
    }
}

static void handle_status(VaFiles *f, const VdpFileXferStatus *st)
{
    Task *t = g_hash_table_lookup(f->tasks, GUINT_TO_POINTER(st->id));
    if (!t) {
        g_debug("file transfer %u: status %s for no transfer", st->id, vdp_xfer_status_name(st->result) ?: "?");
        return;
    }
    if (st->result == VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA) {
        if (vdp_rate_ok(&f->rl, "file transfer"))
            g_message("file transfer %u: unexpected CAN_SEND_DATA from the client ignored", st->id);
        return;
    }
    g_message("file transfer %u: %s by the client, removing %s", st->id,
              st->result == VD_AGENT_FILE_XFER_STATUS_CANCELLED ? "cancelled" : "ended", t->name);
    task_drop(f, t);
}

bool va_files_handle_msg(VaFiles *f, const VdpMsg *msg)
{
    switch (msg->type) {
    case VD_AGENT_FILE_XFER_START:
        handle_start(f, &msg->u.xfer_start);
        return true;
    case VD_AGENT_FILE_XFER_DATA:
        handle_data(f, &msg->u.xfer_data);
        return true;
    case VD_AGENT_FILE_XFER_STATUS:
        handle_status(f, &msg->u.xfer_status);
        return true;
    default:
        return false;
    }
}

/* ---- lifetime ---- */

VaFiles *va_files_new(GMainContext *ctx, const char *save_dir, bool open_dir, GError **error)
{
    int dirfd = -1;
    if (save_dir) {
        dirfd = open(save_dir, O_DIRECTORY | O_PATH | O_CLOEXEC);
        if (dirfd < 0) {
            int e = errno;
            g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot open %s: %s", save_dir,
                        g_strerror(e));
            return NULL;
        }
    }
    VaFiles *f = g_new0(VaFiles, 1);
    f->ctx = ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default();
    f->dirfd = dirfd;
    f->save_dir = g_strdup(save_dir);
    f->open_dir = open_dir;
    f->core = g_new0(Core, 1);
    f->core->refs = 1;
    f->core->files = f;
    g_mutex_init(&f->core->lock);
    g_cond_init(&f->core->cond);
    f->tasks = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, (GDestroyNotify)task_unref);
    /* One thread: jobs run in the order they were queued. */
    f->pool = g_thread_pool_new(worker, f->ctx, 1, FALSE, NULL);
    return f;
}

void va_files_free(VaFiles *f)
{
    if (!f)
        return;
    cancel_all(f, "the agent is stopping", VD_AGENT_FILE_XFER_STATUS_CANCELLED, false);
    va_files_test_hold_worker(f, false);
    g_thread_pool_free(f->pool, FALSE, TRUE);   /* runs the discards */
    if (f->open_timer) {
        g_source_destroy(f->open_timer);
        g_clear_pointer(&f->open_timer, g_source_unref);
    }
    f->core->files = NULL;
    core_unref(f->core);
    g_hash_table_destroy(f->tasks);
    if (f->dirfd >= 0)
        close(f->dirfd);
    g_free(f->save_dir);
    g_main_context_unref(f->ctx);
    g_free(f);
}

void va_files_set_conn(VaFiles *f, VdpIpcConn *conn)
{
    if (conn == f->conn)
        return;
    if (f->conn) {
        /* The old connection is gone: nothing to tell on it, and the
         * daemon ended these transfers for the client when it lost us. */
        f->conn = NULL;
        cancel_all(f, "the daemon connection was lost", 0, false);
    }
    f->conn = conn;
    /* A new connection starts reading; pause it again if still behind. */
    f->paused = false;
    if (conn)
        update_pause(f);
}

void va_files_session_state(VaFiles *f, uint32_t flags)
{
    f->have_state = true;
    f->session_flags = flags;
    if (!(flags & VDP_IPC_SESSION_FILE_XFER_ENABLED)) {
        bool locked = flags & VDP_IPC_SESSION_LOCKED;
        cancel_all(f, locked ? "the session was locked" : "file transfers were disabled",
                   locked ? VD_AGENT_FILE_XFER_STATUS_SESSION_LOCKED : VD_AGENT_FILE_XFER_STATUS_DISABLED, true);
    }
}

unsigned va_files_active(const VaFiles *f)
{
    return g_hash_table_size(f->tasks);
}

unsigned va_files_queued_jobs(const VaFiles *f)
{
    return f->jobs;
}

size_t va_files_pending(const VaFiles *f)
{
    return f->pending;
}

bool va_files_read_paused(const VaFiles *f)
{
    return f->paused;
}

void va_files_test_hold_worker(VaFiles *f, bool hold)
{
    g_mutex_lock(&f->core->lock);
    f->core->hold = hold;
    g_cond_broadcast(&f->core->cond);
    g_mutex_unlock(&f->core->lock);
}
