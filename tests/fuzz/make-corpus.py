#!/usr/bin/env python3
"""Write the seed corpus of the reassembler fuzz target (fuzz-reasm.c).

Each file is one control byte followed by a chunk stream from the host:

  control bit 0     clipboard selection prefix in the layout
  control bit 1     grab serial in the layout
  control bits 2-4  stream threshold index: 1, 5, 12, 64, 300, 2048, 4096, 64 KiB
  control bits 5-7  largest feed piece index: 1, 2, 7, 31, 256, 2056, 8192, 64 KiB

Usage: make-corpus.py [OUTDIR]   (default: the corpus/ directory next to
this script). The output is deterministic; the files are kept in the tree.
"""
import os
import struct
import sys

CLIENT, SERVER = 1, 2

(MOUSE_STATE, MONITORS_CONFIG, REPLY, CLIPBOARD, DISPLAY_CONFIG, ANNOUNCE_CAPABILITIES,
 CLIPBOARD_GRAB, CLIPBOARD_REQUEST, CLIPBOARD_RELEASE, FILE_XFER_START, FILE_XFER_STATUS,
 FILE_XFER_DATA, CLIENT_DISCONNECTED, MAX_CLIPBOARD, AUDIO_VOLUME_SYNC,
 GRAPHICS_DEVICE_INFO) = range(1, 17)

PORT_OF = {MOUSE_STATE: SERVER, CLIENT_DISCONNECTED: SERVER, GRAPHICS_DEVICE_INFO: SERVER}

UTF8_TEXT, IMAGE_PNG = 1, 2
USE_POS, PHYSICAL_SIZE = 1, 2


def control(sel=True, serial=True, threshold=7, piece=7):
    return bytes([int(sel) | int(serial) << 1 | threshold << 2 | piece << 5])


def msg(mtype, payload=b"", protocol=1, size=None):
    """A VDAgentMessage: header + payload; size overrides the header field."""
    return struct.pack("<IIQI", protocol, mtype, 0,
                       len(payload) if size is None else size) + payload


def chunk(port, data):
    return struct.pack("<II", port, len(data)) + data


def chunks(port, data, max_chunk=2048):
    return b"".join(chunk(port, data[i:i + max_chunk])
                    for i in range(0, len(data), max_chunk))


def sel(selection=0):
    return struct.pack("<B3x", selection)


# ---- one valid payload per type (with selection prefix and grab serial) ----

def mouse(x=100, y=200, buttons=1 << 1, display=0):
    return struct.pack("<IIIB", x, y, buttons, display)


def monitors(mons, flags=USE_POS, mm=None):
    body = struct.pack("<II", len(mons), flags)
    for w, h, x, y in mons:
        body += struct.pack("<IIIii", h, w, 32, x, y)   # height before width
    if mm is not None:
        body += b"".join(struct.pack("<HH", mh, mw) for mw, mh in mm)
    return body


def clipboard(data, ctype=UTF8_TEXT, selection=0, prefix=True):
    return (sel(selection) if prefix else b"") + struct.pack("<I", ctype) + data


def grab(types, selection=0, serial=1):
    return sel(selection) + struct.pack("<I", serial) + b"".join(
        struct.pack("<I", t) for t in types)


def xfer_start(xid, name, size):
    keyfile = "[vdagent-file-xfer]\nname=%s\nsize=%d\n" % (name, size)
    return struct.pack("<I", xid) + keyfile.encode() + b"\0"


def xfer_data(xid, data):
    return struct.pack("<IQ", xid, len(data)) + data


def device_info(entries):
    body = struct.pack("<I", len(entries))
    for channel, monitor, display, address in entries:
        addr = address.encode() + b"\0"
        body += struct.pack("<IIII", channel, monitor, display, len(addr)) + addr
    return body


VALID = [
    (MOUSE_STATE, mouse()),
    (MONITORS_CONFIG, monitors([(1024, 768, 0, 0), (1280, 1024, 1024, 0)])),
    (REPLY, struct.pack("<II", MONITORS_CONFIG, 1)),   # guest-only: dropped from the host
    (CLIPBOARD, clipboard(b"hello, world")),
    (DISPLAY_CONFIG, struct.pack("<II", 1, 24)),
    (ANNOUNCE_CAPABILITIES, struct.pack("<II", 1, 0x00038DE7)),
    (CLIPBOARD_GRAB, grab([UTF8_TEXT, IMAGE_PNG])),
    (CLIPBOARD_REQUEST, sel(1) + struct.pack("<I", UTF8_TEXT)),
    (CLIPBOARD_RELEASE, sel(1)),
    (FILE_XFER_START, xfer_start(1, "dir/a.txt", 5)),
    (FILE_XFER_STATUS, struct.pack("<II", 1, 0)),
    (FILE_XFER_DATA, xfer_data(1, b"abcde")),
    (CLIENT_DISCONNECTED, b""),
    (MAX_CLIPBOARD, struct.pack("<i", 100 * 1024 * 1024)),
    (AUDIO_VOLUME_SYNC, struct.pack("<BBBHH", 1, 0, 2, 0x8000, 0xffff)),
    (GRAPHICS_DEVICE_INFO, device_info([(0, 0, 1, "pci/0000/02.0"),
                                        (1, 0, 2, "pci/0000/00.0/03.0")])),
]

NAMES = {
    MOUSE_STATE: "mouse-state", MONITORS_CONFIG: "monitors-config", REPLY: "reply",
    CLIPBOARD: "clipboard", DISPLAY_CONFIG: "display-config",
    ANNOUNCE_CAPABILITIES: "announce-capabilities", CLIPBOARD_GRAB: "clipboard-grab",
    CLIPBOARD_REQUEST: "clipboard-request", CLIPBOARD_RELEASE: "clipboard-release",
    FILE_XFER_START: "file-xfer-start", FILE_XFER_STATUS: "file-xfer-status",
    FILE_XFER_DATA: "file-xfer-data", CLIENT_DISCONNECTED: "client-disconnected",
    MAX_CLIPBOARD: "max-clipboard", AUDIO_VOLUME_SYNC: "audio-volume-sync",
    GRAPHICS_DEVICE_INFO: "graphics-device-info",
}


def port_of(mtype):
    return PORT_OF.get(mtype, CLIENT)


def interleave(streams, size):
    """Chunks of `size` bytes taken from each port's stream in turn."""
    pos = {port: 0 for port in streams}
    out = b""
    while any(pos[p] < len(streams[p]) for p in streams):
        for port, data in streams.items():
            if pos[port] < len(data):
                out += chunk(port, data[pos[port]:pos[port] + size])
                pos[port] += size
    return out


def pattern(n, salt=0):
    return bytes((i * 131 + salt) & 0xff for i in range(n))


def corpus():
    files = {}

    # One file per type, whole message in one chunk, varied feed pieces.
    for i, (mtype, payload) in enumerate(VALID):
        name = "msg-%02d-%s" % (mtype, NAMES[mtype])
        files[name] = control(piece=i % 8) + chunk(port_of(mtype), msg(mtype, payload))

    # All types: per-port streams in 2048-byte chunks, and interleaved in
    # small chunks so headers are split and ports alternate mid-message.
    streams = {CLIENT: b"", SERVER: b""}
    for mtype, payload in VALID:
        streams[port_of(mtype)] += msg(mtype, payload)
    files["all-types-2048"] = control(piece=5) + b"".join(
        chunks(p, s) for p, s in streams.items())
    files["all-types-interleaved-7"] = control(piece=3) + interleave(streams, 7)
    files["all-types-interleaved-1"] = control(piece=0) + interleave(streams, 1)
    files["all-types-one-chunk-each-port"] = control(piece=6) + b"".join(
        chunk(p, s) for p, s in streams.items())

    # Headers split at a few offsets; a chunk ending one message and
    # starting the next.
    m = msg(CLIPBOARD_GRAB, grab([UTF8_TEXT]))
    for split in (1, 10, 19):
        files["header-split-%d" % split] = control() + chunk(CLIENT, m[:split]) + \
            chunk(CLIENT, m[split:])
    two = msg(CLIPBOARD_REQUEST, sel() + struct.pack("<I", 1)) + msg(CLIPBOARD_RELEASE, sel())
    files["chunk-ends-one-starts-next"] = control() + chunk(CLIENT, two[:35]) + \
        chunk(CLIENT, two[35:])

    # Layout variants.
    files["clipboard-no-selection"] = control(sel=False, serial=False) + chunk(
        CLIENT, msg(CLIPBOARD, clipboard(b"text", prefix=False)) +
        msg(CLIPBOARD_GRAB, struct.pack("<II", UTF8_TEXT, IMAGE_PNG)) +
        msg(CLIPBOARD_REQUEST, struct.pack("<I", UTF8_TEXT)) + msg(CLIPBOARD_RELEASE))
    files["grab-no-serial"] = control(sel=True, serial=False) + chunk(
        CLIENT, msg(CLIPBOARD_GRAB, sel(1) + struct.pack("<II", UTF8_TEXT, IMAGE_PNG)))

    # Monitors with PHYSICAL_SIZE.
    files["monitors-physical-size"] = control() + chunk(CLIENT, msg(
        MONITORS_CONFIG, monitors([(1920, 1080, 0, 0), (1280, 1024, 1920, 0)],
                                  flags=USE_POS | PHYSICAL_SIZE, mm=[(520, 290), (340, 270)])))
    files["monitors-disabled-entry"] = control() + chunk(CLIENT, msg(
        MONITORS_CONFIG, monitors([(1024, 768, 0, 0), (0, 0, 0, 0)])))

    # File transfer statuses with detail.
    files["xfer-status-detail"] = control() + chunk(
        CLIENT, msg(FILE_XFER_STATUS, struct.pack("<IIQ", 2, 4, 12345)) +
        msg(FILE_XFER_STATUS, struct.pack("<II", 3, 2) + struct.pack("<BI", 0, 12)) +
        msg(FILE_XFER_STATUS, struct.pack("<II", 4, 1)))

    # Streamed messages: threshold 64 (index 3) or 12 (index 2).
    big = msg(CLIPBOARD, clipboard(pattern(6000), ctype=IMAGE_PNG))
    files["clipboard-streamed"] = control(threshold=3, piece=4) + chunks(CLIENT, big)
    mice = b"".join(msg(MOUSE_STATE, mouse(x=i)) for i in range(4))
    files["clipboard-streamed-interleaved"] = control(threshold=3, piece=2) + interleave(
        {CLIENT: big, SERVER: mice}, 500)
    files["clipboard-stream-head-split"] = control(threshold=2, piece=0) + \
        chunk(CLIENT, big[:22]) + chunk(CLIENT, big[22:25]) + chunks(CLIENT, big[25:400])
    files["xfer-data-streamed"] = control(threshold=3, piece=5) + chunks(
        CLIENT, msg(FILE_XFER_DATA, xfer_data(7, pattern(5000, 3))))
    files["stream-exact-head"] = control(threshold=1) + chunk(
        CLIENT, msg(CLIPBOARD, clipboard(b"")))
    files["stream-shorter-than-head"] = control(threshold=0) + chunk(
        CLIENT, msg(CLIPBOARD, b"\0\0\0") + msg(FILE_XFER_DATA, b"\1" * 8))
    files["stream-cut-by-disconnect"] = control(threshold=3, piece=4) + \
        chunks(CLIENT, big[:3000]) + chunk(SERVER, msg(CLIENT_DISCONNECTED)) + \
        chunk(CLIENT, msg(CLIPBOARD_RELEASE, sel()))
    files["buffered-cut-by-disconnect"] = control() + \
        chunk(CLIENT, msg(CLIPBOARD_GRAB, grab([1, 2, 3]))[:25]) + \
        chunk(SERVER, msg(CLIENT_DISCONNECTED)) + chunk(CLIENT, msg(CLIPBOARD_RELEASE, sel()))

    # Drops: oversize, unknown types, bad protocol, wrong port / direction.
    files["oversize-mouse"] = control() + chunk(SERVER, msg(MOUSE_STATE, mouse() + b"\0") +
                                                msg(MOUSE_STATE, mouse()))
    files["oversize-clipboard-announced"] = control() + chunk(
        CLIENT, msg(CLIPBOARD, b"\0" * 100, size=0xffffffff))
    files["oversize-grab-then-valid"] = control(piece=3) + chunks(
        CLIENT, msg(CLIPBOARD_GRAB, grab([1] * 300)) + msg(CLIPBOARD_RELEASE, sel()), 300)
    files["unknown-types"] = control() + chunk(
        CLIENT, msg(0, b"abc") + msg(17, b"") + msg(0xffffffff, b"x" * 40) +
        msg(MAX_CLIPBOARD, struct.pack("<i", -1)))
    files["bad-protocol"] = control() + chunk(
        CLIENT, msg(CLIPBOARD_RELEASE, sel(), protocol=2) + msg(CLIPBOARD_RELEASE, sel()))
    files["wrong-port"] = control() + chunk(SERVER, msg(CLIPBOARD, clipboard(b"x"))) + \
        chunk(CLIENT, msg(MOUSE_STATE, mouse()))
    files["zero-size-chunks"] = control() + chunk(CLIENT, b"") + chunk(SERVER, b"") + \
        chunk(SERVER, msg(MOUSE_STATE, mouse())) + chunk(CLIENT, b"")

    # Framing errors (each followed by valid data, fed after the reset).
    good = chunk(CLIENT, msg(CLIPBOARD_RELEASE, sel()))
    files["bad-chunk-port-0"] = control(piece=0) + chunk(0, b"abc") + good
    files["bad-chunk-port-3"] = control(piece=0) + good + chunk(3, b"abc") + good
    files["chunk-too-large"] = control(piece=5) + chunk(CLIENT, b"\0" * 2049) + good

    # Truncations.
    files["truncated-chunk-header"] = control() + chunk(CLIENT, msg(CLIPBOARD_RELEASE,
                                                                    sel()))[:5]
    files["truncated-message"] = control() + chunk(CLIENT, msg(CLIPBOARD, clipboard(
        b"x" * 50))[:40])
    files["truncated-stream"] = control(threshold=3) + chunks(CLIENT, big[:2500])

    # Decoder errors in complete messages.
    files["decode-errors"] = control() + chunk(
        CLIENT,
        msg(MONITORS_CONFIG, struct.pack("<II", 3, 0) + b"\0" * 20) +       # count mismatch
        msg(CLIPBOARD_GRAB, sel() + struct.pack("<I", 1) + b"\1\0\0") +     # odd types
        msg(FILE_XFER_START, struct.pack("<I", 1) + b"name=x") +            # no NUL
        msg(AUDIO_VOLUME_SYNC, struct.pack("<BBBH", 1, 0, 9, 1)) +          # short volumes
        msg(CLIPBOARD_REQUEST, sel(7) + struct.pack("<I", 99)) +            # bad sel/type
        msg(FILE_XFER_DATA, struct.pack("<IQ", 1, 10) + b"abc") +           # size mismatch
        msg(ANNOUNCE_CAPABILITIES, b"\1\0")) + chunk(
        SERVER,
        msg(GRAPHICS_DEVICE_INFO, struct.pack("<IIIII", 1, 0, 0, 0, 100) + b"pci\0") +
        msg(MOUSE_STATE, b"\0" * 12))
    return files


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    files = corpus()
    for name, data in sorted(files.items()):
        assert len(data) <= 65536, name
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("wrote %d files to %s" % (len(files), out))


if __name__ == "__main__":
    main()
