#!/usr/bin/env python3
"""Measures the Charla window, or HexChat's, under Xvfb (run by scripts/bench-client.sh, which
starts Xvfb and the servers: charla-server for Charla, ngIRCd for HexChat): start to window
mapped, idle memory, key press to letter painted (idle and during a 10,000-line burst), the
burst's CPU and how long the window takes to take it all in.

Key to paint: a key is sent with XTEST, then a small region of the input box is read back with
GetImage, as fast as the X server answers, until it changes; the time between is the latency.
"""
import argparse
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

from Xlib import X, XK, display
from Xlib.ext import xtest


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def window_of(d, pid, deadline):
    """The top-level window of process `pid` once it is mapped; returns (window, when mapped)."""
    root = d.screen().root
    pid_atom = d.intern_atom("_NET_WM_PID")
    while time.monotonic() < deadline:
        while d.pending_events():
            event = d.next_event()
            if event.type == X.MapNotify:
                window = event.window
                try:
                    prop = window.get_full_property(pid_atom, X.AnyPropertyType)
                except Exception:
                    prop = None
                if prop is not None and prop.value and prop.value[0] == pid:
                    return window, time.monotonic()
        time.sleep(0.0005)
    raise SystemExit("the window was never mapped")


def wait_title(window, wanted, deadline):
    while time.monotonic() < deadline:
        name = window.get_wm_name()
        # "Charla: bench", or "Charla: bench in #general" from a server with rooms.
        if name == wanted or (name or "").startswith(wanted + " in #"):
            return
        time.sleep(0.005)
    raise SystemExit(f"the title never became {wanted!r}")


def irc_flood(port, channel, count):
    """A client of ngIRCd that sends `count` lines of 64 bytes to `channel` as fast as the server
    takes them, then quits and waits for the server to close: HexChat's burst."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with context.wrap_socket(socket.create_connection(("127.0.0.1", int(port)))) as s:
        s.sendall(f"NICK flood\r\nUSER flood 0 * :flood\r\nJOIN {channel}\r\n".encode())
        got = b""
        while b" 366 " not in got:  # the end of the channel's names: joined
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("ngIRCd closed the flooder's connection")
            got += chunk
        s.sendall("".join(f"PRIVMSG {channel} :{n:064d}\r\n" for n in range(count)).encode())
        s.sendall(b"QUIT\r\n")
        while s.recv(65536):
            pass


class Charla:
    """The Charla window, connected to charla-server as "bench", and its burst: `charla
    --headless` with the lines on its input."""

    def __init__(self, args):
        self.binary = args.charla
        self.config = tempfile.mkdtemp(prefix="charla-bench-client-")
        self.common = ["--host", "127.0.0.1", "--port", args.port, "--ca", args.ca, "--lang", "en"]
        self.rooms = ["--join", args.burst_room] if args.burst_room else []
        self.title = "Charla: bench"
        self.flood_config = None
        # The identity is made on the first run only: made here first, as a user's would be.
        subprocess.run([self.binary, "--show-identity", "--config-dir", self.config],
                       stdout=subprocess.DEVNULL, check=True)

    def start(self):
        return subprocess.Popen(
            [self.binary, "--connect", "--nick", "bench", "--config-dir", self.config]
            + self.common + self.rooms,
            stderr=subprocess.DEVNULL,
        )

    def input_region(self, geometry):
        # The input box: 8 px from the left, its text ~60 px above the bottom (ui/chat.slint).
        return 14, geometry.height - 70

    def flood(self, lines):
        self.flood_config = tempfile.mkdtemp(prefix="charla-flood-")
        flooder = subprocess.Popen(
            [self.binary, "--headless", "--nick", "flood", "--config-dir", self.flood_config]
            + self.common + self.rooms,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        flooder.stdin.write("".join(f"{n:064d}\n" for n in range(lines)).encode())
        flooder.stdin.close()
        return flooder


class HexChat:
    """HexChat 2.16 (GTK 2), connected to ngIRCd over TLS as "bench" in #charla, at Charla's
    default size; the cursor does not blink (it would change the probed region by itself). Run
    as "nobody" when we are root: HexChat stops at a dialog otherwise."""

    def __init__(self, args):
        self.binary = args.hexchat
        self.port = args.port
        self.channel = "#charla"
        self.config = tempfile.mkdtemp(prefix="hexchat-bench-client-")
        with open(os.path.join(self.config, "servlist.conf"), "w") as f:
            # F=46: the global nickname, TLS, connect at start, accept a certificate it cannot
            # check (the run's own, self-signed).
            f.write(f"v=2.16.1\n\nN=bench\nE=UTF-8 (Unicode)\nF=46\nD=0\n"
                    f"S=127.0.0.1/{args.port}\nJ={self.channel}\n\n")
        with open(os.path.join(self.config, "hexchat.conf"), "w") as f:
            f.write("version = 2.16.1\nirc_nick1 = bench\nirc_nick2 = bench_\n"
                    "irc_nick3 = bench__\nirc_user_name = bench\nirc_real_name = bench\n"
                    "gui_slist_skip = 1\ngui_join_dialog = 0\ngui_quit_dialog = 0\n"
                    "gui_tray = 0\nirc_logging = 0\ntext_replay = 0\ngui_win_width = 760\n"
                    "gui_win_height = 520\ngui_win_save = 0\ngui_input_spell = 0\n")
        with open(os.path.join(self.config, "gtkrc"), "w") as f:
            f.write("gtk-cursor-blink = 0\n")
        self.run_as = []
        if os.geteuid() == 0:
            os.chmod(self.config, 0o755)
            for name in os.listdir(self.config):
                os.chmod(os.path.join(self.config, name), 0o644)
                shutil.chown(os.path.join(self.config, name), "nobody")
            shutil.chown(self.config, "nobody")
            self.run_as = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        self.title = f"bench @ bench / {self.channel} - HexChat"

    def start(self):
        env = dict(os.environ, HOME=self.config,
                   GTK2_RC_FILES=os.path.join(self.config, "gtkrc"))
        # setpriv execs HexChat: the PID is HexChat's own.
        return subprocess.Popen(self.run_as + [self.binary, "-d", self.config], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def input_region(self, geometry):
        # The input box: right of the nickname button, its text ~20 px above the bottom.
        return 196, geometry.height - 22

    def flood(self, lines):
        return subprocess.Popen([sys.executable, __file__, "--irc-flood", self.port,
                                 self.channel, str(lines)])


class Probe:
    def __init__(self, d, window, client):
        self.d = d
        self.window = window
        self.x, self.y = client.input_region(window.get_geometry())
        self.w, self.h = 300, 16
        self.a = d.keysym_to_keycode(XK.string_to_keysym("a"))
        self.backspace = d.keysym_to_keycode(XK.string_to_keysym("BackSpace"))
        self.typed = 0

    def region(self):
        return self.window.get_image(self.x, self.y, self.w, self.h, X.ZPixmap, 0xFFFFFFFF).data

    def key(self, code):
        xtest.fake_input(self.d, X.KeyPress, code)
        xtest.fake_input(self.d, X.KeyRelease, code)
        self.d.sync()

    def clear(self):
        for _ in range(self.typed):
            self.key(self.backspace)
        self.typed = 0
        self.settle()

    def settle(self):
        """Waits until the region stops changing (the window has drawn what it had)."""
        last = self.region()
        still_since = time.monotonic()
        while time.monotonic() - still_since < 0.15:
            now = self.region()
            if now != last:
                last, still_since = now, time.monotonic()
            time.sleep(0.002)

    def one(self, timeout=1.0):
        """Milliseconds from one key press to the letter on screen; None if it never came."""
        if self.typed >= 30:
            self.clear()
        before = self.region()
        start = time.monotonic()
        self.key(self.a)
        self.typed += 1
        while True:
            elapsed = time.monotonic() - start
            if self.region() != before:
                return elapsed * 1000
            if elapsed > timeout:
                return None


def summary(samples):
    got = sorted(s for s in samples if s is not None)
    if not got:
        return {"n": 0, "missed": len(samples)}
    pick = lambda q: got[min(len(got) - 1, int(q * len(got)))]
    return {
        "n": len(got),
        "missed": len(samples) - len(got),
        "p50_ms": round(statistics.median(got), 2),
        "p90_ms": round(pick(0.9), 2),
        "max_ms": round(got[-1], 2),
    }


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--irc-flood":
        return irc_flood(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    p = argparse.ArgumentParser()
    p.add_argument("--client", choices=["charla", "hexchat"], default="charla")
    p.add_argument("--charla", default="target/release/charla")
    p.add_argument("--hexchat", default="hexchat")
    p.add_argument("--port", required=True)
    p.add_argument("--ca", help="the server's certificate (Charla)")
    p.add_argument("--keys", type=int, default=100)
    p.add_argument("--burst", type=int, default=10000)
    p.add_argument("--burst-room", help="the window is in this room too, but shows the default "
                   "one: the burst goes to the room not shown (issue 22.12; Charla only)")
    args = p.parse_args()

    d = display.Display()
    d.screen().root.change_attributes(event_mask=X.SubstructureNotifyMask)
    d.sync()
    client = Charla(args) if args.client == "charla" else HexChat(args)
    spawned = time.monotonic()
    window_process = client.start()
    try:
        window, mapped = window_of(d, window_process.pid, spawned + 30)
        start_ms = (mapped - spawned) * 1000
        wait_title(window, client.title, time.monotonic() + 30)
        window.set_input_focus(X.RevertToParent, X.CurrentTime)
        d.sync()
        probe = Probe(d, window, client)
        probe.settle()
        time.sleep(2)
        idle_rss = rss_kib(window_process.pid)

        idle = [probe.one() for _ in range(args.keys)]
        probe.clear()

        # The burst: a client sends --burst lines of 64 bytes as fast as the server relays them.
        cpu_before = cpu_seconds(window_process.pid)
        flood_started = time.monotonic()
        flooder = client.flood(args.burst)
        during = []
        while flooder.poll() is None and time.monotonic() - flood_started < 120:
            during.append(probe.one())
        # Then the window takes in what is left: settled once its CPU time stops moving.
        last_cpu, last_change = cpu_seconds(window_process.pid), time.monotonic()
        while time.monotonic() - last_change < 0.5:
            time.sleep(0.02)
            cpu = cpu_seconds(window_process.pid)
            if cpu != last_cpu:
                last_cpu, last_change = cpu, time.monotonic()
        settled_s = last_change - flood_started
        burst_cpu = cpu_seconds(window_process.pid) - cpu_before
        # The probe's keys during the burst cost the window some CPU too: as much as the same
        # number of keys costs without a burst, measured now, is taken off.
        probe.clear()
        cpu_before_keys = cpu_seconds(window_process.pid)
        keys_only = [probe.one() for _ in range(max(len(during), 20))]
        keys_cpu = (cpu_seconds(window_process.pid) - cpu_before_keys) * len(during) / len(keys_only)
        result = {
            "client": args.client,
            "start_to_mapped_ms": round(start_ms, 1),
            "idle_rss_kib": idle_rss,
            "key_to_paint_idle": summary(idle),
            "key_to_paint_during_burst": summary(during),
            "burst_lines": args.burst,
            "burst_into": args.burst_room or "the room shown",
            "burst_cpu_s": round(max(0.0, burst_cpu - keys_cpu), 3),
            "burst_cpu_with_probe_keys_s": round(burst_cpu, 3),
            "burst_settled_s": round(settled_s, 2),
        }
        print(json.dumps(result))
    finally:
        window_process.terminate()
        window_process.wait()
        for made in (client.config, getattr(client, "flood_config", None)):
            if made:
                shutil.rmtree(made, ignore_errors=True)


if __name__ == "__main__":
    main()
