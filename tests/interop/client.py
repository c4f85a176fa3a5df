#!/usr/bin/python3
"""client.py - the interop scenarios, driven through spice-gtk (SpiceClientGLib
by GObject introspection; run with /usr/bin/python3) against spice-host, with
every effect checked in the guest X session (xrandr, xclip, the X pointer or
the daemon's fake-uinput events, files in the agent's save dir).

Each scenario prints one line "PASS|FAIL name (seconds): reason" and appends
one JSON object {"scenario", "result", "reason", "seconds"} to --results.

Threads: spice-gtk runs on the GLib main loop in a thread of its own; the
scenarios run in the main thread, call into spice-gtk only through on_loop()
and wait for its signals on a condition variable, so guest tools (xclip,
xrandr) may block without stalling the SPICE connection that serves them.
"""
import argparse
import base64
import ctypes
import hashlib
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
import zlib

import gi
gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import Gio, GLib, GObject  # noqa: E402
from gi.repository import SpiceClientGLib as Spice  # noqa: E402

# VDAgent constants (spice/vd_agent.h)
CAP_NAMES = {0: "mouse-state", 1: "monitors-config", 2: "reply", 3: "clipboard",
             4: "display-config", 5: "clipboard-by-demand", 6: "clipboard-selection",
             7: "sparse-monitors-config", 8: "guest-lineend-lf", 9: "guest-lineend-crlf",
             10: "max-clipboard", 11: "audio-volume-sync", 12: "monitors-config-position",
             13: "file-xfer-disabled", 14: "file-xfer-detailed-errors",
             15: "graphics-device-info", 16: "clipboard-no-release-on-regrab",
             17: "clipboard-grab-serial"}
NEEDED_CAPS = [0, 1, 2, 5, 6]
SEL_CLIPBOARD, SEL_PRIMARY = 0, 1
TYPE_UTF8, TYPE_PNG = 1, 2
MOUSE_MODE_CLIENT = 2

TEXT = "héllo wörld ✓ — ünïcödé 日本語 \U0001F600 end"
BIG_CLIPBOARD = 16 * 1024 * 1024


def now():
    return time.monotonic()


# ---------------------------------------------------------------- the loop
class Loop:
    def __init__(self):
        self.loop = GLib.MainLoop()
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()

    def call(self, fn, *args, timeout=30):
        """Run fn(*args) on the GLib loop, wait for its result."""
        box = {}
        done = threading.Event()

        def run():
            try:
                box["v"] = fn(*args)
            except Exception as e:  # re-raised in the caller's thread
                box["e"] = e
            done.set()
            return False
        GLib.idle_add(run)
        if not done.wait(timeout):
            raise TimeoutError("the GLib loop did not run %s within %d s" % (fn, timeout))
        if "e" in box:
            raise box["e"]
        return box.get("v")

    def stop(self):
        self.loop.quit()
        self.thread.join(5)


def gpointer_address(p):
    """The address in a gpointer signal argument. PyGObject wraps it in a
    GPointer object whose hash is the pointer value."""
    if p is None:
        return 0
    if isinstance(p, int):
        return p
    return hash(p) & ((1 << (8 * ctypes.sizeof(ctypes.c_void_p))) - 1)


# ---------------------------------------------------------------- client
class Client:
    """One spice-gtk session and what its signals told us."""

    def __init__(self, loop, uri):
        self.loop = loop
        self.uri = uri
        self.cond = threading.Condition()
        self.session = None
        self.main = None
        self.inputs = None
        self.agent_connected = False
        self.caps = 0
        self.mouse_mode = 0
        self.grabs = []          # (selection, [types]) from the guest
        self.releases = []       # selections the guest released
        self.clip_data = {}      # selection -> (type, bytes) the guest sent
        self.offers = {}         # selection -> (type, bytes) we offer
        self.served = []         # (selection, type, size) requests we answered
        self.main_closed = False
        self.xfers = {}          # key -> dict(progress, done, error)
        self.xfer_watch = None   # the transfer new tasks belong to

    # -- runs on the loop thread --
    def _connect(self):
        s = Spice.Session()
        s.set_property("uri", self.uri)
        # no sound, USB or smartcard: spice-host offers none
        for prop in ("enable-audio", "enable-usbredir", "enable-smartcard"):
            s.set_property(prop, False)
        GObject.Object.connect(s, "channel-new", self._channel_new)
        GObject.Object.connect(s, "channel-destroy", self._channel_destroy)
        self.session = s
        return Spice.Session.connect(s)

    def _channel_new(self, session, ch):
        if isinstance(ch, Spice.MainChannel):
            self.main = ch
            for prop in ("agent-connected", "agent-caps-0", "mouse-mode"):
                GObject.Object.connect(ch, "notify::" + prop, self._main_notify)
            GObject.Object.connect(ch, "main-clipboard-selection-grab", self._clip_grab)
            GObject.Object.connect(ch, "main-clipboard-selection-request", self._clip_request)
            GObject.Object.connect(ch, "main-clipboard-selection-release", self._clip_release)
            GObject.Object.connect(ch, "main-clipboard-selection", self._clip_data)
            GObject.Object.connect(ch, "channel-event", self._main_event)
            GObject.Object.connect(ch, "new-file-transfer", self._new_xfer)
            self._main_notify(ch, None)
        elif isinstance(ch, Spice.InputsChannel):
            self.inputs = ch
        # spice-gtk needs the channels opened by the application
        Spice.Channel.connect(ch)

    def _channel_destroy(self, session, ch):
        with self.cond:
            if ch is self.main:
                self.main_closed = True
            if ch is self.inputs:
                self.inputs = None
            self.cond.notify_all()

    def _main_event(self, ch, event):
        with self.cond:
            if event in (Spice.ChannelEvent.CLOSED, Spice.ChannelEvent.ERROR_CONNECT,
                         Spice.ChannelEvent.ERROR_IO, Spice.ChannelEvent.ERROR_LINK):
                self.main_closed = True
            self.cond.notify_all()

    def _main_notify(self, ch, pspec):
        with self.cond:
            self.agent_connected = bool(ch.get_property("agent-connected"))
            self.caps = sum(1 << i for i in range(32) if ch.agent_test_capability(i))
            self.mouse_mode = int(ch.get_property("mouse-mode"))
            self.cond.notify_all()

    def _clip_grab(self, ch, selection, types_p, ntypes, *rest):
        if isinstance(types_p, (list, tuple)):   # PyGObject applies the length annotation
            types = [int(t) for t in types_p]
        else:
            types = []
            addr = gpointer_address(types_p)
            if addr and 0 < ntypes < 64:
                types = list((ctypes.c_uint32 * ntypes).from_address(addr))
        with self.cond:
            self.grabs.append((selection, types))
            self.cond.notify_all()
        return True

    def _clip_request(self, ch, selection, ctype, *rest):
        offer = self.offers.get(selection)
        if offer is None or offer[0] != ctype:
            return False
        data = offer[1]

        def answer():
            ch.clipboard_selection_notify(selection, ctype, data)
            with self.cond:
                self.served.append((selection, ctype, len(data)))
                self.cond.notify_all()
            return False
        GLib.idle_add(answer, priority=GLib.PRIORITY_HIGH)
        return True

    def _new_xfer(self, ch, task, *rest):
        """Every file of a copy becomes a task; the progress callback of
        file_copy_async is not called through introspection here, so
        progress and cancellation go through the task."""
        st = self.xfer_watch
        if st is None:
            return

        def progress(t, pspec):
            n = t.get_transferred_bytes()
            if os.environ.get("INTEROP_DEBUG"):
                print("%.3f progress %d" % (now(), n), flush=True)
            with self.cond:
                st["progress"] = max(st["progress"], n)
                st["total"] = t.get_total_bytes()
                if st["cancel_at"] is not None and n >= st["cancel_at"] and st["cancelled_at"] is None:
                    st["cancelled_at"] = n
                    # ahead of the copy's own I/O callbacks
                    cancellable = st["cancellable"]
                    GLib.idle_add(lambda: cancellable.cancel() and False, priority=GLib.PRIORITY_HIGH)
                self.cond.notify_all()
        GObject.Object.connect(task, "notify::transferred-bytes", progress)

    def _clip_release(self, ch, selection, *rest):
        with self.cond:
            self.releases.append(selection)
            self.cond.notify_all()

    def _clip_data(self, ch, selection, ctype, data_p, size, *rest):
        if isinstance(data_p, (bytes, bytearray)):   # PyGObject applies the size annotation
            data = bytes(data_p[:size])
        else:
            addr = gpointer_address(data_p)
            data = ctypes.string_at(addr, size) if addr and size else b""
        with self.cond:
            self.clip_data[selection] = (ctype, data)
            self.cond.notify_all()

    # -- called from the scenario thread --
    def wait(self, pred, secs):
        end = now() + secs
        with self.cond:
            while not pred():
                left = end - now()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
            return True

    def connect(self):
        self.main_closed = False
        self.main = None
        self.agent_connected = False
        self.mouse_mode = 0
        ok = self.loop.call(self._connect)
        if not ok:
            raise RuntimeError("spice_session_connect returned FALSE")

    def disconnect(self):
        s = self.session
        self.loop.call(lambda: s.disconnect())
        closed = self.wait(lambda: self.main_closed, 10)
        self.session = None
        self.inputs = None
        return closed

    def caps_names(self):
        return [CAP_NAMES.get(i, str(i)) for i in range(32) if self.caps & (1 << i)]

    def set_monitors(self, mons, max_id=4):
        """mons: list of (w, h, x, y) for displays 0..n-1; others disabled."""
        m = self.main

        def run():
            for i in range(max_id):
                if i < len(mons):
                    w, h, x, y = mons[i]
                    m.update_display(i, x, y, w, h, False)
                    m.update_display_enabled(i, True, False)
                else:
                    m.update_display_enabled(i, False, False)
            return m.send_monitor_config()
        return self.loop.call(run)

    def position(self, x, y, display=0):
        def run():
            if self.inputs is None:
                return False
            self.inputs.position(x, y, display, 0)
            return True
        return self.loop.call(run)

    def grab(self, selection, ctype, data):
        self.offers[selection] = (ctype, data)
        m = self.main
        return self.loop.call(lambda: m.clipboard_selection_grab(selection, [ctype]))

    def release(self, selection):
        self.offers.pop(selection, None)
        m = self.main
        return self.loop.call(lambda: m.clipboard_selection_release(selection))

    def request(self, selection, ctype):
        with self.cond:
            self.clip_data.pop(selection, None)
        m = self.main
        self.loop.call(lambda: m.clipboard_selection_request(selection, ctype))

    def file_copy(self, key, paths, cancel_at=None):
        """Start a transfer of paths; state in self.xfers[key]. cancel_at:
        cancel once this many bytes have been sent."""
        st = {"progress": 0, "total": 0, "done": False, "error": None, "cancelled_at": None,
              "cancel_at": cancel_at}
        self.xfers[key] = st
        self.xfer_watch = st
        cancellable = Gio.Cancellable()
        st["cancellable"] = cancellable
        m = self.main

        def finished(src, res, *rest):
            err = None
            try:
                m.file_copy_finish(res)
            except GLib.Error as e:
                err = e
            if os.environ.get("INTEROP_DEBUG"):
                print("%.3f done" % now(), flush=True)
            with self.cond:
                st["done"] = True
                st["error"] = err
                self.cond.notify_all()

        def run():
            files = [Gio.File.new_for_path(p) for p in paths]
            m.file_copy_async(files, Gio.FileCopyFlags.NONE, cancellable, None, None,
                              finished, None)
        self.loop.call(run)
        return st


# ---------------------------------------------------------------- the guest
class Guest:
    def __init__(self, args):
        self.display = args.display
        self.save_dir = args.save_dir
        self.mouse = args.mouse
        self.env = dict(os.environ, DISPLAY=args.display)
        self.xclips = []

    def run(self, argv, secs=10, data=None):
        return subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=self.env, timeout=secs)

    def layout(self):
        try:
            r = self.run(["xrandr", "--query"])
        except subprocess.TimeoutExpired:
            return "xrandr timed out"
        out = []
        for line in r.stdout.decode(errors="replace").splitlines():
            m = re.match(r"^(\S+) (?:dis)?connected (?:primary )?(\d+x\d+\+-?\d+\+-?\d+)", line)
            if m:
                out.append("%s %s" % (m.group(1), m.group(2)))
        return ", ".join(sorted(out))

    def paste(self, selection, target, secs=15):
        try:
            r = self.run(["xclip", "-o", "-selection", selection, "-t", target], secs)
        except subprocess.TimeoutExpired:
            return None, "xclip -o timed out after %d s" % secs
        if r.returncode != 0:
            return None, "xclip -o: %s" % r.stderr.decode(errors="replace").strip()[:200]
        return r.stdout, ""

    def copy(self, selection, target, data):
        """xclip -i in the foreground (-quiet): it owns the selection until
        something else takes it or we kill it."""
        p = subprocess.Popen(["xclip", "-quiet", "-i", "-selection", selection, "-t", target],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=self.env)
        self.xclips.append(p)
        p.stdin.write(data)
        p.stdin.close()
        return p

    def stop_xclips(self):
        for p in self.xclips:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.xclips = []

    def pointer(self):
        """(x, y) the guest pointer is at, for this flavour's mouse path."""
        if self.mouse == "xquery":
            try:
                r = self.run(["xdotool", "getmouselocation", "--shell"])
            except subprocess.TimeoutExpired:
                return None
            vals = dict(l.split("=", 1) for l in r.stdout.decode().split() if "=" in l)
            try:
                return int(vals["X"]), int(vals["Y"])
            except (KeyError, ValueError):
                return None
        # fifo:FILE - the last ABS_X and ABS_Y the daemon wrote
        path = self.mouse.split(":", 1)[1]
        x = y = None
        try:
            with open(path) as f:
                for line in f:
                    p = line.split()
                    if len(p) == 3 and p[0] == "EV_ABS":
                        if p[1] == "ABS_X":
                            x = int(p[2])
                        elif p[1] == "ABS_Y":
                            y = int(p[2])
        except OSError:
            return None
        return None if x is None or y is None else (x, y)

    def saved(self, name):
        return os.path.join(self.save_dir, name)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def make_file(path, size, seed):
    """size bytes of pseudo-random data (fast: a hash chain in 1 MiB blocks)."""
    block = hashlib.sha512(seed.encode()).digest() * (1 << 14)   # 1 MiB
    with open(path, "wb") as f:
        left, i = size, 0
        while left > 0:
            b = hashlib.sha512(b"%d" % i).digest() + block[64:]
            f.write(b[:min(left, len(b))])
            left -= len(b)
            i += 1
    return sha256_file(path)


def png_encode(w, h, seed=0):
    rows = bytearray()
    for y in range(h):
        rows.append(0)
        for x in range(w):
            rows += bytes(((x * 7 + y * 3 + seed) & 0xff, (x * y) & 0xff, (x + 40) & 0xff))
    rows = bytes(rows)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def png_pixels(data):
    """(w, h, RGB bytes) of an 8-bit, non-interlaced RGB or RGBA PNG; raises
    ValueError otherwise. Enough to compare images an agent may re-encode."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, hdr = 8, b"", None
    while pos + 8 <= len(data):
        n, t = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if t == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif t == b"IDAT":
            idat += body
        elif t == b"IEND":
            break
        pos += 12 + n
    if hdr is None:
        raise ValueError("no IHDR")
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError("PNG depth %d colour type %d interlace %d not handled" % (depth, ctype, interlace))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    out = bytearray()
    prev = bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xff
            elif f == 2:
                line[i] = (line[i] + b) & 0xff
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xff
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 0xff
        prev = line
        if bpp == 4:
            out += b"".join(bytes(line[i:i + 3]) for i in range(0, stride, 4))
        else:
            out += line
    return w, h, bytes(out)


def big_text(size):
    """size bytes of printable ASCII lines, different every run."""
    chunk = base64.b64encode(os.urandom(3 * 1024 * 64))  # 256 KiB
    lines = b"\n".join(chunk[i:i + 76] for i in range(0, len(chunk), 76)) + b"\n"
    out = (lines * (size // len(lines) + 1))[:size]
    return out


# ---------------------------------------------------------------- scenarios
class Fail(Exception):
    pass


class Runner:
    def __init__(self, args):
        self.args = args
        self.loop = Loop()
        self.client = Client(self.loop, "spice://127.0.0.1:%d" % args.port)
        self.guest = Guest(args)
        self.tmp = args.tmp
        self.start = now()
        self.failed = 0
        self.results = open(args.results, "a", buffering=1)

    def left(self):
        return self.args.deadline - (now() - self.start)

    def report(self, name, ok, reason, secs):
        line = {"scenario": name, "result": "PASS" if ok else "FAIL",
                "reason": reason, "seconds": round(secs, 2)}
        self.results.write(json.dumps(line, ensure_ascii=False) + "\n")
        print("%s %s (%.1f s): %s" % (line["result"], name, secs, reason), flush=True)
        if not ok:
            self.failed += 1

    def scenario(self, name, fn, need=0):
        if self.left() < need:
            self.report(name, False, "not run: %.0f s left of the client's budget" % self.left(), 0)
            return
        t0 = now()
        try:
            reason = fn()
            ok = True
        except Fail as e:
            ok, reason = False, str(e)
        except Exception as e:  # a bug here or a spice-gtk error: a failure, with its trace
            ok, reason = False, "%s: %s" % (type(e).__name__, e)
            traceback.print_exc()
        self.guest.stop_xclips()
        self.report(name, ok, reason, now() - t0)

    # -- connection --
    def s_agent(self):
        c = self.client
        if c.session is None:
            c.connect()
        end = now() + 30
        while now() < end:
            if c.main is not None:
                self.loop.call(c._main_notify, c.main, None)
            if c.agent_connected and c.caps:
                break
            time.sleep(0.2)
        else:
            raise Fail("agent-connected is %s, capabilities 0x%x after 30 s"
                       % (c.agent_connected, c.caps))
        missing = [CAP_NAMES[i] for i in NEEDED_CAPS if not c.caps & (1 << i)]
        if missing:
            raise Fail("capabilities %s lack %s" % (",".join(c.caps_names()), ",".join(missing)))
        return "connected; capabilities 0x%x: %s" % (c.caps, ",".join(c.caps_names()))

    def s_mouse_mode(self):
        c = self.client
        if not c.wait(lambda: c.mouse_mode == MOUSE_MODE_CLIENT, 15):
            raise Fail("mouse-mode is %d (want 2, client) after 15 s" % c.mouse_mode)
        return "mouse-mode 2 (client)"

    def move_and_check(self, x, y, display, want, secs=15):
        """Send the position until the guest pointer is at want (the agent
        may not have reported its layout yet when the first one arrives)."""
        c, g = self.client, self.guest
        end = now() + secs
        got, sent = None, 0
        while now() < end:
            if not c.wait(lambda: c.inputs is not None, 5):
                raise Fail("no inputs channel")
            c.position(x, y, display)
            sent += 1
            t = now() + 1.0
            while now() < t:
                got = g.pointer()
                if got == want:
                    return sent
                time.sleep(0.1)
        raise Fail("pointer at %s, want %s after %d position messages (%s)"
                   % (got, want, sent, self.args.mouse.split(":")[0]))

    def s_mouse_motion(self):
        if self.client.mouse_mode != MOUSE_MODE_CLIENT:
            raise Fail("not in client mouse mode")
        n1 = self.move_and_check(321, 234, 0, (321, 234))
        n2 = self.move_and_check(17, 601, 0, (17, 601))
        return "position (321,234) then (17,601) on display 0 reached the guest pointer (%d+%d messages)" % (n1, n2)

    def monitors(self, mons, want, secs=20):
        g = self.guest
        if not self.client.set_monitors(mons):
            raise Fail("send_monitor_config returned FALSE")
        end = now() + secs
        got = g.layout()
        while now() < end:
            got = g.layout()
            if got == want:
                return
            time.sleep(0.2)
        raise Fail("xrandr shows [%s], want [%s] after %d s" % (got, want, secs))

    def s_monitors_one(self):
        self.monitors([(1280, 800, 0, 0)], "DUMMY0 1280x800+0+0")
        return "1280x800 -> xrandr DUMMY0 1280x800+0+0"

    def s_monitors_odd(self):
        # a common laptop width that is not a multiple of 8
        self.monitors([(1366, 768, 0, 0)], "DUMMY0 1366x768+0+0")
        return "1366x768 -> xrandr DUMMY0 1366x768+0+0"

    def s_monitors_two(self):
        self.monitors([(1280, 800, 0, 0), (1024, 768, 1280, 0)],
                      "DUMMY0 1280x800+0+0, DUMMY1 1024x768+1280+0")
        # the pointer on display 1: its x offset is added by the guest
        n = self.move_and_check(10, 20, 1, (1290, 20))
        return ("1280x800+0+0 and 1024x768+1280+0 applied; position (10,20) on display 1 "
                "reached (1290,20) (%d messages)" % n)

    # -- clipboard --
    def h2g(self, sel, target, ctype, data, secs=20, compare=None):
        c, g = self.client, self.guest
        selname = "clipboard" if sel == SEL_CLIPBOARD else "primary"
        c.grab(sel, ctype, data)
        end = now() + secs
        got, err = None, ""
        while now() < end:
            got, err = g.paste(selname, target, max(5, int(end - now())))
            if got is not None:
                if compare(got) if compare else got == data:
                    return
                err = "xclip -o gave %d bytes that differ" % len(got)
            time.sleep(0.2)
        raise Fail("guest paste of %s as %s: %s" % (selname, target, err or "nothing"))

    def g2h(self, sel, target, ctype, data, secs=20):
        c, g = self.client, self.guest
        selname = "clipboard" if sel == SEL_CLIPBOARD else "primary"
        n0 = len(c.grabs)
        g.copy(selname, target, data)
        if not c.wait(lambda: any(s == sel and ctype in t for s, t in c.grabs[n0:]), secs):
            raise Fail("no grab of %s with type %d from the guest (grabs: %s)"
                       % (selname, ctype, c.grabs[n0:]))
        c.request(sel, ctype)
        if not c.wait(lambda: sel in c.clip_data, secs):
            raise Fail("no %s data from the guest within %d s" % (selname, secs))
        return c.clip_data[sel]

    def s_clip_h2g_text(self):
        self.h2g(SEL_CLIPBOARD, "UTF8_STRING", TYPE_UTF8, TEXT.encode())
        return "CLIPBOARD %r pasted in the guest" % TEXT

    def s_clip_h2g_primary(self):
        t = TEXT + " (primary)"
        self.h2g(SEL_PRIMARY, "UTF8_STRING", TYPE_UTF8, t.encode())
        return "PRIMARY pasted in the guest"

    def s_clip_g2h_text(self):
        t = "from the guest: " + TEXT
        ctype, got = self.g2h(SEL_CLIPBOARD, "UTF8_STRING", TYPE_UTF8, t.encode())
        if got.rstrip(b"\0") != t.encode():
            raise Fail("got %r (type %d), want %r" % (got[:100], ctype, t))
        return "guest CLIPBOARD arrived (%d bytes, UTF-8)" % len(got)

    def s_clip_g2h_primary(self):
        t = "guest primary: " + TEXT
        ctype, got = self.g2h(SEL_PRIMARY, "UTF8_STRING", TYPE_UTF8, t.encode())
        if got.rstrip(b"\0") != t.encode():
            raise Fail("got %r (type %d), want %r" % (got[:100], ctype, t))
        return "guest PRIMARY arrived"

    def s_clip_h2g_image(self):
        png = png_encode(64, 48, 1)
        want = png_pixels(png)

        def same(got):
            try:
                return png_pixels(got) == want
            except (ValueError, zlib.error):
                return False
        self.h2g(SEL_CLIPBOARD, "image/png", TYPE_PNG, png, compare=same)
        return "64x48 PNG pasted in the guest as image/png with the same pixels"

    def s_clip_g2h_image(self):
        png = png_encode(40, 30, 2)
        ctype, got = self.g2h(SEL_CLIPBOARD, "image/png", TYPE_PNG, png)
        try:
            same = png_pixels(got) == png_pixels(png)
        except (ValueError, zlib.error) as e:
            raise Fail("guest image (type %d, %d bytes) does not decode: %s" % (ctype, len(got), e))
        if not same:
            raise Fail("guest image has other pixels")
        return "40x30 PNG from the guest, same pixels (%d bytes)" % len(got)

    def s_clip_h2g_big(self):
        data = big_text(BIG_CLIPBOARD)
        t0 = now()
        self.h2g(SEL_CLIPBOARD, "UTF8_STRING", TYPE_UTF8, data, secs=90)
        return "16 MiB pasted in the guest, same sha256, %.1f s" % (now() - t0)

    def s_clip_g2h_big(self):
        data = big_text(BIG_CLIPBOARD)
        t0 = now()
        ctype, got = self.g2h(SEL_CLIPBOARD, "UTF8_STRING", TYPE_UTF8, data, secs=90)
        if got.rstrip(b"\0") != data:
            raise Fail("got %d bytes (sha256 %s), want %d" % (len(got), hashlib.sha256(got).hexdigest()[:16], len(data)))
        return "16 MiB from the guest, same sha256, %.1f s" % (now() - t0)

    # -- files --
    def transfer(self, key, specs, secs):
        """specs: [(name, size)]; returns seconds; checks every file."""
        c, g = self.client, self.guest
        paths, sums = [], {}
        for i, (name, size) in enumerate(specs):
            p = os.path.join(self.tmp, name)
            sums[name] = make_file(p, size, "%s-%d" % (key, i))
            paths.append(p)
        t0 = now()
        st = c.file_copy(key, paths)
        if not c.wait(lambda: st["done"], secs):
            raise Fail("transfer not finished after %d s (%d of %d bytes)" % (secs, st["progress"], st["total"]))
        took = now() - t0
        if st["error"] is not None:
            raise Fail("file_copy_finish: %s" % st["error"].message)
        for name, size in specs:
            dst = g.saved(name)
            end = now() + 10
            while now() < end and not (os.path.exists(dst) and os.path.getsize(dst) == size):
                time.sleep(0.1)
            if not os.path.exists(dst):
                raise Fail("%s missing in the save dir (%s)" % (name, sorted(os.listdir(g.save_dir))))
            if os.path.getsize(dst) != size or sha256_file(dst) != sums[name]:
                raise Fail("%s differs: %d bytes, want %d" % (name, os.path.getsize(dst), size))
        for p in paths:
            os.unlink(p)
        return took

    def s_file_1m(self):
        t = self.transfer("f1", [("interop-1MiB.bin", 1 << 20)], 60)
        return "1 MiB, same sha256, %.2f s" % t

    def s_file_256m(self):
        size = 256 << 20
        t = self.transfer("f256", [("interop-256MiB.bin", size)], max(30, self.left() - 60))
        return "256 MiB, same sha256, %.1f s (%.1f MiB/s)" % (t, 256 / t)

    def s_file_multi(self):
        specs = [("multi-a.bin", 3 << 20), ("multi-b.txt", 300 * 1024 + 7), ("multi-c.bin", 1)]
        t = self.transfer("fm", specs, 60)
        return "3 files in one copy (3 MiB, 300 KiB+7, 1 byte), all same sha256, %.2f s" % t

    def s_file_cancel(self):
        c, g = self.client, self.guest
        name, size = "interop-cancel.bin", 64 << 20
        p = os.path.join(self.tmp, name)
        want = make_file(p, size, "cancel")
        st = c.file_copy("fc", [p], cancel_at=4 << 20)
        if not c.wait(lambda: st["done"], 60):
            raise Fail("the cancelled transfer did not end within 60 s (%d bytes sent)" % st["progress"])
        err = st["error"]
        if err is None:
            raise Fail("the transfer completed although it was cancelled at %s bytes" % st["cancelled_at"])
        if not err.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED):
            raise Fail("ended with %s, not G_IO_ERROR_CANCELLED" % err.message)
        # The data stopped: whatever is in the guest is not the whole file
        # (the agents size the file to the announced length at START).
        dst = g.saved(name)
        time.sleep(1.0)
        if os.path.exists(dst) and sha256_file(dst) == want:
            raise Fail("the whole file arrived in the guest although the copy was cancelled at %d bytes"
                       % st["cancelled_at"])
        os.unlink(p)
        # spice-gtk 0.42 queues FILE_XFER_STATUS(CANCELLED) but sends it only
        # with the main channel's next message (docs/INTEROP.md): the next
        # copy carries it to the agent, which must then drop the partial file.
        t = self.transfer("fc2", [("after-cancel.bin", 1 << 20)], 60)
        end = now() + 10
        while now() < end and os.path.exists(dst):
            time.sleep(0.1)
        if os.path.exists(dst):
            raise Fail("the partial %s is still in the save dir (%d bytes) 10 s after the "
                       "client's CANCELLED status went out with the next copy"
                       % (name, os.path.getsize(dst)))
        return ("cancelled at %.1f MiB of %d: G_IO_ERROR_CANCELLED; the guest dropped the partial "
                "file; a 1 MiB copy after it arrived intact (%.2f s)"
                % (st["cancelled_at"] / 2**20, size >> 20, t))

    # -- the guest port closes and opens again --
    def s_guest_port(self):
        c = self.client
        if not self.args.host_pid:
            raise Fail("no --host-pid to signal")
        os.kill(self.args.host_pid, signal.SIGUSR1)
        if not c.wait(lambda: not c.agent_connected, 10):
            raise Fail("agent-connected still true 10 s after spice-host closed the guest port")
        t0 = now()
        end = now() + 30
        while now() < end:
            self.loop.call(c._main_notify, c.main, None)
            if c.agent_connected and c.caps:
                break
            time.sleep(0.2)
        else:
            raise Fail("the agent did not come back within 30 s of the port closing")
        back = now() - t0
        self.s_mouse_mode()
        self.move_and_check(400, 300, 0, (400, 300))
        self.h2g(SEL_CLIPBOARD, "UTF8_STRING", TYPE_UTF8, "after the port came back ✓".encode())
        t = self.transfer("fp", [("after-port.bin", 1 << 20)], 60)
        return ("the client saw the agent leave and come back after %.1f s; mouse, clipboard and "
                "a 1 MiB file (%.2f s) work again" % (back, t))

    # -- reconnect --
    def s_reconnect(self):
        c, g = self.client, self.guest
        done, failed = [], []

        def step(what, fn):
            try:
                r = fn()
                done.append(what if r is None else "%s (%s)" % (what, r))
            except Fail as e:
                failed.append("%s: %s" % (what, e))

        # the host owns CLIPBOARD when it leaves
        self.h2g(SEL_CLIPBOARD, "UTF8_STRING", TYPE_UTF8, b"owned by the old client")
        if not c.disconnect():
            raise Fail("the main channel did not close within 10 s of disconnect")

        def released():
            end = now() + 10
            while now() < end:
                got, _ = g.paste("clipboard", "UTF8_STRING", 5)
                if got != b"owned by the old client":
                    return
                time.sleep(0.2)
            raise Fail("the guest still pastes the old client's clipboard 10 s after it left")
        step("old client's clipboard released in the guest", released)

        c.connect()
        try:
            self.s_agent()
        except Fail as e:
            raise Fail("after reconnecting: %s; before: %s" % (e, "; ".join(done + failed)))
        done.append("agent connected with its capabilities")
        step("client mouse mode", self.s_mouse_mode)
        step("mouse", lambda: self.move_and_check(200, 100, 0, (200, 100)) and None)
        step("monitors 1024x768", lambda: self.monitors([(1024, 768, 0, 0)], "DUMMY0 1024x768+0+0", 15))
        step("clipboard to the guest",
             lambda: self.h2g(SEL_CLIPBOARD, "UTF8_STRING", TYPE_UTF8, "again ✓".encode()))

        def g2h():
            ctype, got = self.g2h(SEL_CLIPBOARD, "UTF8_STRING", TYPE_UTF8, "guest again ✓".encode())
            if got.rstrip(b"\0") != "guest again ✓".encode():
                raise Fail("got %r" % got[:80])
        step("clipboard from the guest", g2h)
        step("1 MiB file", lambda: "%.2f s" % self.transfer("fr", [("after-reconnect.bin", 1 << 20)], 60))
        if failed:
            raise Fail("; ".join(failed) + " (worked: " + ", ".join(done) + ")")
        return "after reconnecting: " + ", ".join(done)


SCENARIOS = [
    # name, method, seconds it needs at least
    ("agent-connected", "s_agent", 30),
    ("mouse-mode", "s_mouse_mode", 15),
    ("mouse-motion", "s_mouse_motion", 15),
    ("monitors-one", "s_monitors_one", 20),
    ("monitors-odd-width", "s_monitors_odd", 20),
    ("monitors-two", "s_monitors_two", 20),
    ("clipboard-h2g-text", "s_clip_h2g_text", 20),
    ("clipboard-g2h-text", "s_clip_g2h_text", 20),
    ("clipboard-h2g-primary", "s_clip_h2g_primary", 20),
    ("clipboard-g2h-primary", "s_clip_g2h_primary", 20),
    ("clipboard-h2g-image", "s_clip_h2g_image", 20),
    ("clipboard-g2h-image", "s_clip_g2h_image", 20),
    ("clipboard-h2g-16mib", "s_clip_h2g_big", 60),
    ("clipboard-g2h-16mib", "s_clip_g2h_big", 60),
    ("file-1mib", "s_file_1m", 20),
    ("file-multi", "s_file_multi", 20),
    ("file-cancel", "s_file_cancel", 30),
    ("file-256mib", "s_file_256m", 60),
    ("guest-port-reopen", "s_guest_port", 40),
    ("reconnect", "s_reconnect", 40),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--display", required=True)
    ap.add_argument("--save-dir", required=True)
    ap.add_argument("--flavour", default="ours")
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--mouse", default="xquery", help="xquery or fifo:EVENTS_FILE")
    ap.add_argument("--deadline", type=float, default=220, help="seconds for all scenarios")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--host-pid", type=int, default=0, help="spice-host, for SIGUSR1")
    args = ap.parse_args()
    r = Runner(args)
    only = set(filter(None, args.only.split(",")))
    try:
        for name, meth, need in SCENARIOS:
            if only and name not in only and name != "agent-connected":
                continue
            r.scenario(name, getattr(r, meth), need)
    finally:
        r.guest.stop_xclips()
        try:
            if r.client.session is not None:
                r.client.disconnect()
        except Exception:
            pass
        r.loop.stop()
    print("%s: %d scenario(s) failed" % (args.flavour, r.failed) if r.failed
          else "%s: all scenarios passed" % args.flavour, flush=True)
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
