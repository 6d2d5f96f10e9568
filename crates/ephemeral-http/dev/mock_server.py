#!/usr/bin/env python3
"""Mock of the ephemeral-http status API, for developing dashboard.html.

Stdlib only (Python 3.11).  Usage:

    python3 mock_server.py 8765                 # 3 coordinators: translator, commands, emails
    python3 mock_server.py 8765 --many          # 50 coordinators, ~10,000 signals a minute
    python3 mock_server.py 8765 --prefix /ephemeral/   # mounted under a prefix (tests relative URLs)
    python3 mock_server.py 8765 --no-controls   # read-only: no control endpoints, "controls": false

Endpoints (relative to the prefix), as in API-2.md "Status API":
    GET  /                                   the page, placeholder replaced by the initial JSON
    GET  /api/status                         status document
    GET  /api/coordinators/<name>/operations operations of one coordinator (404 names the known ones)
    GET  /api/signals?pattern=&key=&since=&limit=   newest first (bad since/limit -> 400)
    GET  /api/events                         SSE: `stats` every second, `signal` per signal
    POST /api/coordinators/<name>/pause|resume|limit   (only with controls)
"""

import argparse
import bisect
import heapq
import json
import math
import os
import queue
import random
import secrets
import sys
import threading
import time
from collections import deque
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

PLACEHOLDER = "/*__EPHEMERAL_INITIAL__*/null"
HERE = os.path.dirname(os.path.abspath(__file__))
TICK = 0.1  # simulation step, seconds


def rfc3339(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int((t % 1) * 1e6):06d}Z"


def parse_rfc3339(s):
    s = s.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    # Python 3.11 fromisoformat accepts up to 6 fractional digits; trim nanoseconds.
    if "." in s:
        head, rest = s.split(".", 1)
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        s = head + "." + (digits[:6] or "0") + rest[i:]
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        raise ValueError("timestamp needs a zone")
    return dt.timestamp()


def glob_match(pat, s):
    """`*` any run (also empty), `?` exactly one char, everything else literal."""
    p = i = 0
    star = -1
    mark = 0
    while i < len(s):
        if p < len(pat) and (pat[p] == "?" or (pat[p] != "*" and pat[p] == s[i])):
            p += 1
            i += 1
        elif p < len(pat) and pat[p] == "*":
            star = p
            mark = i
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            i = mark
        else:
            return False
    while p < len(pat) and pat[p] == "*":
        p += 1
    return p == len(pat)


def op_id():
    return secrets.token_hex(8)


class Coordinator:
    def __init__(self, name, max_concurrency, arrival, median_ms, keys, label_fn, fail_p, dynamic=False):
        self.name = name
        self.max = max_concurrency
        self.arrival = arrival          # items per second (mean)
        self.median_ms = median_ms
        self.keys = keys
        self.label_fn = label_fn
        self.fail_p = fail_p
        self.dynamic = dynamic
        self.paused = False
        self.closed = False
        self.pending = deque()          # (key, label)
        self.running = []               # heap of (end, seq, op)
        self.finished = deque(maxlen=400)
        self.durations = deque(maxlen=256)
        self.enqueued = self.completed = self.failed = self.cancelled = 0
        self.deferred = 0
        self.seq = 0
        self.phase = random.random() * math.tau

    def status(self):
        d = sorted(self.durations)
        def q(p):
            if not d:
                return None
            return round(d[min(len(d) - 1, int(p * len(d)))], 1)
        return {
            "name": self.name, "max_concurrency": self.max, "paused": self.paused, "closed": self.closed,
            "pending": len(self.pending), "active": len(self.running), "enqueued": self.enqueued,
            "completed": self.completed, "failed": self.failed, "cancelled": self.cancelled,
            "deferred": self.deferred, "dynamic": self.dynamic, "p50_ms": q(0.5), "p95_ms": q(0.95),
        }


class Sim:
    def __init__(self, many, controls):
        self.lock = threading.Lock()
        self.controls = controls
        self.many = many
        self.signals = deque(maxlen=20000)   # newest last
        self.clients = set()
        self.clients_lock = threading.Lock()
        self.t0 = time.time()
        self.next_burst = self.t0 + 4
        self.outage_until = 0
        self.coords = {}
        if many:
            kinds = ["translate", "render", "index", "mail", "billing", "thumbs", "ingest", "search", "export", "sync"]
            for i in range(50):
                kind = kinds[i % len(kinds)]
                name = f"{kind}-{i:02d}"
                self.coords[name] = Coordinator(
                    name, random.choice([4, 8, 16, 32, 64]), random.uniform(3, 25), random.uniform(20, 900),
                    [f"tenant-{k}" for k in range(30)] if i % 3 else [None],
                    (lambda kind=kind: f"https://{kind}.internal.example/v1/jobs/{random.randint(1, 99999)}"),
                    random.uniform(0.0, 0.08), dynamic=(i % 7 == 0))
            # ~10,000 signals a minute in total: ops raise some, the rest are ambient sink signals.
            self.ambient_per_s = 130.0
        else:
            langs = ["en→de", "en→fr", "en→ja", "de→en", "fr→es", "en→pt-BR"]
            self.coords["translator"] = Coordinator(
                "translator", 8, 11, 380, langs,
                lambda: "https://api.translate.example/v2/translate?q=" + random.choice(
                    ["hello%20world", "checkout", "order%20%23" + str(random.randint(1000, 9999)), "sign%20in", "refund"]),
                0.03, dynamic=True)
            self.coords["commands"] = Coordinator(
                "commands", 16, 28, 70, [f"user-{k}" for k in range(1, 25)] + ["user-7"] * 12,
                lambda: random.choice(["/reindex", "/export csv", "/sync calendar", "/resize avatar", "/purge cache"]),
                0.015)
            self.coords["emails"] = Coordinator(
                "emails", 4, 2.4, 1100, [None],
                lambda: "welcome → " + random.choice(["alice", "bob", "carol", "dave", "erin"]) + "@example.com",
                0.02)
            self.ambient_per_s = 0.0
        self.order = list(self.coords)

    # ---- simulation -------------------------------------------------------------------------
    def emit(self, now, name, key, oid, source, out):
        ev = {"signal": name, "key": key, "operation_id": oid, "timestamp": rfc3339(now), "source": source}
        self.signals.append(ev)
        out.append(ev)

    def step(self, now, dt):
        out = []
        with self.lock:
            burst = False
            if now >= self.next_burst:
                burst = True
                self.next_burst = now + random.uniform(8, 12)
            if not self.many and random.random() < dt / 30 and self.outage_until < now:
                self.outage_until = now + random.uniform(3, 6)
            outage = now < self.outage_until
            for c in self.coords.values():
                rate = c.arrival * (1 + 0.45 * math.sin((now - self.t0) / 9 + c.phase))
                if not c.closed:
                    n = poisson(rate * dt)
                    for _ in range(n):
                        c.enqueued += 1
                        c.pending.append((random.choice(c.keys), c.label_fn()))
                # occasional cancellations of pending items
                if c.pending and random.random() < dt * 0.3:
                    c.pending.popleft()
                    c.cancelled += 1
                # finish
                while c.running and c.running[0][0] <= now:
                    end, _, op = heapq.heappop(c.running)
                    self.finish(c, op, end, outage, out)
                # start
                c.deferred = random.randint(0, 3) if (burst or outage) and c.name in ("commands",) else 0
                if c.name.startswith("translate") and outage:
                    c.deferred = len(c.pending) // 3
                while not c.paused and c.pending and len(c.running) < c.max:
                    key, label = c.pending.popleft()
                    c.seq += 1
                    dur = c.median_ms * math.exp(random.gauss(0, 0.6))
                    if outage and c.name == "translator":
                        dur *= 2.5
                    op = {"id": op_id(), "key": key, "label": label, "state": "running", "started": now,
                          "completed": None, "duration_ms": None, "error": None, "signals": [],
                          "pinned": random.random() < 0.02}
                    heapq.heappush(c.running, (now + dur / 1000, c.seq, op))
                # crowd out pending when nobody drains it
                if len(c.pending) > 5000:
                    for _ in range(len(c.pending) - 5000):
                        c.pending.popleft()
                        c.cancelled += 1
            # a rate-limit burst every ~10 s, raised by running translator operations
            if burst:
                c = self.coords.get("translator") or self.coords[self.order[0]]
                ms = random.choice([250, 500, 850, 1200])
                for _ in range(random.randint(8, 16)):
                    op = c.running[random.randrange(len(c.running))][2] if c.running else None
                    oid = op["id"] if op else op_id()
                    if op is not None and "rate-limit" not in op["signals"]:
                        op["signals"].append("rate-limit")
                    self.emit(now, "rate-limit", op["key"] if op else None, oid, c.name, out)
            if self.ambient_per_s:
                names = ["http.error.503", "http.error.502", "http.error.429", "cache.miss", "retry",
                         "db.slow", "load.high", "circuit.open", "auth.expired", "queue.lag"]
                weights = [30, 6, 12, 25, 12, 6, 3, 1, 2, 3]
                for _ in range(poisson(self.ambient_per_s * dt)):
                    c = self.coords[random.choice(self.order)]
                    self.emit(now, random.choices(names, weights)[0], random.choice(c.keys), op_id(), c.name, out)
        return out

    def finish(self, c, op, now, outage, out):
        started = op["started"]
        op["completed"] = now
        op["duration_ms"] = round((now - started) * 1000, 2)
        c.durations.append(op["duration_ms"])
        p = c.fail_p + (0.35 if outage and c.name == "translator" else 0)
        if self.many and random.random() < 0.05:
            p += 0.3
        r = random.random()
        if r < p:
            kind = random.random()
            if kind < 0.7:
                op["error"] = "upstream returned 503 Service Unavailable"
                sig = "http.error.503"
            elif kind < 0.85:
                op["error"] = f"timed out after {random.choice([2, 5])} s"
                sig = "timeout"
            elif kind < 0.95:
                op["error"] = "rate limited: retry after 850 ms"
                sig = "rate-limit"
            else:
                op["error"] = "invalid response: expected JSON, got text/html"
                sig = None
            if sig:
                op["signals"].append(sig)
                self.emit(now, sig, op["key"], op["id"], c.name, out)
            op["state"] = "failed"
            c.failed += 1
        else:
            op["state"] = "completed"
            c.completed += 1
            if random.random() < (0.04 if self.many else 0.012):
                op["signals"].append("cache.miss")
                self.emit(now, "cache.miss", op["key"], op["id"], c.name, out)
        c.finished.append(op)

    # ---- documents --------------------------------------------------------------------------
    def status_doc(self):
        with self.lock:
            return {
                "coordinators": [self.coords[n].status() for n in self.order],
                "sinks": [{"name": "signals", "len": len(self.signals)}],
                "time": rfc3339(time.time()),
                "controls": self.controls,
            }

    def operations(self, name):
        with self.lock:
            c = self.coords[name]
            now = time.time()
            running = sorted((op for _, _, op in c.running), key=lambda o: o["started"])
            finished = list(c.finished)[::-1]
            res = []
            for op in running + finished:
                d = dict(op)
                d["started"] = rfc3339(op["started"])
                if op["completed"] is not None:
                    d["completed"] = rfc3339(op["completed"])
                d["signals"] = list(op["signals"])
                res.append(d)
            return res

    def query_signals(self, pattern, key, since, limit):
        with self.lock:
            res = []
            for ev in reversed(self.signals):
                if since is not None and parse_rfc3339(ev["timestamp"]) < since:
                    break
                if pattern and not glob_match(pattern, ev["signal"]):
                    continue
                if key is not None and ev["key"] != key:
                    continue
                res.append(ev)
                if len(res) >= limit:
                    break
            return res

    # ---- SSE fan-out ------------------------------------------------------------------------
    def broadcast(self, chunk):
        with self.clients_lock:
            for q in list(self.clients):
                if q.qsize() > 5000:       # a stuck client: drop it rather than grow forever
                    self.clients.discard(q)
                    q.put(None)
                else:
                    q.put(chunk)

    def run(self):
        last = time.time()
        next_stats = last + 1.0
        while True:
            time.sleep(TICK)
            now = time.time()
            evs = self.step(now, now - last)
            last = now
            if evs:
                self.broadcast("".join(
                    "event: signal\ndata: " + json.dumps(ev, ensure_ascii=False) + "\n\n" for ev in evs))
            if now >= next_stats:
                next_stats += 1.0
                if next_stats < now:
                    next_stats = now + 1.0
                self.broadcast("event: stats\ndata: " + json.dumps(self.status_doc()) + "\n\n")


def poisson(lam):
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, int(random.gauss(lam, math.sqrt(lam)) + 0.5))
    l, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= random.random()
        if p <= l:
            return k
        k += 1


def script_json(obj):
    """JSON that is safe inside <script>: no `</script>`, no `<!--`."""
    s = json.dumps(obj, ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def make_handler(sim, prefix):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ephemeral-mock/1"

        def log_message(self, fmt, *args):
            if os.environ.get("MOCK_LOG"):
                sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

        def send_json(self, obj, status=200):
            body = json.dumps(obj, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def route(self):
            u = urlsplit(self.path)
            path = u.path
            if prefix != "/":
                if path == prefix.rstrip("/"):
                    self.send_response(308)
                    self.send_header("Location", prefix)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None, None
                if not path.startswith(prefix):
                    self.send_json({"error": f"not found: {path} (mounted at {prefix})"}, 404)
                    return None, None
            rel = "/" + path[len(prefix):]
            return rel, parse_qs(u.query, keep_blank_values=True)

        def do_GET(self):
            rel, qs = self.route()
            if rel is None:
                return
            if rel == "/":
                with open(os.path.join(HERE, "..", "assets", "dashboard.html"), encoding="utf-8") as f:
                    page = f.read()
                if not qs.get("raw"):   # ?raw=1 serves the page as a file would be: no snapshot
                    initial = {"status": sim.status_doc(), "signals": sim.query_signals(None, None, None, 200)}
                    page = page.replace(PLACEHOLDER, script_json(initial), 1)
                body = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                hold = float(qs.get("hold", ["0"])[0] or 0)
                if hold > 0:
                    # Test aid for headless screenshots: send the page, then keep the document
                    # "loading" for `hold` seconds so the page runs live before the load event.
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    self.wfile.write(body)
                    self.wfile.flush()
                    time.sleep(min(hold, 300))
                    self.wfile.write(b"\n")
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif rel == "/api/status":
                self.send_json(sim.status_doc())
            elif rel == "/api/signals":
                pattern = qs.get("pattern", [""])[0] or None
                key = qs.get("key", [None])[0] or None
                since = None
                if qs.get("since", [""])[0]:
                    try:
                        since = parse_rfc3339(qs["since"][0])
                    except ValueError:
                        return self.send_json({"error": f"bad since: {qs['since'][0]!r} (RFC 3339 expected)"}, 400)
                limit = 500
                if "limit" in qs:
                    try:
                        limit = int(qs["limit"][0])
                        if limit < 1 or limit > 10000:
                            raise ValueError
                    except ValueError:
                        return self.send_json({"error": f"bad limit: {qs['limit'][0]!r} (1..10000)"}, 400)
                self.send_json(sim.query_signals(pattern, key, since, limit))
            elif rel.startswith("/api/coordinators/") and rel.endswith("/operations"):
                name = unquote(rel[len("/api/coordinators/"):-len("/operations")])
                if name not in sim.coords:
                    return self.send_json({"error": f"unknown coordinator {name!r}; known: {', '.join(sim.order)}"}, 404)
                if os.environ.get("MOCK_SLOW"):
                    time.sleep(float(os.environ["MOCK_SLOW"]))
                self.send_json(sim.operations(name))
            elif rel == "/api/events":
                self.sse()
            else:
                self.send_json({"error": f"not found: {rel}"}, 404)

        def do_POST(self):
            rel, _ = self.route()
            if rel is None:
                return
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            parts = rel.strip("/").split("/")
            if not (len(parts) == 4 and parts[:2] == ["api", "coordinators"] and parts[3] in ("pause", "resume", "limit")):
                return self.send_json({"error": f"not found: {rel}"}, 404)
            if not sim.controls:
                return self.send_json({"error": "controls are disabled on this server"}, 404)
            name, action = unquote(parts[2]), parts[3]
            with sim.lock:
                c = sim.coords.get(name)
                if c is None:
                    return self.send_json({"error": f"unknown coordinator {name!r}; known: {', '.join(sim.order)}"}, 404)
                if action == "pause":
                    c.paused = True
                elif action == "resume":
                    c.paused = False
                else:
                    try:
                        body = json.loads(raw or b"null")
                        v = body["max_concurrency"]
                        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                            raise ValueError
                    except (ValueError, KeyError, TypeError):
                        return self.send_json({"error": "body must be {\"max_concurrency\": n} with n ≥ 1"}, 400)
                    if v > 1024:
                        return self.send_json({"error": f"max_concurrency {v} exceeds the limit 1024"}, 400)
                    c.max = v
                st = c.status()
            self.send_json(st)

        def sse(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            q = queue.Queue()
            try:
                self.wfile.write(b"retry: 2000\n\n")
                self.wfile.write(("event: stats\ndata: " + json.dumps(sim.status_doc()) + "\n\n").encode())
                self.wfile.flush()
                with sim.clients_lock:
                    sim.clients.add(q)
                while True:
                    try:
                        chunk = q.get(timeout=15)
                    except queue.Empty:
                        chunk = ": keep-alive\n\n"
                    if chunk is None:
                        break
                    parts = [chunk]
                    while True:   # coalesce whatever queued up into one write
                        try:
                            more = q.get_nowait()
                        except queue.Empty:
                            break
                        if more is None:
                            break
                        parts.append(more)
                    self.wfile.write("".join(parts).encode())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
            finally:
                with sim.clients_lock:
                    sim.clients.discard(q)

    return H


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("port", type=int)
    ap.add_argument("--many", action="store_true", help="50 coordinators, ~10,000 signals/minute")
    ap.add_argument("--no-controls", action="store_true", help="read-only server")
    ap.add_argument("--prefix", default="/", help="mount point, e.g. /ephemeral/")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--evil", action="store_true", help="also raise signals whose names/keys are HTML/script (XSS check)")
    a = ap.parse_args()
    if a.seed is not None:
        random.seed(a.seed)
    prefix = "/" + a.prefix.strip("/") + "/" if a.prefix.strip("/") else "/"
    sim = Sim(a.many, not a.no_controls)
    # warm up ~20 s of history so the first page load has operations and signals
    now = time.time()
    for i in range(200, 0, -1):
        sim.step(now - i * TICK, TICK)
    if a.evil:
        def evil():
            while True:
                with sim.lock:
                    t = time.time()
                    for name, key in [("<img src=x onerror=document.title='XSS1'>", "</script><script>document.title='XSS2'</script>"),
                                      ("http.error.<b>503</b>", "\u2028key&amp;<!--")]:
                        ev = {"signal": name, "key": key, "operation_id": op_id(), "timestamp": rfc3339(t), "source": "<i>evil</i>"}
                        sim.signals.append(ev)
                sim.broadcast("event: signal\ndata: " + json.dumps(ev) + "\n\n")
                time.sleep(2)
        threading.Thread(target=evil, daemon=True).start()
        time.sleep(0.1)
    threading.Thread(target=sim.run, daemon=True).start()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(sim, prefix))
    srv.daemon_threads = True
    print(f"mock ephemeral-http on http://127.0.0.1:{srv.server_address[1]}{prefix}"
          f" ({'50 coordinators' if a.many else '3 coordinators'}, controls {'on' if sim.controls else 'off'})",
          flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
