/* vdp-limits.h - every size limit of the wire protocol and the IPC, named.
 *
 * Each limit says why it has the value it has. A message over its limit is
 * rejected before anything is allocated for it.
 */
#ifndef VDP_LIMITS_H
#define VDP_LIMITS_H

#include <stdint.h>

/* Size of the VDIChunkHeader (u32 port, u32 size) and of VDAgentMessage
 * (u32 protocol, u32 type, u64 opaque, u32 size). Fixed by the protocol. */
#define VDP_CHUNK_HEADER_SIZE 8u
#define VDP_MSG_HEADER_SIZE 20u

/* Chunk payload spice-server produces and expects (VD_AGENT_MAX_DATA_SIZE,
 * SPICE_AGENT_MAX_DATA_SIZE in spice-common): our default chunk size when
 * writing, and the largest chunk a guest accepts from the host. */
#define VDP_CHUNK_SIZE_DEFAULT 2048u

/* Largest chunk a host endpoint accepts from a guest. spice-vdagentd writes
 * every message as one chunk, so this must cover the largest message we
 * accept whole plus its header; the reassembler does not need whole chunks
 * in memory, so a generous bound costs nothing. */
#define VDP_CHUNK_SIZE_MAX_FROM_GUEST (1024u * 1024u * 1024u)

/* spice-server refuses more than 256 monitors in a client config
 * (reds_on_main_agent_monitors_config); so do we. */
#define VDP_MAX_MONITORS 256u

/* Capability words we keep. The protocol has 18 bits (one word) today; a
 * peer may announce more words for future bits, which we accept and keep up
 * to this many (64 * 32 = 2048 bits). More is refused as malformed. */
#define VDP_MAX_CAPS_WORDS 64u

/* Types offered in one CLIPBOARD_GRAB. Seven types exist (NONE..FILE_LIST);
 * spice-vdagent 0.22 keeps up to 256, spice-gtk offers at most a handful.
 * 64 leaves room for future types without letting a grab grow unbounded. */
#define VDP_MAX_GRAB_TYPES 64u

/* Clipboard payload size: spice-gtk announces 100 MiB with MAX_CLIPBOARD;
 * that is what we assume until a MAX_CLIPBOARD says otherwise. */
#define VDP_MAX_CLIPBOARD_DEFAULT (100u * 1024u * 1024u)

/* Absolute ceiling for one clipboard message whatever MAX_CLIPBOARD says:
 * even streamed, a selection beyond 1 GiB is not something X clients or
 * users can handle, and it bounds the time one transfer can occupy a port. */
#define VDP_MAX_CLIPBOARD_LIMIT (1024u * 1024u * 1024u)

/* FILE_XFER_START carries a small GKeyFile (name, size, batch position).
 * File names are at most a few hundred bytes; 64 KiB is far more than any
 * real client sends and small enough to buffer. */
#define VDP_MAX_FILE_XFER_START_SIZE (64u * 1024u)

/* File data per FILE_XFER_DATA message. spice-gtk sends 64 KiB per message
 * (VD_AGENT_MAX_DATA_SIZE * 32); we accept up to 1 MiB per message from any
 * client, which the daemon streams rather than buffers anyway. */
#define VDP_MAX_FILE_XFER_DATA (1024u * 1024u)

/* GRAPHICS_DEVICE_INFO: spice-server sends one entry per display channel and
 * monitor, so VDP_MAX_MONITORS bounds the entries; a device address is a
 * short path such as "pci/0000/02.0" (each bridge hop adds 5 bytes). */
#define VDP_MAX_DEVICE_DISPLAYS VDP_MAX_MONITORS
#define VDP_MAX_DEVICE_ADDRESS 256u

/* AUDIO_VOLUME_SYNC: nchannels is a u8, so 255 volumes at most. */
#define VDP_MAX_AUDIO_CHANNELS 255u

/* Message payloads at or below this size are always reassembled whole and
 * delivered in one callback; larger messages of streamable types
 * (CLIPBOARD, FILE_XFER_DATA) are delivered as they arrive, so a daemon that
 * only forwards them never holds them whole. */
#define VDP_STREAM_THRESHOLD_DEFAULT (64u * 1024u)

/* ---- daemon <-> session agent IPC ---- */

/* Largest IPC frame payload. Control messages are small; a monitor config
 * with VDP_MAX_MONITORS entries is about 8 KiB. Bulk data (clipboard,
 * files) travels in several frames or through a passed file descriptor, so
 * a frame never needs more than this. */
#define VDP_IPC_MAX_FRAME (256u * 1024u)

/* File descriptors one IPC frame may carry (SCM_RIGHTS). Bulk transfers
 * need one (a pipe or memfd); a few more leave room, and the bound keeps a
 * peer from filling our fd table with one message. */
#define VDP_IPC_MAX_FDS 4u

#endif /* VDP_LIMITS_H */
