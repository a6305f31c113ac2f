#!/usr/bin/env python3
"""Measures the Charla window under Xvfb (run by scripts/bench-client.sh, which starts Xvfb and a
server): start to window mapped, idle memory, key press to letter painted (idle and during a
10,000-line burst), the burst's CPU and how long the window takes to take it all in.

Key to paint: a key is sent with XTEST, then a small region of the input box is read back with
GetImage, as fast as the X server answers, until it changes; the time between is the latency.
"""
import argparse
import json
import os
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


class Probe:
    def __init__(self, d, window):
        self.d = d
        self.window = window
        geometry = window.get_geometry()
        # The input box: 8 px from the left, its text ~60 px above the bottom (ui/chat.slint).
        self.x, self.y = 14, geometry.height - 70
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
    p = argparse.ArgumentParser()
    p.add_argument("--charla", required=True)
    p.add_argument("--port", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--keys", type=int, default=100)
    p.add_argument("--burst", type=int, default=10000)
    p.add_argument("--burst-room", help="the window is in this room too, but shows the default "
                   "one: the burst goes to the room not shown (issue 22.12)")
    args = p.parse_args()

    d = display.Display()
    d.screen().root.change_attributes(event_mask=X.SubstructureNotifyMask)
    d.sync()
    config = tempfile.mkdtemp(prefix="charla-bench-client-")
    common = ["--host", "127.0.0.1", "--port", args.port, "--ca", args.ca, "--lang", "en"]
    # The identity is made on the first run only: made here first, as a user's would be.
    subprocess.run([args.charla, "--show-identity", "--config-dir", config],
                   stdout=subprocess.DEVNULL, check=True)
    spawned = time.monotonic()
    rooms = ["--join", args.burst_room] if args.burst_room else []
    charla = subprocess.Popen(
        [args.charla, "--connect", "--nick", "bench", "--config-dir", config] + common + rooms,
        stderr=subprocess.DEVNULL,
    )
    try:
        window, mapped = window_of(d, charla.pid, spawned + 30)
        start_ms = (mapped - spawned) * 1000
        wait_title(window, "Charla: bench", time.monotonic() + 30)
        window.set_input_focus(X.RevertToParent, X.CurrentTime)
        d.sync()
        probe = Probe(d, window)
        probe.settle()
        time.sleep(2)
        idle_rss = rss_kib(charla.pid)

        idle = [probe.one() for _ in range(args.keys)]
        probe.clear()

        # The burst: a client sends --burst lines of 64 bytes as fast as the server relays them.
        lines = "".join(f"{n:064d}\n" for n in range(args.burst))
        cpu_before = cpu_seconds(charla.pid)
        flood_started = time.monotonic()
        flooder = subprocess.Popen(
            [args.charla, "--headless", "--nick", "flood", "--config-dir",
             tempfile.mkdtemp(prefix="charla-flood-")] + common + rooms,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        flooder.stdin.write(lines.encode())
        flooder.stdin.close()
        during = []
        while flooder.poll() is None and time.monotonic() - flood_started < 120:
            during.append(probe.one())
        # Then the window takes in what is left: settled once its CPU time stops moving.
        last_cpu, last_change = cpu_seconds(charla.pid), time.monotonic()
        while time.monotonic() - last_change < 0.5:
            time.sleep(0.02)
            cpu = cpu_seconds(charla.pid)
            if cpu != last_cpu:
                last_cpu, last_change = cpu, time.monotonic()
        settled_s = last_change - flood_started
        burst_cpu = cpu_seconds(charla.pid) - cpu_before
        # The probe's keys during the burst cost the window some CPU too: as much as the same
        # number of keys costs without a burst, measured now, is taken off.
        probe.clear()
        cpu_before_keys = cpu_seconds(charla.pid)
        keys_only = [probe.one() for _ in range(max(len(during), 20))]
        keys_cpu = (cpu_seconds(charla.pid) - cpu_before_keys) * len(during) / len(keys_only)
        result = {
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
        charla.terminate()
        charla.wait()


if __name__ == "__main__":
    main()
