"""page_check.py URL LIVE_ID SEED_A SEED_B ALONE SHARED ALONE_N OVERLAY_N ARTEFACTS CHANGE: `bodhi serve`'s pages as
Debian's headless Chromium draws them, driven over the DevTools protocol on a pipe
(--remote-debugging-pipe: JSON messages ended by a NUL byte, on descriptors 3 and 4).
- the run list shows the live run LIVE_ID with its agent and a curve, and SEED_A and SEED_B
  as one sweep ("2 seeds"), ALONE as none;
- the live run's page draws the agent's mean_return curve, and that curve GROWS while the
  run trains (points counted by the page itself, data-points, a few seconds apart), and it
  lists CHANGE (KEY=VALUE), which `bodhi set` made to the live run, with its update;
- SEED_A and SEED_B overlaid with "mean" are one line, the mean of 2 at the SHARED steps
  both reached, and ALONE (ALONE_N updates) beside them stays a line of its own; with
  "mean" unticked the three are three lines, OVERLAY_N points in all;
- nothing is fetched from anywhere but the server (the pages work offline).
Screenshots of each page go to ARTEFACTS/serve-*.png. Exit 0 when all hold; 1 with the
first failure. Every wait is bounded; the browser and its profile folder go at the end."""
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

CHROMIUM = "/usr/bin/chromium"


def high(fd):
    """fd moved to a descriptor of 10 or more."""
    out = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return out


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="bd-chromium-", dir="/tmp")
        cmd_r, self.cmd_w = os.pipe()
        self.res_r, res_w = os.pipe()
        cmd_r, res_w = (high(fd) for fd in (cmd_r, res_w))  # neither is 3 or 4 then
        args = [CHROMIUM, "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--disable-dev-shm-usage", "--window-size=1280,1000", "--remote-debugging-pipe",
                "--user-data-dir=" + self.profile]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium's sandbox refuses to run as root
        # the pipe's ends on 3 (commands in) and 4 (answers out), as Chromium wants them
        shell = " ".join(args) + f" about:blank 3<&{cmd_r} 4>&{res_w} {cmd_r}<&- {res_w}>&-"
        self.proc = subprocess.Popen(["/bin/bash", "-c", "exec " + shell], pass_fds=(cmd_r, res_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(cmd_r)
        os.close(res_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.session = None

    def send(self, method, params=None, timeout=30.0, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            for m in self.messages(end):
                if m.get("id") == self.next_id:
                    if "error" in m:
                        raise RuntimeError(f"{method}: {m['error']}")
                    return m.get("result", {})
                self.events.append(m)

    def messages(self, end):
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError("Chromium did not answer in time")
        r, _, _ = select.select([self.res_r], [], [], left)
        if r:
            chunk = os.read(self.res_r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium ended")
            self.buf += chunk
        out = []
        while b"\0" in self.buf:
            one, self.buf = self.buf.split(b"\0", 1)
            out.append(json.loads(one))
        return out

    def open_page(self):
        targets = self.send("Target.getTargets", session=False)["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        self.send("Page.enable")
        self.send("Network.enable")

    def go(self, url):
        self.send("Page.navigate", {"url": url})

    def js(self, expr):
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        return r.get("result", {}).get("value")

    def wait(self, expr, what, timeout=60.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = self.js(expr)
            if v:
                return v
            time.sleep(0.25)
        fail(f"{what}: not within {timeout:.0f} s")

    def shot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def fetched(self):
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self):
        try:
            if self.proc.poll() is None:
                self.send("Browser.close", session=False, timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        os.close(self.cmd_w)
        os.close(self.res_r)
        shutil.rmtree(self.profile, ignore_errors=True)


def fail(msg):
    raise SystemExit(msg)


def chart_points(metric):
    return f"(()=>{{const c=document.getElementById('c-{metric}');return c?+c.dataset.points:0}})()"


def main(url, live, seed_a, seed_b, alone, shared, alone_n, overlay_n, artefacts, change):
    b = Browser()
    try:
        b.open_page()
        # the list
        b.go(url)
        row = f"document.querySelector('tr.run[data-id=\"{live}\"]')"
        b.wait(f"{row}&&+{row}.querySelector('.steps').textContent>0", f"the run list shows {live} with steps")
        agents = b.js(f"{row}.cells[4].textContent")
        if "balancer" not in agents:
            fail(f"the run list names no agent for {live}: {agents!r}")
        if not b.js(f"!!{row}.querySelector('canvas')"):
            fail("the run list draws no curve")
        sweeps = {i: b.js(f"document.querySelector('tr.run[data-id=\"{i}\"] .sweep').textContent")
                  for i in (seed_a, seed_b, alone, live)}
        if sweeps[seed_a] != "2 seeds" or sweeps[seed_b] != "2 seeds" or sweeps[alone] or sweeps[live]:
            fail(f"the list's sweeps: {sweeps}")
        b.shot(os.path.join(artefacts, "serve-list.png"))
        # the live run's page: the agent's curve appears, then grows
        b.go(url + "run?run=" + urllib.parse.quote(live, safe=""))
        first = b.wait(chart_points("mean_return"), "the live run's mean_return curve")
        if "train/balancer" not in b.js("document.getElementById('legend').textContent"):
            fail("the legend names no agent")
        end = time.monotonic() + 60
        later = first
        while later <= first and time.monotonic() < end:
            time.sleep(0.5)
            later = b.js(chart_points("mean_return"))
        if later <= first:
            fail(f"the curve did not grow while the run trained: {first} points, then {later}")
        # the change `bodhi set` made to the live run, with the update it took effect at
        b.wait("+document.body.dataset.changes>0", "the change bodhi set made, listed on the run's page")
        said = b.js("document.getElementById('changes').textContent")
        if change not in said or "from update" not in said:
            fail(f"the page lists {said!r}, not the change {change}")
        b.shot(os.path.join(artefacts, "serve-run.png"))
        # a sweep's seeds as their mean, a run alone as itself
        q = "&".join("run=" + urllib.parse.quote(i, safe="") for i in (seed_a, seed_b, alone))
        b.go(url + "run?mean=1&" + q)
        b.wait("document.body.dataset.updates>0&&document.getElementById('legend').children.length>=2", "the sweep page")
        time.sleep(1)  # every update in, drawn
        legend = b.js("[...document.getElementById('legend').children].map(s=>s.textContent)")
        means = [x for x in legend if "(mean of 2)" in x]
        if len(legend) != 2 or len(means) != 1 or seed_a not in means[0] or seed_b not in means[0]:
            fail(f"the sweep's legend: {legend}")
        if not any(" " + alone + " train/" in x for x in legend):
            fail(f"the run alone is no line of its own: {legend}")
        got = b.js(chart_points("mean_return"))
        if got != shared + alone_n:
            fail(f"mean_return draws {got} points, not the {shared} steps both seeds reached and the lone run's {alone_n}")
        b.shot(os.path.join(artefacts, "serve-sweep.png"))
        b.js("document.getElementById('mean').click()")  # the same runs overlaid, one line each
        b.wait("document.getElementById('legend').children.length==3", "three runs overlaid", timeout=10)
        got = b.js(chart_points("mean_return"))
        if got != overlay_n:
            fail(f"three runs overlaid draw {got} points of mean_return, not {overlay_n}")
        away = [u for u in b.fetched() if not u.startswith(url) and not u.startswith("about:")]
        if away:
            fail(f"the pages fetched from elsewhere: {away[:3]}")
        print(f"ok: the curve grew from {first} to {later} points; the sweep's mean at {shared} steps")
    finally:
        b.close()


if __name__ == "__main__":
    a = sys.argv
    main(a[1], a[2], a[3], a[4], a[5], int(a[6]), int(a[7]), int(a[8]), a[9], a[10])
