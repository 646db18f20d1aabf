"""serve_check.py URL RUN_DIR [live]: `bodhi serve`'s answers over HTTP as a browser and a
hostile client send them. The run at RUN_DIR is the served folder's run "0/."; its
updates over /api/log and over /api/stream (server-sent events) equal log.jsonl's.
Hostile: a request line that is no HTTP, a POST with a body, paths outside the served
runs, a bad offset, malformed headers, versions and bodies, 65 event streams (one past the
limit), 1000 connections held open and a client that sends half a header and waits (it
is dropped within the server's idle timeout): each is answered 4xx/503 or dropped, and
the server still answers a plain GET afterwards. With `live`, the run is still training:
its updates must grow between two polls. Exit 0 when all hold; 1 with the first failure."""
import json
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def fail(msg):
    sys.exit(msg)


def raw(host, port, data, wait=5.0):
    s = socket.create_connection((host, port), timeout=wait)
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        pass
    s.close()
    return out


def updates(url, run):
    code, body = get(url + "api/log?run=" + urllib.parse.quote(run) + "&from=0")
    if code != 200:
        fail(f"/api/log: {code}")
    return json.loads(body)["updates"]


def stream(url, run, until):
    """The events of /api/stream for run until until(events) holds (or 30 s pass)."""
    events, kind, end = [], None, time.monotonic() + 30
    with urllib.request.urlopen(url + "api/stream?run=" + urllib.parse.quote(run), timeout=20) as r:
        if r.status != 200 or r.headers["Content-Type"] != "text/event-stream":
            fail(f"/api/stream: {r.status} {r.headers['Content-Type']}")
        while time.monotonic() < end and not until(events):
            line = r.readline().decode()
            if not line:
                break
            if line.startswith("event: "):
                kind = line[7:].strip()
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    return events


def main(url, run_dir, live):
    u = urllib.parse.urlparse(url)
    host, port = u.hostname, u.port
    code, body = get(url + "api/runs")
    runs = json.loads(body)
    if code != 200 or len(runs) != 1 or runs[0]["id"] != "0/.":
        fail(f"/api/runs: {code} {body[:300]!r}")
    run = runs[0]
    if not run["agents"] or not run["spark"]:
        fail(f"/api/runs lists no agent or curve: {run}")
    for page in ("", "run?run=0/."):
        code, body = get(url + page)
        if code != 200 or b"<canvas" not in body and b"canvas" not in body:
            fail(f"/{page}: {code}")
        if b"http://" in body or b"https://" in body:
            fail(f"/{page} fetches from elsewhere")
    ups = updates(url, "0/.")
    if live:  # the stream brings the updates written so far, then new ones as they come
        evs = stream(url, "0/.", lambda e: len([x for x in e if x[0] == "log"]) >= 3)
        logs = [x[1]["runs"][0] for x in evs if x[0] == "log"]
        if len(logs) < 3 or any(not x["updates"] for x in logs):
            fail(f"the stream of a live run brought {len(logs)} events of updates")
        print(f"stream: {len(logs)} events, {sum(len(x['updates']) for x in logs)} updates")
    else:  # all of log.jsonl's updates, then the run's status once the log is read to its end
        evs = stream(url, "0/.", lambda e: any("status" in r for k, x in e if k == "log" for r in x["runs"]))
        if not evs or evs[0][0] != "hello" or evs[0][1]["runs"][0]["run"] != "0/.":
            fail(f"the stream's first event: {evs[:1]}")
        got = [u for k, x in evs if k == "log" for r in x["runs"] for u in r["updates"]]
        if got != ups or not any("status" in r for k, x in evs if k == "log" for r in x["runs"]):
            fail(f"the stream brought {len(got)} updates and no status; /api/log {len(ups)}")
    if live:
        time.sleep(3)
        later = updates(url, "0/.")
        if len(later) <= len(ups):
            fail(f"a live run's updates did not grow: {len(ups)} then {len(later)}")
        print(f"live: {len(ups)} then {len(later)} updates")
        # the list's summary, read on from where the last poll stopped, moves on too
        again = json.loads(get(url + "api/runs")[1])[0]
        if again["steps"] <= run["steps"] or len(again["spark"]) < len(run["spark"]):
            fail(f"/api/runs of a live run did not move on: {run['steps']} then {again['steps']} steps")
        want = [u for u in updates(url, "0/.") if u["agent"] == again["agents"][0]]
        if again["steps"] > want[-1]["steps"]:
            fail(f"/api/runs says {again['steps']} steps, the log {want[-1]['steps']}")
    else:
        want = [json.loads(l) for l in open(run_dir + "/log.jsonl")]
        want = [o for o in want if o.get("event") == "update"]
        if len(ups) != len(want) or any(a["steps"] != b["steps"] for a, b in zip(ups, want)):
            fail(f"/api/log has {len(ups)} updates, log.jsonl {len(want)}")
        if ups[-1]["m"].get("mean_return") != want[-1].get("mean_return"):
            fail("the last update's mean_return differs")
        mine = [o for o in want if o["agent"] == run["agents"][0]]
        if run["steps"] != mine[-1]["steps"] or run.get("mean_return") != mine[-1].get("mean_return"):
            fail(f"/api/runs: {run['steps']} steps, {run.get('mean_return')}; log.jsonl {mine[-1]['steps']}")
        for _ in range(2):  # asked again: the same, from what it kept
            if json.loads(get(url + "api/runs")[1]) != runs:
                fail("/api/runs asked again differs for a finished run")
    # outside the runs: never a file
    for path in ("api/log?run=0/../../etc", "api/log?run=/etc/passwd", "api/log?run=1/.", "../etc/passwd",
                 "%2e%2e/%2e%2e/etc/passwd", "api/log?run=0/./../..", "run.h5", "log.jsonl"):
        code, body = get(url + path)
        if code != 404 or b"root:" in body:
            fail(f"/{path}: {code} {body[:80]!r}")
    code, _ = get(url + "api/log?run=0/.&from=-5")
    if code != 400:
        fail(f"a negative offset: {code}")
    code, _ = get(url + "api/log?run=0/.&from=12abc")
    if code != 400:
        fail(f"a bad offset: {code}")
    code, _ = get(url + "api/log?run=0/.&from=99999999999999999999")
    if code != 400:
        fail(f"an offset past a long long: {code}")
    code, body = get(url + "api/log?run=0/.&from=1125899906842624")  # past what a file can seek to
    if code != 200 or b'"updates":[]' not in body:
        fail(f"an offset past any file: {code} {body[:80]!r}")
    for bad_host in (b"evil.example.com", b"127.0.0.1.evil.example.com", b"localhost.evil.example.com"):
        ans = raw(host, port, b"GET /api/runs HTTP/1.1\r\nHost: " + bad_host + b"\r\n\r\n")
        if not ans.startswith(b"HTTP/1.1 403"):
            fail(f"a request for {bad_host!r} (a rebound name): {ans[:60]!r}")
    ans = raw(host, port, b"GARBAGE\r\n\r\n")
    if ans and not ans.startswith(b"HTTP/1.1 400"):  # libmicrohttpd drops it
        fail(f"a request line that is no HTTP: {ans[:60]!r}")
    ans = raw(host, port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    if not ans.startswith(b"HTTP/1.1 405"):
        fail(f"a POST: {ans[:60]!r}")
    big = b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    ans = raw(host, port, big)
    if ans and not ans.split(b" ")[1].startswith(b"4"):
        fail(f"a 100 kB request line: {ans[:60]!r}")
    malformed = [
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n",
        b"GET /%zz%00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(2000)) + b"\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
        b"GET /api/stream?run=0/.&from=1,2,3 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /api/stream?run=0/.&run=0/. HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /api/stream?run=0/../.. HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /api/stream?run=0/. HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: -4\r\n\r\n",
        b"\xff\xfe\r\n\r\n",
    ]
    # a NUL in the path ends it for libmicrohttpd: "/", the list, and never a file
    ans = raw(host, port, b"GET /\x00/../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", wait=3.0)
    if b"root:" in ans or not (ans.startswith(b"HTTP/1.1 4") or b"bodhi runs" in ans):
        fail(f"a NUL in the path: {ans[:60]!r}")
    for req in malformed:
        ans = raw(host, port, req, wait=3.0)
        if ans and not ans.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4", b"HTTP/1.1 505", b"HTTP/1.0 505")):
            fail(f"a malformed request {req[:40]!r}: {ans[:60]!r}")
        code, _ = get(url + "api/runs")
        if code != 200:
            fail(f"after a malformed request {req[:40]!r}: {code}")
    # server-sent events: a stream per page, at most 64 at once (the 65th: 503)
    streams = []
    for _ in range(64):
        st = socket.create_connection((host, port), timeout=10)
        st.sendall(b"GET /api/stream?run=0/. HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        streams.append(st)
    for st in streams:
        head = st.recv(4096)
        if not head.startswith(b"HTTP/1.1 200") or b"text/event-stream" not in head:
            fail(f"a stream: {head[:80]!r}")
    ans = raw(host, port, b"GET /api/stream?run=0/. HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", wait=3.0)
    if not ans.startswith(b"HTTP/1.1 503"):
        fail(f"a 65th stream: {ans[:60]!r}")
    for st in streams:
        st.close()
    slow = socket.create_connection((host, port))
    slow.sendall(b"GET /api/runs HTTP/1.1\r\nHo")  # and then nothing
    held = []
    for _ in range(1000):
        held.append(socket.create_connection((host, port), timeout=10))
    code, _ = get(url + "api/runs")  # one more than the idle thousand: still answered
    if code != 200:
        fail(f"with 1000 connections held: {code}")
    for s in held:
        s.close()
    if not live:  # the half-header client is dropped once idle for the server's 15 s
        slow.settimeout(30)
        t0 = time.monotonic()
        try:
            gone = slow.recv(100) == b""
        except (socket.timeout, ConnectionResetError):
            gone = False
        if not gone or time.monotonic() - t0 > 25:
            fail("a client that sent half a header and waited was not dropped within 25 s")
    slow.close()
    code, _ = get(url + "api/runs")
    if code != 200:
        fail(f"after the hostile clients: {code}")
    print(f"ok: {len(ups)} updates served; hostile requests refused")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "live")
