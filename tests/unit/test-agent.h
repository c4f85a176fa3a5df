/* test-agent.h - a small IPC client for the daemon tests: a session agent
 * or control client on VdpIpcConn, recording what the daemon sends. */
#ifndef TEST_AGENT_H
#define TEST_AGENT_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "vdp-ipc-conn.h"
#include "vdp-ipc-msg.h"
#include "vdp-msg.h"

#define TEST_AGENT_NTYPES 32u
/* CLIP_BEGIN heads kept in order (the first ones), to check which answer
 * came for which request. */
#define TEST_AGENT_HEAD_LOG 64u

typedef struct TestAgent {
    VdpIpcConn *conn;
    bool welcomed, rejected, closed;
    uint32_t reject_reason;
    unsigned session_states;
    uint32_t session_flags;
    unsigned mice;
    VdpIpcMouse last_mouse;
    unsigned nmsgs[TEST_AGENT_NTYPES];        /* VDAGENT messages by type */
    GBytes *last_payload[TEST_AGENT_NTYPES];  /* their last canonical payload */
    char *status_json;
    unsigned bad_frames;                      /* anything that did not decode */
    /* File transfer receiving (off unless xfer_accept is set): START is
     * answered CAN_SEND_DATA, DATA is summed, and SUCCESS is sent when
     * the size the keyfile announced has arrived (unless xfer_no_success). */
    bool xfer_accept, xfer_no_success;
    uint32_t xfer_id;
    uint64_t xfer_size, xfer_received;
    unsigned xfer_data_msgs, xfer_done;
    GChecksum *xfer_sum;                      /* SHA-256 of the data received */
    /* Clipboard streams from the daemon (CLIP_BEGIN/CHUNK/ABORT): checked
     * against the IPC rules (a chunk without a stream, past the announced
     * size or a BEGIN inside a stream count as bad_frames). */
    unsigned clip_begins, clip_chunks, clip_aborts, clip_done;
    VdpIpcClipHead clip_head;                 /* the last BEGIN */
    VdpIpcClipHead clip_heads[TEST_AGENT_HEAD_LOG];  /* every BEGIN, in order */
    unsigned nclip_heads;
    bool clip_open;
    uint64_t clip_received;                   /* bytes of the open or last stream */
    uint32_t clip_abort_sel;
    GChecksum *clip_sum;                      /* SHA-256 of the open or last stream */
    char clip_digest[65];                     /* of the last complete stream */
} TestAgent;

/* Connect to the daemon's socket and send HELLO with this role. NULL if
 * the connect fails. */
TestAgent *test_agent_connect(const char *socket_path, uint32_t role, const char *name);
/* The same on a socket connected elsewhere (by another process, so the
 * daemon sees that process's credentials); takes fd. */
TestAgent *test_agent_new_fd(int fd, uint32_t role, const char *name);
void test_agent_free(TestAgent *a);

bool test_agent_send_layout(TestAgent *a, const VdpIpcGuestLayout *l);
bool test_agent_send_status_request(TestAgent *a);
/* A FILE_XFER_STATUS envelope (no detail). */
bool test_agent_send_xfer_status(TestAgent *a, uint32_t id, uint32_t result);

/* Any VDAgent message in a VDAGENT envelope. */
bool test_agent_send_vdagent(TestAgent *a, const VdpMsg *m);
/* Clipboard messages in envelopes. */
bool test_agent_send_grab(TestAgent *a, uint8_t sel, uint32_t type);
bool test_agent_send_request(TestAgent *a, uint8_t sel, uint32_t type);
bool test_agent_send_release(TestAgent *a, uint8_t sel);
bool test_agent_send_clipboard(TestAgent *a, uint8_t sel, uint32_t type, const uint8_t *data, size_t len);
/* CLIP_DATA_FD with fd (-1: none); the caller keeps its fd. */
bool test_agent_send_clip_fd(TestAgent *a, uint32_t sel, uint32_t type, uint64_t size, int fd);
/* Stop or resume reading the daemon's frames (a slow agent). */
void test_agent_pause(TestAgent *a, bool pause);

/* A memfd of size bytes of test_pattern(seed) with the given seals
 * (F_SEAL_*), or unsealed when seals is 0; the SHA-256 of its content
 * in digest (65 bytes) if not NULL. -1 on failure. */
int test_memfd(uint64_t size, uint32_t seed, int seals, char *digest);
/* The pattern: byte i of seed s. */
void test_pattern(uint8_t *buf, size_t len, uint64_t offset, uint32_t seed);
/* SHA-256 of size bytes of the pattern. */
void test_pattern_digest(uint64_t size, uint32_t seed, char *digest);

/* Decode the last VDAgent message of a type (false if none). Views in msg
 * stay valid until the next message of that type arrives. */
bool test_agent_last(TestAgent *a, uint32_t type, VdpMsg *msg);

/* Iterate the default context until cond(data) or timeout_ms. */
bool test_wait(bool (*cond)(void *data), void *data, unsigned timeout_ms);
/* Iterate the default context for ms milliseconds. */
void test_spin(unsigned ms);

/* A layout of one or two displays. */
void test_layout_one(VdpIpcGuestLayout *l);
void test_layout_two(VdpIpcGuestLayout *l);

#endif /* TEST_AGENT_H */
