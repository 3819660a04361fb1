"""HTTP/3 over QUIC (docs/http3.md): server.http3 serves every route with
Debian's ngtcp2 client (gtlsclient, the same ngtcp2 0.12 and GnuTLS as
ours), 0-RTT that a replay cannot reuse (RFC 8470 and a single-use
register), each server.http3 key shown to take effect, Retry, Version
Negotiation, stateless reset, loss and reordering (a UDP relay),
migration, two workers, Alt-Svc, and a real browser (headless
Chromium)."""

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import unittest

import harness
from harness import HOST, REPO_ROOT, HapaxTestCase, free_port, http_request
from udp_relay import UdpRelay

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
JSON = {"content-type": "application/json"}


def h3client_binary():
    """tests/tools/h3client next to the hapax under test (build-asan/hapax
    -> build-asan/h3client), else build/."""
    here = os.path.join(os.path.dirname(os.path.abspath(harness.BIN)), "h3client")
    return here if os.path.exists(here) else os.path.join(REPO_ROOT, "build", "h3client")


def have(tool):
    return shutil.which(tool) is not None


class H3Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def __repr__(self):
        return "H3Response(%r, %r, %r)" % (self.status, self.headers, self.body[:200])


class H3Run:
    """One gtlsclient run: its responses (one per stream, in order) and log."""

    def __init__(self, proc, responses, elapsed):
        self.rc, self.log, self.responses, self.elapsed = proc.returncode, proc.stderr, responses, elapsed

    @property
    def first(self):
        if not self.responses:
            raise AssertionError("no HTTP/3 response; client log:\n" + self.log[-3000:])
        return self.responses[0]

    def early_packets(self):
        return len(re.findall(r"pkt tx .*type=0RTT", self.log))


class H3cRun:
    """One h3client run: its responses (completion order) and its summary."""

    def __init__(self, proc, elapsed):
        self.rc, self.log, self.elapsed = proc.returncode, proc.stderr, elapsed
        lines = [json.loads(l) for l in proc.stdout.splitlines() if l.strip().startswith("{")]
        self.summary = next((l for l in lines if l.get("summary")), {})
        self.responses = [H3Response(l["status"], l["headers"], l["body"].encode("utf-8", "replace"))
                          for l in lines if not l.get("summary")]

    @property
    def first(self):
        if not self.responses:
            raise AssertionError("no HTTP/3 response (exit %s):\n%s" % (self.rc, self.log[-3000:]))
        return self.responses[0]


@unittest.skipUnless(have("gtlsclient"), "needs gtlsclient (Debian ngtcp2-client)")
class H3Base(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.certs = os.path.join(self.workdir, "certs")
        subprocess.run(["sh", os.path.join(REPO_ROOT, "tests", "certs", "gen.sh"), self.certs], check=True)
        self.mock = self.start_mock(name="mock")
        self.dl = os.path.join(self.workdir, "dl")
        os.makedirs(self.dl, exist_ok=True)

    def cert(self, name):
        return os.path.join(self.certs, name)

    def start_h3(self, h3=None, extra=None, server=None, wait_ready=True):
        self.h3_port = free_port()
        h = {"enabled": True, "port": self.h3_port, "tls_cert_file": self.cert("chain.pem"),
             "tls_key_file": self.cert("server.key")}
        h.update(h3 or {})
        srv = {"http3": h}
        srv.update(server or {})
        over = {"server": srv,
                "llm": {"provider": "openai", "model": "gpt-4o-mini", "api_key": "sk-test",
                        "endpoint": self.mock.endpoint("openai"), "health_check": {"enabled": False}}}
        for k, v in (extra or {}).items():
            over.setdefault(k, {}).update(v)
        self.srv = self.start_server(over, wait_ready=wait_ready)
        return self.srv

    def h3(self, paths, method=None, data=None, args=(), port=None, session=None, timeout=20, early=False):
        """Runs gtlsclient for the given paths; returns an H3Run. `session`
        names files that keep the TLS session and transport parameters
        (the second run with the same name resumes, with 0-RTT)."""
        if isinstance(paths, str):
            paths = [paths]
        for f in os.listdir(self.dl):
            os.unlink(os.path.join(self.dl, f))
        cmd = ["gtlsclient", "--no-quic-dump", "--no-http-dump", "--exit-on-all-streams-close",
               "--timeout=%ds" % min(timeout, 30), "--download", self.dl]
        if method:
            cmd += ["-m", method]
        if data is not None:
            body = os.path.join(self.workdir, "body.bin")
            with open(body, "wb") as fh:
                fh.write(data if isinstance(data, bytes) else json.dumps(data).encode())
            cmd += ["-d", body]
        if session:
            cmd += ["--session-file", os.path.join(self.workdir, session + ".sess"),
                    "--tp-file", os.path.join(self.workdir, session + ".tp")]
        if not early:
            cmd += ["--disable-early-data"]
        cmd += list(args)
        port = port or self.h3_port
        cmd += [HOST, str(port)] + ["https://localhost:%d%s" % (self.h3_port, p) for p in paths]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout + 10)
        elapsed = time.monotonic() - t0
        return H3Run(proc, self._responses(proc.stderr, paths), elapsed)

    def h3c(self, paths, method=None, headers=None, data=None, port=None, session=None, early=True,
            args=(), timeout=20):
        """Runs tests/tools/h3client (it sets headers, gtlsclient cannot):
        an H3cRun. With `session`, the second run resumes and sends its
        request in 0-RTT unless early=False."""
        if isinstance(paths, str):
            paths = [paths]
        cmd = [h3client_binary(), "--timeout", str(timeout)]
        if method:
            cmd += ["-m", method]
        for k, v in (headers or {}).items():
            cmd += ["-H", "%s: %s" % (k, v)]
        if data is not None:
            body = os.path.join(self.workdir, "body.bin")
            with open(body, "wb") as fh:
                fh.write(data if isinstance(data, bytes) else json.dumps(data).encode())
            cmd += ["-d", body]
        if session:
            cmd += ["--session", os.path.join(self.workdir, session + ".h3s")]
            if not early:
                cmd += ["--no-early"]
        cmd += list(args)
        cmd += [HOST, str(port or self.h3_port)] + ["https://localhost:%d%s" % (self.h3_port, p) for p in paths]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout + 10)
        return H3cRun(proc, time.monotonic() - t0)

    def post(self, path, body, **kw):
        return self.h3c(path, method="POST", headers=JSON, data=body, **kw)

    def _responses(self, log, paths):
        by_stream = {}
        for m in re.finditer(r"http: stream 0x([0-9a-f]+) \[([^:\]]*|:status): ([^\]]*)\]", log):
            sid, name, value = int(m.group(1), 16), m.group(2), m.group(3)
            by_stream.setdefault(sid, {})
            by_stream[sid].setdefault(name, value)
        out = []
        for i, sid in enumerate(sorted(by_stream)):
            hdrs = by_stream[sid]
            path = paths[i % len(paths)]
            name = os.path.basename(path.split("?")[0]) or "index.html"
            fn = os.path.join(self.dl, name)
            body = b""
            if os.path.exists(fn):
                with open(fn, "rb") as fh:
                    body = fh.read()
            out.append(H3Response(int(hdrs.get(":status", "0")), hdrs, body))
        return out

    def metric(self, name, **labels):
        r = http_request(self.srv.port, "GET", "/metrics")
        total = 0.0
        for line in r.body.decode().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all('%s="%s"' % (k, v) in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def tp(self, session):
        with open(os.path.join(self.workdir, session + ".tp")) as fh:
            return dict(line.strip().split("=", 1) for line in fh if "=" in line)


class H3RoutesTest(H3Base):
    """Every route family over HTTP/3, with the same limits as HTTP/1.1."""

    def setUp(self):
        super().setUp()
        self.start_h3(server={"max_body_bytes": "2MB", "max_header_bytes": "8KB"})

    def test_every_route_family(self):
        r = self.h3("/health").first
        self.assertEqual(r.status, 200)
        self.assertIn(b'"status":"ok"', r.body)
        self.assertIn("x-request-id", r.headers)
        self.assertEqual(r.headers.get("content-type"), "application/json")
        self.assertIn(b'"object":"list"', self.h3("/v1/models").first.body)
        r = self.post("/v1/chat/completions", CHAT).first
        self.assertEqual(r.status, 200, r)
        self.assertIn(b'"chat.completion"', r.body)
        self.assertEqual(self.mock.last()["body"]["messages"][0]["content"], "hi")
        r = self.post("/v1/chat/completions", dict(CHAT, stream=True)).first
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("content-type"), "text/event-stream")
        self.assertTrue(r.body.endswith(b"data: [DONE]\n\n"), r.body[-200:])
        msgs = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
        r = self.post("/v1/messages", msgs).first
        self.assertEqual(r.status, 200)
        self.assertIn(b'"type":"message"', r.body)
        r = self.post("/v1/responses", {"model": "gpt-4o-mini", "input": "hi"}).first
        self.assertEqual(r.status, 200, r)
        self.assertIn(b'"object":"response"', r.body)
        # Without Content-Type the handler refuses, in OpenAI's format, as on HTTP/1.1.
        r = self.h3("/v1/chat/completions", method="POST", data=CHAT).first
        self.assertEqual(r.status, 400)
        self.assertIn(b"Content-Type must be application/json", r.body)
        # Several requests on one connection.
        run = self.h3(["/health", "/v1/models", "/metrics"])
        self.assertEqual([x.status for x in run.responses], [200, 200, 200])
        # The access log names each request.
        self.assertTrue(self.srv.wait_log(lambda l: l.get("msg") == "request" and l.get("path") == "/v1/messages"))

    def test_one_megabyte_body_both_ways(self):
        big = "x" * (1 << 20)
        r = self.post("/v1/chat/completions", {"model": "gpt-4o-mini",
                                               "messages": [{"role": "user", "content": big}]}).first
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(self.mock.last()["body"]["messages"][0]["content"]), 1 << 20)
        # A long streamed answer (2000 chunks) through the client's flow control.
        r = self.post("/v1/chat/completions", dict(CHAT, stream=True), args=()).first
        self.assertTrue(r.body.endswith(b"data: [DONE]\n\n"))

    def test_limits_as_on_http1(self):
        r = self.h3("/v1/chat/completions", method="POST", data=b"{" + b" " * (3 << 20) + b"}").first
        self.assertEqual(r.status, 413)
        self.assertIn(b"body_too_large", r.body)
        r = self.h3("/health?" + "a" * 20000).first
        self.assertEqual(r.status, 431)
        self.assertEqual(self.h3("/nope").first.status, 404)
        r = self.post("/v1/chat/completions", b"{not json").first
        self.assertEqual(r.status, 400)
        # The gateway is still fine.
        self.assertEqual(self.h3("/health").first.status, 200)

    def test_alt_svc_on_tcp(self):
        r = http_request(self.srv.port, "GET", "/health")
        self.assertEqual(r.header("Alt-Svc"), 'h3=":%d"; ma=86400' % self.h3_port)


class H3MiddlewareTest(H3Base):
    """The same middleware as over TCP: auth (a key, and client_auth: require
    holding over QUIC too), rate limits, the access log's key name."""

    def test_auth_key_and_rate_limit(self):
        self.start_h3(extra={"auth": {"enabled": True, "keys": [{"name": "app", "key": "hx-h3-key-0123456789"}]}})
        r = self.post("/v1/chat/completions", CHAT).first
        self.assertEqual(r.status, 401)
        self.assertIn(b"invalid_api_key", r.body)
        hdrs = dict(JSON, authorization="Bearer hx-h3-key-0123456789")
        r = self.h3c("/v1/chat/completions", method="POST", headers=hdrs, data=CHAT).first
        self.assertEqual(r.status, 200, r)
        self.assertTrue(self.srv.wait_log(lambda l: l.get("msg") == "request" and l.get("key_name") == "app" and
                                          l.get("scheme") == "https"))

    def test_client_auth_require_holds_over_quic(self):
        self.start_h3(server={"tls": {"enabled": True, "port": free_port(), "cert_file": self.cert("chain.pem"),
                                      "key_file": self.cert("server.key"), "client_auth": "require",
                                      "client_ca_file": self.cert("ca.pem")}})
        run = self.h3c("/health")  # h3client has no client certificate
        self.assertEqual(run.responses, [], "served over QUIC without the required client certificate")
        self.assertNotEqual(run.rc, 0)


class H3StreamTest(H3Base):
    """A long streamed answer through a small client window: flow control,
    blocked and resumed streams, answer chunks freed as acknowledged."""

    def setUp(self):
        HapaxTestCase.setUp(self)
        self.certs = os.path.join(self.workdir, "certs")
        subprocess.run(["sh", os.path.join(REPO_ROOT, "tests", "certs", "gen.sh"), self.certs], check=True)
        self.mock = self.start_mock(name="mock", args=["--chunks", "3000"])
        self.dl = os.path.join(self.workdir, "dl")
        os.makedirs(self.dl, exist_ok=True)

    def test_long_stream_small_window(self):
        self.start_h3()
        run = self.post("/v1/chat/completions", dict(CHAT, stream=True), args=["--window", "2048"], timeout=60)
        r = run.first
        self.assertEqual(r.status, 200)
        self.assertTrue(r.body.endswith(b"data: [DONE]\n\n"), r.body[-200:])
        self.assertGreaterEqual(r.body.count(b"\ndata: "), 3000)
        # Several at once on one connection.
        run = self.h3c(["/v1/chat/completions"] * 4, method="POST", headers=JSON, data=dict(CHAT, stream=True),
                       args=["-s", "4", "--window", "4096"], timeout=60)
        self.assertEqual([x.status for x in run.responses], [200] * 4)
        for x in run.responses:
            self.assertTrue(x.body.endswith(b"data: [DONE]\n\n"))


class H3ConfigTest(H3Base):
    """Each server.http3 key changes what the wire shows."""

    def test_stream_limits_windows_and_idle_timeout(self):
        self.start_h3({"max_bi_streams_concurrent": 7, "max_uni_streams_concurrent": 5,
                       "max_stream_receive_window": "64KB", "max_connection_receive_window": "256KB",
                       "idle_timeout": "1s"})
        run = self.h3("/health", session="a")
        self.assertEqual(run.first.status, 200)
        tp = self.tp("a")
        self.assertEqual(tp["initial_max_streams_bidi"], "7")
        self.assertEqual(tp["initial_max_streams_uni"], "5")
        self.assertEqual(tp["initial_max_stream_data_bidi_remote"], str(64 * 1024))
        self.assertEqual(tp["initial_max_data"], str(256 * 1024))
        # More streams than the limit still all complete (the server grants more as they end).
        run = self.h3(["/health"] * 1 + ["/v1/models"] * 15)
        self.assertEqual([x.status for x in run.responses], [200] * 16)
        # A 1 MB upload through a 64 KB stream window (flow control moves on).
        big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "y" * (1 << 20)}]}
        self.assertEqual(self.post("/v1/chat/completions", big).first.status, 200)
        # idle_timeout: 1s wins over the client's 30s; the connection ends by itself.
        cmd = ["gtlsclient", "--no-quic-dump", "--no-http-dump", "--timeout=30s", "--disable-early-data",
               HOST, str(self.h3_port), "https://localhost:%d/health" % self.h3_port]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=40)
        self.assertLess(time.monotonic() - t0, 15, proc.stderr[-2000:])

    def test_udp_receive_buffer_size(self):
        self.start_h3({"udp_receive_buffer_size": "64KB"})
        self.assertTrue(self.srv.wait_log(lambda l: l.get("msg") == "HTTP/3 UDP receive buffer" and
                                          l.get("effective_bytes") == 65536))
        self.srv.stop()
        self.start_h3({"udp_receive_buffer_size": "256MB"})
        self.assertTrue(self.srv.wait_log(lambda l: "capped by the kernel" in l.get("msg", "") and
                                          l.get("requested_bytes") == 256 << 20 and
                                          l.get("effective_bytes") < 256 << 20))

    def test_reload_keeps_the_running_http3(self):
        """The listener is built at start: a reload that changes server.http3
        says so and the running values stay (a request never reads a value
        the listener does not apply)."""
        import signal
        self.start_h3({"max_0rtt_size": "1KB", "allow_0rtt_replay": True})
        with open(self.srv.config_path) as fh:
            text = fh.read()
        with open(self.srv.config_path, "w") as fh:
            fh.write(text.replace("max_0rtt_size: 1KB", "max_0rtt_size: 64KB"))
        self.srv.signal(signal.SIGHUP)
        self.assertTrue(self.srv.wait_log(lambda l: "server.http3 takes effect at the next restart" in l.get("msg", "")))
        self.assertTrue(self.srv.wait_log(lambda l: l.get("msg") == "configuration reloaded"))
        run = self.h3c("/health", session="r")
        run = self.post("/v1/chat/completions", {"model": "gpt-4o-mini",
                                                 "messages": [{"role": "user", "content": "z" * 4000}]}, session="r")
        self.assertEqual(run.first.status, 425)  # still the 1KB bound

    def test_certificate_renewal_without_a_signal(self):
        import hashlib
        import ssl

        def sha(name):
            with open(self.cert(name)) as fh:
                return hashlib.sha256(ssl.PEM_cert_to_DER_cert(fh.read())).hexdigest()
        cur_cert, cur_key = self.cert("cur.pem"), self.cert("cur.key")
        shutil.copy(self.cert("chain.pem"), cur_cert)
        shutil.copy(self.cert("server.key"), cur_key)
        self.start_h3({"tls_cert_file": cur_cert, "tls_key_file": cur_key})
        self.assertEqual(self.h3c("/health").summary["peer_cert_sha256"], sha("server.pem"))
        # certbot-style: new files moved into place; no signal.
        for src, dst in (("other.key", cur_key), ("other.pem", cur_cert)):
            shutil.copy(self.cert(src), dst + ".new")
            os.rename(dst + ".new", dst)
        self.assertTrue(self.srv.wait_log(lambda l: l.get("msg") == "configuration reloaded" and
                                          l.get("trigger") == "certificate", timeout=15))
        self.assertEqual(self.h3c("/health").summary["peer_cert_sha256"], sha("other.pem"))
        # A broken renewal keeps the running certificate.
        with open(cur_cert, "w") as fh:
            fh.write("not a certificate")
        self.assertTrue(self.srv.wait_log(lambda l: l.get("event") == "config_reload" and
                                          l.get("result") == "failure" and l.get("trigger") == "certificate",
                                          timeout=15))
        r = self.h3c("/health")
        self.assertEqual(r.first.status, 200)
        self.assertEqual(r.summary["peer_cert_sha256"], sha("other.pem"))

    def test_second_instance_on_the_same_udp_port_fails(self):
        first = self.start_h3(server={"workers": 2})
        over = {"server": {"http3": {"enabled": True, "port": self.h3_port,
                                     "tls_cert_file": self.cert("chain.pem"),
                                     "tls_key_file": self.cert("server.key")}},
                "llm": {"provider": "openai", "model": "gpt-4o-mini", "api_key": "sk-test",
                        "endpoint": self.mock.endpoint("openai"), "health_check": {"enabled": False}}}
        second = self.start_server(over, wait_ready=False, name="second")
        second.expected_exit = None
        rc = second.wait_exit(10)
        if rc is None:
            second.kill()
        self.assertIsNotNone(rc, "a second hapax joined the HTTP/3 port")
        self.assertNotEqual(rc, 0)
        self.assertIn("address already in use", second.stderr_text().lower())
        for _ in range(6):  # the first keeps serving, on both workers
            self.assertEqual(self.h3("/health").first.status, 200)
        self.srv = first

    def test_address_validation(self):
        self.start_h3({"address_validation": "always"})
        self.assertEqual(self.h3("/health").first.status, 200)
        self.assertEqual(self.metric("hapax_http3_events_total", kind="retry"), 1)
        self.srv.stop()
        self.start_h3()  # auto: no Retry for a lone client
        self.assertEqual(self.h3("/health").first.status, 200)
        self.assertEqual(self.metric("hapax_http3_events_total", kind="retry"), 0)
        # auto under load: 200 clients start their handshakes at once; past 64
        # in progress the later ones prove their address first, and all are served.
        run = self.h3c("/health", args=["-c", "200", "-n", "200", "--quiet"], timeout=60)
        self.assertEqual(run.summary.get("ok2xx"), 200, run.summary)
        self.assertGreater(self.metric("hapax_http3_events_total", kind="retry"), 0)
        self.srv.stop()
        self.start_h3({"address_validation": "never"})  # never, even under the same load
        run = self.h3c("/health", args=["-c", "200", "-n", "200", "--quiet"], timeout=60)
        self.assertEqual(run.summary.get("ok2xx"), 200, run.summary)
        self.assertEqual(self.metric("hapax_http3_events_total", kind="retry"), 0)


class H3ZeroRttTest(H3Base):
    """0-RTT: served once, never twice."""

    def prime(self, session="s"):
        """A first connection: its ticket and transport parameters go to
        the session file, so the next run resumes with 0-RTT."""
        run = self.h3c("/health", session=session)
        self.assertEqual(run.first.status, 200)
        self.assertEqual(run.summary["early_data"], "none")

    def request_logs(self, path):
        return [l for l in self.srv.logs()[0] if l.get("msg") == "request" and l.get("path") == path]

    def test_get_served_from_early_data(self):
        self.start_h3()
        self.prime()
        run = self.h3c("/health", session="s")
        self.assertEqual(run.summary["early_data"], "accepted", run.summary)
        self.assertEqual(run.first.status, 200)
        self.assertEqual(self.metric("hapax_http3_early_data_total", outcome="accepted"), 1)
        self.assertTrue(self.srv.wait_log(lambda l: l.get("kind") == "early_data_accepted" and
                                          l.get("event") == "security"))
        # Served before the handshake completed: the access log says so.
        self.assertTrue(self.srv.wait_log(lambda l: l.get("msg") == "request" and l.get("early_data") is True))

    def test_post_in_early_data_is_held_then_served_once(self):
        self.start_h3()
        self.prime()
        before = self.mock.stats()["requests"]
        run = self.post("/v1/chat/completions", CHAT, session="s")
        self.assertEqual(run.summary["early_data"], "accepted", run.summary)
        self.assertEqual(run.first.status, 200, run.first)
        self.assertIn(b"chat.completion", run.first.body)
        self.assertEqual(self.mock.stats()["requests"], before + 1)
        self.assertNotIn("early-data", self.mock.last()["headers"])  # held until the handshake: not early
        self.srv.wait_log(lambda l: l.get("msg") == "request" and l.get("path") == "/v1/chat/completions")
        self.assertNotIn("early_data", self.request_logs("/v1/chat/completions")[0])

    def record_early_post(self, data=CHAT):
        """A 0-RTT POST through a relay that keeps what the client sent."""
        with UdpRelay(self.h3_port) as relay:
            relay.record = True
            run = self.post("/v1/chat/completions", data, session="s", port=relay.port)
            relay.record = False
        self.assertEqual(run.summary["early_data"], "accepted", run.summary)
        return relay, run

    def replay(self, relay, port=None):
        """Sends the client's first flight again from another port, once the
        first connection is gone: what an attacker on the path can do."""
        time.sleep(1.5)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for d in relay.recorded[:4]:
                s.sendto(d, (HOST, port or self.h3_port))
            time.sleep(1.0)
        finally:
            s.close()

    def test_replayed_early_post_is_not_served_again(self):
        self.start_h3()
        self.prime()
        before = self.mock.stats()["requests"]
        relay, run = self.record_early_post()
        self.assertEqual(run.first.status, 200)
        self.assertEqual(self.mock.stats()["requests"], before + 1)
        self.replay(relay)
        self.assertEqual(self.mock.stats()["requests"], before + 1, "a replay reached the provider")
        self.assertEqual(len(self.request_logs("/v1/chat/completions")), 1)
        self.assertEqual(self.metric("hapax_http3_early_data_total", outcome="replay"), 1)
        self.assertTrue(self.srv.wait_log(lambda l: l.get("kind") == "early_data_replay" and
                                          l.get("event") == "security" and l.get("peer") == HOST))

    def test_same_session_twice(self):
        """The issue's case from the client's side: one saved session used
        twice for the same 0-RTT POST. The register keys on the ClientHello
        (its PSK binder, RFC 8446 8.2), and a second ClientHello is a new
        one, so TLS takes its early data; the POST is held until each
        handshake completes all the same, so neither is served from early
        data, each exactly once, and nothing upstream says Early-Data."""
        self.start_h3()
        self.prime()
        twin = os.path.join(self.workdir, "twin.h3s")
        shutil.copy(os.path.join(self.workdir, "s.h3s"), twin)
        before = self.mock.stats()["requests"]
        for session in ("s", "twin"):
            run = self.post("/v1/chat/completions", CHAT, session=session)
            self.assertEqual(run.summary["early_data"], "accepted", run.summary)
            self.assertEqual(run.first.status, 200)
            self.assertNotIn("early-data", self.mock.last()["headers"])
        self.assertEqual(self.mock.stats()["requests"], before + 2)
        self.srv.wait_log(lambda l: len(self.request_logs("/v1/chat/completions")) == 2)
        for line in self.request_logs("/v1/chat/completions"):
            self.assertNotIn("early_data", line)  # held, not served from early data

    def test_allow_0rtt_replay_forwards_with_early_data_header(self):
        self.start_h3({"allow_0rtt_replay": True})
        self.assertTrue(self.srv.wait_log(lambda l: l.get("kind") == "0rtt_replay_allowed"))
        self.prime()
        before = self.mock.stats()["requests"]
        relay, run = self.record_early_post()
        self.assertEqual(run.first.status, 200)
        self.assertEqual(self.mock.last()["headers"].get("early-data"), "1")
        self.replay(relay)
        # The operator accepted replays: the captured request reached the provider again.
        st, ok = self.mock.wait_stats(lambda s: s["requests"] >= before + 2, timeout=5)
        self.assertTrue(ok, st)
        self.assertEqual(self.mock.last()["headers"].get("early-data"), "1")

    def test_max_0rtt_size(self):
        self.start_h3({"allow_0rtt_replay": True, "max_0rtt_size": "1KB"})
        self.prime()
        before = self.mock.stats()["requests"]
        big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "z" * 4000}]}
        run = self.post("/v1/chat/completions", big, session="s")
        self.assertEqual(run.summary["early_data"], "accepted", run.summary)
        self.assertEqual(run.first.status, 425, run.first)
        self.assertIn(b"too_early", run.first.body)
        self.assertEqual(self.mock.stats()["requests"], before)
        self.assertEqual(self.metric("hapax_http3_early_data_total", outcome="too_large"), 1)
        # Within the bound it goes through.
        run = self.post("/v1/chat/completions", CHAT, session="s")
        self.assertEqual(run.first.status, 200, run.first)

    def test_enable_0rtt_false_refuses_early_data(self):
        self.start_h3({"enable_0rtt": False})
        self.prime()
        run = self.h3c("/health", session="s")
        self.assertEqual(run.summary["early_data"], "rejected", run.summary)
        self.assertEqual(run.first.status, 200)  # sent again over 1-RTT
        self.assertEqual(self.metric("hapax_http3_early_data_total", outcome="accepted"), 0)
        self.assertEqual(self.metric("hapax_http3_early_data_total", outcome="disabled"), 1)


class H3PacketsTest(H3Base):
    """Packets no connection sends, read off the wire."""

    def setUp(self):
        super().setUp()
        self.start_h3()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(3)

    def tearDown(self):
        self.sock.close()
        super().tearDown()

    def test_version_negotiation(self):
        dcid, scid = os.urandom(8), os.urandom(8)
        pkt = bytes([0xc0]) + struct.pack(">I", 0x1a2a3a4a) + bytes([8]) + dcid + bytes([8]) + scid
        self.sock.sendto(pkt + bytes(1200 - len(pkt)), (HOST, self.h3_port))
        data, _ = self.sock.recvfrom(2048)
        self.assertTrue(data[0] & 0x80)
        self.assertEqual(struct.unpack(">I", data[1:5])[0], 0)  # Version Negotiation
        self.assertEqual(data[6:14], scid)  # our SCID comes back as its DCID
        versions = [struct.unpack(">I", data[i:i + 4])[0] for i in range(5 + 1 + 8 + 1 + 8, len(data), 4)]
        self.assertIn(1, versions)
        self.assertEqual(self.metric("hapax_http3_events_total", kind="version_negotiation"), 1)

    def test_stateless_reset(self):
        def probe(cid):
            self.sock.sendto(bytes([0x40]) + cid + os.urandom(60), (HOST, self.h3_port))
            data, _ = self.sock.recvfrom(2048)
            time.sleep(0.01)
            return data
        cid = os.urandom(18)
        a, b = probe(cid), probe(cid)
        other = probe(os.urandom(18))
        self.assertLess(len(a), 1 + 18 + 60)  # smaller than what caused it
        self.assertEqual(a[0] & 0xc0, 0x40)  # looks like a short-header packet
        self.assertEqual(a[-16:], b[-16:])  # the token belongs to the connection ID
        self.assertNotEqual(a[-16:], other[-16:])
        self.assertEqual(self.metric("hapax_http3_events_total", kind="stateless_reset"), 3)


class H3NetworkTest(H3Base):
    """Loss, reordering, migration, two workers."""

    def test_loss_and_reordering(self):
        self.start_h3()
        with UdpRelay(self.h3_port, drop=0.05, reorder=0.1, seed=7) as relay:
            big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "q" * (1 << 20)}]}
            r = self.post("/v1/chat/completions", big, port=relay.port, timeout=60).first
            self.assertEqual(r.status, 200, r)
            self.assertEqual(len(self.mock.last()["body"]["messages"][0]["content"]), 1 << 20)
            run = self.post("/v1/chat/completions", dict(CHAT, stream=True), port=relay.port, timeout=60)
            self.assertEqual(run.first.status, 200)
            self.assertTrue(run.first.body.endswith(b"data: [DONE]\n\n"), run.first.body[-200:])
            st = relay.stats()
            self.assertGreater(st["c2s"]["dropped"] + st["s2c"]["dropped"], 0)
            self.assertGreater(st["c2s"]["reordered"] + st["s2c"]["reordered"], 0)

    def test_migration_mid_stream(self):
        self.start_h3()
        self.mock.arm("slow", count=-1, delay_ms=150)  # 8 chunks: 1.2 s of stream
        with UdpRelay(self.h3_port) as relay:
            import threading
            t = threading.Timer(0.4, relay.rebind)
            t.start()
            r = self.post("/v1/chat/completions", dict(CHAT, stream=True), port=relay.port).first
            t.join()
            self.assertEqual(r.status, 200)
            self.assertTrue(r.body.endswith(b"data: [DONE]\n\n"), r.body[-300:])
            self.assertEqual(len(relay.stats()["from_port"]), 2)  # the server answered the new address
        self.assertGreaterEqual(self.metric("hapax_http3_events_total", kind="migration"), 1)

    def test_two_workers_keep_their_connections(self):
        self.start_h3(server={"workers": 2})
        for i in range(12):
            # Every other client moves to a new port before it sends its request.
            args = ["--change-local-addr=5ms", "--delay-stream=300ms"] if i % 2 else []
            r = self.h3("/v1/models", args=args).first
            self.assertEqual(r.status, 200, "connection %d" % i)
        # A packet steered to the wrong worker would meet an unknown ID and a reset.
        self.assertEqual(self.metric("hapax_http3_events_total", kind="stateless_reset"), 0)
        self.assertGreaterEqual(self.metric("hapax_http3_events_total", kind="migration"), 1)


@unittest.skipUnless(have("chromium") or os.path.exists("/usr/lib/chromium/chromium"), "needs chromium")
class H3BrowserTest(H3Base):
    """A real browser over HTTP/3."""

    def test_chromium_get_and_post(self):
        from h3_browser import browser_fetch
        self.start_h3()
        origin = "localhost:%d" % self.h3_port
        # Chromium reaches the QUIC port directly (forced), as after an Alt-Svc.
        res = browser_fetch("https://%s/health" % origin, self.cert("ca.pem"), origin)
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["protocol"], "h3", res)
        self.assertIn('"status":"ok"', res["body"])
        res = browser_fetch("https://%s/v1/chat/completions" % origin, self.cert("ca.pem"), origin,
                            method="POST", body=json.dumps(CHAT), headers={"Content-Type": "application/json"})
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["protocol"], "h3", res)
        self.assertIn("chat.completion", res["body"])


if __name__ == "__main__":
    unittest.main()


@unittest.skipUnless(shutil.which("redis-server"), "redis-server is not installed")
class H3SharedRegisterTest(H3Base):
    """state.backend: redis: the single-use register is the cluster's. A
    first flight recorded on its way to one instance and replayed to
    another (which shares the ticket key, so it could decrypt it) gets no
    answer from early data there."""

    prime = H3ZeroRttTest.prime
    replay = H3ZeroRttTest.replay

    def two_instances(self):
        from redis_server import Redis
        self.redis = Redis(self.workdir).start()
        self.addCleanup(self.redis.stop)
        key = os.path.join(self.workdir, "ticket.key")
        with open(key, "wb") as f:
            f.write(os.urandom(64))
        os.chmod(key, 0o600)
        extra = {"state": {"backend": "redis", "redis": {"address": "127.0.0.1:%d" % self.redis.port}}}
        b = self.start_h3(extra=extra, server={"tls": {"ticket_key_file": key}})
        b_port = self.h3_port
        a = self.start_h3(extra=extra, server={"tls": {"ticket_key_file": key}})
        return a, b, b_port

    def test_first_flight_replayed_to_another_instance(self):
        a, b, b_port = self.two_instances()
        self.prime()
        with UdpRelay(self.h3_port) as relay:
            relay.record = True
            run = self.h3c("/health", session="s", port=relay.port)
            relay.record = False
        self.assertEqual(run.summary["early_data"], "accepted", run.summary)
        self.assertEqual(run.first.status, 200)
        self.replay(relay, port=b_port)
        self.srv = b
        self.assertTrue(b.wait_log(lambda l: l.get("kind") == "early_data_replay" and l.get("event") == "security"))
        self.assertEqual(self.metric("hapax_http3_early_data_total", outcome="replay"), 1)
        served = [l for l in b.logs()[0] if l.get("msg") == "request" and l.get("early_data") is True]
        self.assertEqual(served, [], "a replayed first flight was answered from early data")

    def test_fresh_early_data_still_served_early_on_another_instance(self):
        a, b, b_port = self.two_instances()
        self.prime()  # the ticket comes from a
        with UdpRelay(b_port) as relay:  # a real round trip: the handshake takes longer than Redis
            relay.latency_ms = 150  # a round trip of 300 ms: Redis answers well within it, also under ASan
            run = self.h3c("/health", session="s", port=relay.port)
            time.sleep(1.0)  # the client's last ACKs and CONNECTION_CLOSE still cross the relay: the request ends
        self.assertEqual(run.summary["early_data"], "accepted", run.summary)
        self.assertEqual(run.first.status, 200)
        self.srv = b
        self.assertTrue(b.wait_log(lambda l: l.get("msg") == "request" and l.get("early_data") is True))
        self.assertTrue(self.redis.cli("KEYS", "hapax:0rtt:*").strip())
