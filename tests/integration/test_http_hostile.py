"""Hostile HTTP/1.1 clients (issue 9): chunked trailers that pose as
request headers, framing http-parser lets through (RFC 9112), descriptor
exhaustion at the accept path."""

import os
import re
import resource
import signal
import socket
import subprocess
import time

from harness import (HOST, REPO_ROOT, SANITIZER_ENV, HapaxServer, HapaxTestCase, RawConn,
                     _die_with_parent, child_env, secret)

KEY = secret("hx-hostile-trailer-key-7f3a")
BODY = b'{"messages":[{"role":"user","content":"hi"}]}'


def chunked_with_trailers(body, trailers):
    """A chunked body whose last chunk is followed by `trailers` (pairs)."""
    out = b"%x\r\n" % len(body) + body + b"\r\n0\r\n"
    for name, value in trailers:
        out += name.encode() + b": " + value.encode() + b"\r\n"
    return out + b"\r\n"


def chat_with_trailers(trailers, headers=b""):
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n" + headers + b"\r\n" + chunked_with_trailers(BODY, trailers))


class TrailerTest(HapaxTestCase):
    """Item 1: trailers never reach the request's header list."""

    def test_trailer_api_key_does_not_authenticate(self):
        srv = self.start_server({"auth": {"enabled": True, "keys": [{"name": "app", "key": KEY}]}})
        # A second trailer follows the key: before the fix the parser
        # pushed every trailer but the last into the headers.
        for trailers in ([("X-API-Key", KEY), ("X-Filler", "1")],
                         [("Authorization", "Bearer " + KEY), ("X-Filler", "1")],
                         [("X-API-Key", KEY)]):
            with self.subTest(trailers=[t[0] for t in trailers]):
                c = self.conn(srv)
                c.send(chat_with_trailers(trailers))
                resp = c.read_response("POST")
                self.assertJsonError(resp, 401, "invalid_api_key")
                c.close()

    def test_trailer_x_forwarded_for_is_not_the_client(self):
        srv = self.start_server({"rate_limit": {"enabled": True, "requests_per_minute": 600, "burst": 100,
                                                "trusted_proxies": ["127.0.0.1"]}})
        c = self.conn(srv)
        c.send(chat_with_trailers([("X-Forwarded-For", "203.0.113.77"), ("X-Filler", "1")],
                                  b"X-Request-ID: trailer-xff-1\r\n"))
        resp = c.read_response("POST")
        self.assertGreater(resp.status, 0)
        rec = srv.wait_log(lambda r: r.get("request_id") == "trailer-xff-1" and r.get("msg") == "request")
        self.assertIsNotNone(rec, "no access-log line for the request")
        self.assertEqual(rec.get("client_ip"), "127.0.0.1",
                         "a trailer chose the client address: %r" % rec)
        self.assertNotIn("203.0.113.77", srv.stderr_text())

    def test_real_header_x_forwarded_for_still_used(self):
        # The control: the same value as a header is honoured from a trusted proxy.
        srv = self.start_server({"rate_limit": {"enabled": True, "requests_per_minute": 600, "burst": 100,
                                                "trusted_proxies": ["127.0.0.1"]}})
        c = self.conn(srv)
        c.send(chat_with_trailers([("X-Filler", "1")],
                                  b"X-Request-ID: header-xff-1\r\nX-Forwarded-For: 203.0.113.78\r\n"))
        c.read_response("POST")
        rec = srv.wait_log(lambda r: r.get("request_id") == "header-xff-1" and r.get("msg") == "request")
        self.assertIsNotNone(rec)
        self.assertEqual(rec.get("client_ip"), "203.0.113.78", rec)

    def test_trailers_count_against_header_limit(self):
        srv = self.start_server({"server": {"max_header_bytes": 4096}})
        c = self.conn(srv)
        c.send(chat_with_trailers([("X-Pad-%d" % i, "p" * 200) for i in range(40)]))
        resp = c.read_response("POST")
        self.assertJsonError(resp, 431, "headers_too_large")
        self.assertClosedAfter(c)


class FramingTest(HapaxTestCase):
    """Item 2: what RFC 9112 forbids is answered 400 / 505 and closed."""

    CASES = [
        ("space before colon", b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
         400, "malformed_request", "HTTP/1.1"),
        ("space in name", b"GET /health HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
         400, "malformed_request", "HTTP/1.1"),
        ("non-token in name", b"GET /health HTTP/1.1\r\nHost: x\r\nX(y): v\r\n\r\n",
         400, "malformed_request", "HTTP/1.1"),
        ("no Host on 1.1", b"GET /health HTTP/1.1\r\nUser-Agent: t\r\n\r\n",
         400, "malformed_request", "HTTP/1.1"),
        ("two Host", b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
         400, "malformed_request", "HTTP/1.1"),
        ("two Host on 1.0", b"GET /health HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
         400, "malformed_request", "HTTP/1.0"),
        ("HTTP/1.9", b"GET /health HTTP/1.9\r\nHost: x\r\n\r\n",
         505, "http_version_not_supported", "HTTP/1.1"),
        ("HTTP/2.0", b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n",
         505, "http_version_not_supported", "HTTP/1.1"),
        ("1.0 chunked", b"POST /health HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400, "malformed_request", "HTTP/1.0"),
    ]

    def test_rejected_and_closed(self):
        srv = self.start_server()
        for name, raw, status, code, version in self.CASES:
            with self.subTest(case=name):
                c = self.conn(srv)
                c.send(raw)
                resp = c.read_response("GET")
                self.assertEqual(resp.version, version, resp)
                self.assertJsonError(resp, status, code)
                self.assertTrue(resp.has_token("Connection", "close"), resp)
                self.assertClosedAfter(c, what=name)
                c.close()

    def test_valid_requests_still_served(self):
        srv = self.start_server()
        for raw in (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"GET /health HTTP/1.0\r\n\r\n",
                    b"GET /health HTTP/1.1\r\nhost: x\r\nX-Odd_Name.~!#$%&'*+^`|: v\r\n\r\n",
                    b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"):
            with self.subTest(raw=raw):
                c = self.conn(srv)
                c.send(raw)
                resp = c.read_response("GET")
                self.assertEqual(resp.status, 200, resp)
                c.close()


class LimitedServer(HapaxServer):
    """hapax run with RLIMIT_NOFILE lowered (soft and hard) before exec."""

    def __init__(self, workdir, nofile, hard=None, **kw):
        super().__init__(workdir, **kw)
        self.nofile = nofile
        self.hard = hard or nofile

    def start(self, wait_ready=True):
        limits = (self.nofile, self.hard)

        def preexec():
            _die_with_parent()
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "--config", self.config_path] + self.args,
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
            env=child_env(self.env), preexec_fn=preexec, cwd=self.workdir)
        if wait_ready:
            self.wait_ready()
        return self


def cpu_seconds(pid):
    """User + system CPU time the process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_idle_clients(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((HOST, port))
        socks.append(s)
    return socks


class DescriptorExhaustionTest(HapaxTestCase):
    """Item 3: more idle clients than descriptors. The workers must not
    spin in accept, must answer again once the clients leave, and must
    stop on SIGTERM."""

    NOFILE = 256
    CLIENTS = 400

    def start_limited(self, overrides, hard=None):
        srv = LimitedServer(self.workdir, self.NOFILE, hard=hard, name="limited", overrides=overrides)
        self._servers.append(srv)
        return srv.start()

    def test_soft_limit_raised_to_hard(self):
        srv = self.start_limited({"server": {"workers": 2}}, hard=1024)
        with open("/proc/%d/limits" % srv.proc.pid) as f:
            line = [ln for ln in f if ln.startswith("Max open files")][0]
        self.assertEqual(line.split()[3:5], ["1024", "1024"], line)
        warn = srv.wait_log(lambda r: "max_connections" in r.get("msg", "") and "rlimit_nofile" in r)
        self.assertIsNotNone(warn, "no warning about max_connections above the descriptor limit")
        self.assertEqual(warn.get("rlimit_nofile"), 1024, warn)
        self.assertEqual(warn.get("effective_max_connections"), (1024 - 32 - 2 * 8) // 2, warn)

    def test_idle_clients_beyond_fd_limit(self):
        # Default max_connections (10000); the read timeout is long enough
        # that no idle client is closed by it during the test.
        srv = self.start_limited({"server": {"workers": 2, "read_timeout": "60s", "idle_timeout": "60s"}})
        warn = srv.wait_log(lambda r: "max_connections" in r.get("msg", "")
                            and r.get("rlimit_nofile") == self.NOFILE)
        self.assertIsNotNone(warn, "no warning about max_connections above the descriptor limit")
        self.assertEqual(warn.get("max_connections"), 10000, warn)
        effective = warn.get("effective_max_connections")
        self.assertIsInstance(effective, int, warn)
        self.assertLess(effective, self.NOFILE, warn)

        socks = open_idle_clients(srv.port, self.CLIENTS)
        try:
            # Churn on top: every new connection at EMFILE races the
            # workers for the descriptor libuv frees; before the fix one
            # of them lost its spare and spun in accept4 for good.
            end = time.monotonic() + 3.0
            while time.monotonic() < end:
                burst = open_idle_clients(srv.port, 50)
                time.sleep(0.02)
                for s in burst:
                    s.close()
            time.sleep(0.5)
            self.assertTrue(srv.alive(), "hapax died with %d idle clients" % self.CLIENTS)
            t0, c0 = time.monotonic(), cpu_seconds(srv.proc.pid)
            time.sleep(2.0)
            used = (cpu_seconds(srv.proc.pid) - c0) / (time.monotonic() - t0)
            # Quiet clients cost nothing; a spinning accept loop burns a core.
            self.assertLess(used, 0.3, "hapax used %.0f%% CPU with %d idle clients"
                            % (used * 100, self.CLIENTS))
        finally:
            for s in socks:
                s.close()
        # Once the clients are gone the gateway answers again.
        deadline = time.monotonic() + 15
        last = None
        while time.monotonic() < deadline:
            try:
                r = srv.get("/health", timeout=2)
                if r.status == 200:
                    break
                last = r.status
            except OSError as e:
                last = e
            time.sleep(0.2)
        else:
            self.fail("no answer after the idle clients left (last: %r)" % (last,))
        srv.signal(signal.SIGTERM)
        rc = srv.wait_exit(15)
        self.assertEqual(rc, 0, "hapax did not exit cleanly on SIGTERM (status %r)" % rc)


class BufferBoundsTest(HapaxTestCase):
    """Every buffer has a bound (DESIGN 7): no hx_buf_init(..., 0)
    anywhere under src/."""

    def test_no_unbounded_buffer_in_src(self):
        top = os.path.join(REPO_ROOT, "src")
        found = []
        for d, _, names in sorted(os.walk(top)):
            for name in sorted(names):
                if not name.endswith(".c"):
                    continue
                with open(os.path.join(d, name)) as f:
                    for no, line in enumerate(f, 1):
                        if re.search(r"hx_buf_init\([^;]*,\s*0\s*\)", line):
                            found.append("%s:%d: %s" % (os.path.relpath(os.path.join(d, name), top), no, line.strip()))
        self.assertEqual(found, [], "unbounded buffers:\n" + "\n".join(found))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class PipelineFloodTest(HapaxTestCase):
    """Item 5: a client that pipelines requests and never reads the
    answers holds a bounded amount of the gateway's memory (the output
    buffer had no bound; every answer was queued)."""

    def test_unread_pipelined_answers_stay_bounded(self):
        # A small ASan quarantine, so RSS shows what is held, not what
        # was freed recently (no effect on the release build).
        asan = SANITIZER_ENV["ASAN_OPTIONS"] + ":quarantine_size_mb=4"
        srv = self.start_server({"logging": {"access_log": False}}, env={"ASAN_OPTIONS": asan})
        base = rss_kib(srv.proc.pid)
        c = RawConn(srv.port, rcvbuf=4096)
        self._conns.append(c)
        one = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        batch = one * 2000
        c.sock.setblocking(False)
        sent, stalled_since = 0, None
        deadline = time.monotonic() + 20
        while sent < 400000 * len(one) and time.monotonic() < deadline:
            try:
                sent += c.sock.send(batch)
                stalled_since = None
            except BlockingIOError:
                # The gateway stopped reading: that is the bound at work.
                if stalled_since is None:
                    stalled_since = time.monotonic()
                elif time.monotonic() - stalled_since > 2.0:
                    break
                time.sleep(0.05)
        sent //= len(one)
        time.sleep(1.0)
        grown_mib = (rss_kib(srv.proc.pid) - base) / 1024.0
        self.assertTrue(srv.alive())
        # 400k answers of ~400 bytes would be ~150 MiB if all were queued.
        self.assertLess(grown_mib, 24, "RSS grew by %.1f MiB for one client that reads nothing "
                        "(%d requests sent)" % (grown_mib, sent))
        # The connection still works once the client reads.
        c.sock.setblocking(True)
        c.sock.settimeout(5)
        got = 0
        while got < 5:
            r = c.read_response("GET", timeout=10)
            self.assertEqual(r.status, 200, r)
            got += 1
        c.close()
        self.assertEqual(srv.get("/health").status, 200)
