/* test-agent.c - the IPC client used by test-daemon.c. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test-agent.h"
#include "vdp-unix.h"
#include "vdp-wire.h"

static void xfer_message(TestAgent *a, const VdpMsg *m)
{
    if (!a->xfer_accept)
        return;
    if (m->type == VD_AGENT_FILE_XFER_START) {
        GKeyFile *kf = g_key_file_new();
        a->xfer_id = m->u.xfer_start.id;
        a->xfer_size = 0;
        a->xfer_received = 0;
        if (g_key_file_load_from_data(kf, m->u.xfer_start.keyfile, m->u.xfer_start.keyfile_len, 0, NULL))
            a->xfer_size = g_key_file_get_uint64(kf, "vdagent-file-xfer", "size", NULL);
        g_key_file_free(kf);
        if (a->xfer_sum)
            g_checksum_free(a->xfer_sum);
        a->xfer_sum = g_checksum_new(G_CHECKSUM_SHA256);
        test_agent_send_xfer_status(a, a->xfer_id, VD_AGENT_FILE_XFER_STATUS_CAN_SEND_DATA);
    } else if (m->type == VD_AGENT_FILE_XFER_DATA && m->u.xfer_data.id == a->xfer_id && a->xfer_sum) {
        a->xfer_data_msgs++;
        a->xfer_received += m->u.xfer_data.size;
        g_checksum_update(a->xfer_sum, m->u.xfer_data.data, (gssize)m->u.xfer_data.size);
        if (a->xfer_received == a->xfer_size && !a->xfer_no_success) {
            a->xfer_done++;
            test_agent_send_xfer_status(a, a->xfer_id, VD_AGENT_FILE_XFER_STATUS_SUCCESS);
        }
    }
}

static void clip_stream_done(TestAgent *a)
{
    a->clip_open = false;
    a->clip_done++;
    g_strlcpy(a->clip_digest, g_checksum_get_string(a->clip_sum), sizeof(a->clip_digest));
}

static void clip_frame(TestAgent *a, const VdpIpcHeader *hdr, const uint8_t *payload)
{
    VdpError err = {0};
    switch (hdr->type) {
    case VDP_IPC_CLIP_BEGIN: {
        VdpIpcClipHead h;
        if (vdp_ipc_clip_head_decode(payload, hdr->size, &h, &err) != VDP_OK || a->clip_open) {
            g_printerr("test agent: bad CLIP_BEGIN: %s\n", a->clip_open ? "a stream is open" : err.text);
            a->bad_frames++;
            return;
        }
        a->clip_begins++;
        a->clip_head = h;
        if (a->nclip_heads < TEST_AGENT_HEAD_LOG)
            a->clip_heads[a->nclip_heads++] = h;
        a->clip_received = 0;
        if (a->clip_sum)
            g_checksum_free(a->clip_sum);
        a->clip_sum = g_checksum_new(G_CHECKSUM_SHA256);
        a->clip_open = true;
        if (h.size == 0)
            clip_stream_done(a);
        break;
    }
    case VDP_IPC_CLIP_CHUNK:
        if (!a->clip_open || hdr->size == 0 || hdr->size > a->clip_head.size - a->clip_received) {
            g_printerr("test agent: bad CLIP_CHUNK of %u bytes\n", hdr->size);
            a->bad_frames++;
            return;
        }
        a->clip_chunks++;
        a->clip_received += hdr->size;
        g_checksum_update(a->clip_sum, payload, hdr->size);
        if (a->clip_received == a->clip_head.size)
            clip_stream_done(a);
        break;
    case VDP_IPC_CLIP_ABORT:
        if (vdp_ipc_clip_abort_decode(payload, hdr->size, &a->clip_abort_sel, &err) != VDP_OK || !a->clip_open) {
            g_printerr("test agent: bad CLIP_ABORT\n");
            a->bad_frames++;
            return;
        }
        a->clip_aborts++;
        a->clip_open = false;
        break;
    default:
        break;
    }
}

static bool on_frame(void *user, const VdpIpcHeader *hdr, const uint8_t *payload, int *fds, unsigned nfds)
{
    TestAgent *a = user;
    VdpError err = {0};
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    switch (hdr->type) {
    case VDP_IPC_CLIP_BEGIN:
    case VDP_IPC_CLIP_CHUNK:
    case VDP_IPC_CLIP_ABORT:
        clip_frame(a, hdr, payload);
        break;
    case VDP_IPC_WELCOME: {
        VdpIpcHello w;
        if (vdp_ipc_hello_decode(payload, hdr->size, &w, &err) == VDP_OK &&
            vdp_ipc_hello_check(&w, &err) == VDP_OK)
            a->welcomed = true;
        else
            a->bad_frames++;
        break;
    }
    case VDP_IPC_REJECT: {
        VdpIpcReject r;
        if (vdp_ipc_reject_decode(payload, hdr->size, &r, &err) == VDP_OK) {
            a->rejected = true;
            a->reject_reason = r.reason;
        } else {
            a->bad_frames++;
        }
        break;
    }
    case VDP_IPC_SESSION_STATE:
        if (vdp_ipc_session_state_decode(payload, hdr->size, &a->session_flags, &err) == VDP_OK)
            a->session_states++;
        else
            a->bad_frames++;
        break;
    case VDP_IPC_MOUSE:
        if (vdp_ipc_mouse_decode(payload, hdr->size, &a->last_mouse, &err) == VDP_OK)
            a->mice++;
        else
            a->bad_frames++;
        break;
    case VDP_IPC_STATUS_REPLY: {
        const char *json;
        size_t len;
        if (vdp_ipc_status_reply_decode(payload, hdr->size, &json, &len, &err) == VDP_OK) {
            g_free(a->status_json);
            a->status_json = g_strndup(json, len);
        } else {
            a->bad_frames++;
        }
        break;
    }
    case VDP_IPC_VDAGENT: {
        if (hdr->size < VDP_IPC_VDAGENT_HEAD) {
            a->bad_frames++;
            break;
        }
        uint32_t type = vdp_get_le32(payload);
        VdpMsg *m = g_new0(VdpMsg, 1);
        if (type < TEST_AGENT_NTYPES &&
            vdp_msg_decode(VDP_FROM_HOST, vdp_msg_port_for_type(type), type, payload + 4, hdr->size - 4,
                           &vdp_ipc_layout, m, &err) == VDP_OK) {
            a->nmsgs[type]++;
            xfer_message(a, m);
            if (a->last_payload[type])
                g_bytes_unref(a->last_payload[type]);
            a->last_payload[type] = g_bytes_new(payload + 4, hdr->size - 4);
        } else {
            g_printerr("test agent: bad VDAGENT frame: %s\n", err.text);
            a->bad_frames++;
        }
        g_free(m);
        break;
    }
    default:
        break;
    }
    return true;
}

static void on_closed(void *user, const char *why)
{
    TestAgent *a = user;
    a->closed = true;
}

static const VdpIpcConnCallbacks agent_cb = {.frame = on_frame, .closed = on_closed};

TestAgent *test_agent_connect(const char *socket_path, uint32_t role, const char *name)
{
    int fd = vdp_unix_connect(socket_path);
    if (fd < 0)
        return NULL;
    return test_agent_new_fd(fd, role, name);
}

TestAgent *test_agent_new_fd(int fd, uint32_t role, const char *name)
{
    TestAgent *a = g_new0(TestAgent, 1);
    a->conn = vdp_ipc_conn_new(NULL, fd, NULL, &agent_cb, a);
    if (!a->conn) {
        g_free(a);
        return NULL;
    }
    VdpIpcHello h;
    uint8_t buf[128];
    vdp_ipc_hello_init(&h, role, name);
    size_t n = vdp_ipc_hello_encode(&h, buf, sizeof(buf));
    vdp_ipc_conn_send(a->conn, VDP_IPC_HELLO, 1, buf, n, NULL, 0);
    return a;
}

void test_agent_free(TestAgent *a)
{
    if (!a)
        return;
    vdp_ipc_conn_free(a->conn);
    for (unsigned i = 0; i < TEST_AGENT_NTYPES; i++)
        if (a->last_payload[i])
            g_bytes_unref(a->last_payload[i]);
    g_free(a->status_json);
    if (a->xfer_sum)
        g_checksum_free(a->xfer_sum);
    if (a->clip_sum)
        g_checksum_free(a->clip_sum);
    g_free(a);
}

bool test_agent_send_vdagent(TestAgent *a, const VdpMsg *m)
{
    VdpError err = {0};
    return vdp_ipc_conn_send_vdagent(a->conn, 0, m, &err) == VDP_OK;
}

bool test_agent_send_grab(TestAgent *a, uint8_t sel, uint32_t type)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_CLIPBOARD_GRAB;
    m->u.grab.selection = sel;
    m->u.grab.serial = 12345;   /* the daemon assigns its own */
    m->u.grab.ntypes = 1;
    m->u.grab.types[0] = type;
    bool ok = test_agent_send_vdagent(a, m);
    g_free(m);
    return ok;
}

bool test_agent_send_request(TestAgent *a, uint8_t sel, uint32_t type)
{
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_REQUEST};
    m.u.request.selection = sel;
    m.u.request.type = type;
    return test_agent_send_vdagent(a, &m);
}

bool test_agent_send_release(TestAgent *a, uint8_t sel)
{
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD_RELEASE};
    m.u.release.selection = sel;
    return test_agent_send_vdagent(a, &m);
}

bool test_agent_send_clipboard(TestAgent *a, uint8_t sel, uint32_t type, const uint8_t *data, size_t len)
{
    VdpMsg m = {.type = VD_AGENT_CLIPBOARD};
    m.u.clipboard.selection = sel;
    m.u.clipboard.type = type;
    m.u.clipboard.data = data;
    m.u.clipboard.size = len;
    return test_agent_send_vdagent(a, &m);
}

bool test_agent_send_clip_fd(TestAgent *a, uint32_t sel, uint32_t type, uint64_t size, int fd)
{
    VdpIpcClipHead h = {.selection = sel, .type = type, .size = size};
    uint8_t buf[VDP_IPC_CLIP_HEAD_SIZE];
    size_t n = vdp_ipc_clip_head_encode(&h, buf, sizeof(buf));
    if (!n)
        return false;
    int dup_fd = -1;
    if (fd >= 0 && (dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
        return false;
    VdpResult r = vdp_ipc_conn_send(a->conn, VDP_IPC_CLIP_DATA_FD, 0, buf, n, dup_fd >= 0 ? &dup_fd : NULL,
                                    dup_fd >= 0 ? 1 : 0);
    if (r != VDP_OK && dup_fd >= 0)
        close(dup_fd);
    return r == VDP_OK;
}

void test_agent_pause(TestAgent *a, bool pause)
{
    vdp_ipc_conn_pause_read(a->conn, pause);
}

void test_pattern(uint8_t *buf, size_t len, uint64_t offset, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t x = offset + i;
        buf[i] = (uint8_t)((x * 2654435761u >> 13) ^ (x >> 8) ^ seed);
    }
}

#define PATTERN_PIECE (1u << 20)

void test_pattern_digest(uint64_t size, uint32_t seed, char *digest)
{
    GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
    uint8_t *buf = g_malloc(PATTERN_PIECE);
    for (uint64_t off = 0; off < size; off += PATTERN_PIECE) {
        size_t n = (size_t)MIN((uint64_t)PATTERN_PIECE, size - off);
        test_pattern(buf, n, off, seed);
        g_checksum_update(sum, buf, (gssize)n);
    }
    g_strlcpy(digest, g_checksum_get_string(sum), 65);
    g_free(buf);
    g_checksum_free(sum);
}

int test_memfd(uint64_t size, uint32_t seed, int seals, char *digest)
{
    int fd = memfd_create("test-clip", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    uint8_t *buf = g_malloc(PATTERN_PIECE);
    for (uint64_t off = 0; off < size; off += PATTERN_PIECE) {
        size_t n = (size_t)MIN((uint64_t)PATTERN_PIECE, size - off);
        test_pattern(buf, n, off, seed);
        if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
            g_free(buf);
            close(fd);
            return -1;
        }
    }
    g_free(buf);
    if (seals && fcntl(fd, F_ADD_SEALS, seals) != 0) {
        close(fd);
        return -1;
    }
    if (digest)
        test_pattern_digest(size, seed, digest);
    return fd;
}

bool test_agent_send_xfer_status(TestAgent *a, uint32_t id, uint32_t result)
{
    VdpMsg *m = g_new0(VdpMsg, 1);
    m->type = VD_AGENT_FILE_XFER_STATUS;
    m->u.xfer_status.id = id;
    m->u.xfer_status.result = result;
    VdpError err = {0};
    bool ok = vdp_ipc_conn_send_vdagent(a->conn, 0, m, &err) == VDP_OK;
    g_free(m);
    return ok;
}

bool test_agent_send_layout(TestAgent *a, const VdpIpcGuestLayout *l)
{
    uint8_t buf[VDP_IPC_LAYOUT_HEAD_SIZE + VDP_MAX_MONITORS * VDP_IPC_LAYOUT_DISPLAY_SIZE];
    size_t n = vdp_ipc_guest_layout_encode(l, buf, sizeof(buf));
    return n && vdp_ipc_conn_send(a->conn, VDP_IPC_GUEST_LAYOUT, 0, buf, n, NULL, 0) == VDP_OK;
}

bool test_agent_send_status_request(TestAgent *a)
{
    return vdp_ipc_conn_send(a->conn, VDP_IPC_STATUS_REQUEST, 7, NULL, 0, NULL, 0) == VDP_OK;
}

bool test_agent_last(TestAgent *a, uint32_t type, VdpMsg *msg)
{
    if (type >= TEST_AGENT_NTYPES || !a->last_payload[type])
        return false;
    gsize len;
    const uint8_t *p = g_bytes_get_data(a->last_payload[type], &len);
    return vdp_msg_decode(VDP_FROM_HOST, vdp_msg_port_for_type(type), type, p, len, &vdp_ipc_layout, msg,
                          NULL) == VDP_OK;
}

static gboolean timeout_cb(gpointer data)
{
    *(bool *)data = true;
    return G_SOURCE_REMOVE;
}

bool test_wait(bool (*cond)(void *data), void *data, unsigned timeout_ms)
{
    bool expired = false;
    GSource *t = g_timeout_source_new(timeout_ms);
    g_source_set_callback(t, timeout_cb, &expired, NULL);
    g_source_attach(t, NULL);
    bool ok;
    /* Conditions may look at descriptors that are not sources of the
     * context (a FIFO, a raw socket): never block for long. */
    while (!(ok = cond(data)) && !expired)
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(1000);
    g_source_destroy(t);
    g_source_unref(t);
    return ok;
}

static bool never(void *data)
{
    return false;
}

void test_spin(unsigned ms)
{
    test_wait(never, NULL, ms);
}

void test_layout_one(VdpIpcGuestLayout *l)
{
    memset(l, 0, sizeof(*l));
    l->desktop_width = 1024;
    l->desktop_height = 768;
    l->count = 1;
    l->displays[0] = (VdpIpcDisplay){.display_id = 0, .x = 0, .y = 0, .width = 1024, .height = 768};
}

void test_layout_two(VdpIpcGuestLayout *l)
{
    memset(l, 0, sizeof(*l));
    l->desktop_width = 1824;
    l->desktop_height = 768;
    l->count = 2;
    l->displays[0] = (VdpIpcDisplay){.display_id = 0, .x = 0, .y = 0, .width = 1024, .height = 768};
    l->displays[1] = (VdpIpcDisplay){.display_id = 1, .x = 1024, .y = 100, .width = 800, .height = 600};
}
