/* vdd-xfer.h - routing of file transfers (host -> guest) between the
 * client on the port and the session agents.
 *
 * Each transfer id the client STARTs is recorded with the agent that was
 * active then (its owner). Only the owner's STATUS messages are accepted for
 * that id (CVE-2020-25651), DATA goes only to the owner and only after it
 * answered CAN_SEND_DATA, and at most VDD_MAX_XFERS transfers run at once
 * (CVE-2020-25650). Streamed DATA is re-chunked into envelopes of at most
 * VDD_XFER_FORWARD_CHUNK bytes; when the owner's IPC queue is above its high
 * watermark the port stops being read until the agent catches up, so the
 * daemon's memory stays bounded whatever the file size.
 */
#ifndef VDD_XFER_H
#define VDD_XFER_H

#include <stdbool.h>
#include <stdint.h>

#include "vdd-agents.h"
#include "vdp-caps.h"
#include "vdp-msg.h"
#include "vdp-port.h"

/* Transfers running at once (CVE-2020-25650: 0.22.1 had no bound). A client
 * sends a batch of files one START each; 128 is far above any real batch in
 * flight and bounds the table. The next one gets ERROR TOO_MANY_OPEN_FILES. */
#define VDD_MAX_XFERS 128u
/* Largest piece of file data in one VDAGENT envelope: with the 4-byte type,
 * the 12-byte DATA head and the IPC header it stays well inside
 * VDP_IPC_MAX_FRAME (256 KiB), and it is half the agent queue's high
 * watermark so a blocked agent is noticed after at most two pieces. */
#define VDD_XFER_FORWARD_CHUNK (128u * 1024u)

typedef struct VddXfers VddXfers;

/* port, client_caps and layout are the daemon's (not owned, must outlive). */
VddXfers *vdd_xfers_new(VdpPort *port, const VdpCaps *client_caps, const VdpLayout *layout);
void vdd_xfers_free(VddXfers *x);

unsigned vdd_xfers_count(const VddXfers *x);

/* From the client (already decoded and validated). active: the active agent
 * or NULL; locked / greeter: the active session's state. */
void vdd_xfers_client_start(VddXfers *x, VddAgent *active, bool locked, bool greeter,
                            const VdpMsg *start);
void vdd_xfers_client_status(VddXfers *x, const VdpMsg *status);
void vdd_xfers_client_data(VddXfers *x, const VdpMsg *data);
/* Streamed DATA (payload above the stream threshold): head decoded into
 * head->u.xfer_data (data NULL), then the raw file bytes, then the end. */
void vdd_xfers_stream_begin(VddXfers *x, const VdpMsg *head);
void vdd_xfers_stream_data(VddXfers *x, const uint8_t *data, size_t len);
void vdd_xfers_stream_end(VddXfers *x);
void vdd_xfers_stream_abort(VddXfers *x);

/* A FILE_XFER_STATUS envelope from an agent. */
void vdd_xfers_agent_status(VddXfers *x, VddAgent *a, const VdpMsg *status);
/* The agent is going away: CANCELLED to the client for its transfers. */
void vdd_xfers_agent_gone(VddXfers *x, VddAgent *a);
/* The agent is no longer the active one (session switch): CANCELLED to the
 * client and to the agent (so it deletes the partial files). */
void vdd_xfers_agent_inactive(VddXfers *x, VddAgent *a);
/* The agent's IPC queue drained below its low watermark. */
void vdd_xfers_agent_write_ready(VddXfers *x, VddAgent *a);
/* The client went away (CLIENT_DISCONNECTED, port closed, new client):
 * forget every transfer, CANCELLED to the agents that own them. */
void vdd_xfers_client_gone(VddXfers *x);

#endif /* VDD_XFER_H */
