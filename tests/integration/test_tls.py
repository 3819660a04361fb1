"""The TLS listener (docs/tls.md): server.tls.enabled serves HTTPS on
server.tls.port next to the plain port, with versions, ALPN, SNI, client
certificates used by auth, certificate renewal without a signal, a
handshake deadline, redirect_http. Certificates come from
tests/certs/gen.sh in the test's own directory."""

import hashlib
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time
import unittest

from harness import (DEFAULT_TIMEOUT, HOST, REPO_ROOT, HapaxTestCase, RawConn, build_request, free_port,
                     http_request)
from test_http2 import (END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, GOAWAY, HEADERS, PREFACE, RST_STREAM,
                        SETTINGS, H2Raw, frame, goaway_code, rapid_reset_frames, request_block)


def have(tool):
    return shutil.which(tool) is not None


def route_family_cases(base):
    """One curl call per route family at base (health, models, chat whole
    and streamed, messages): (curl arguments, text the body must hold)."""
    chat = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
    chat_stream = chat[:-1] + ',"stream":true}'
    msgs = '{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'
    return [
        (["%s/health" % base], '"status":"ok"'),
        (["%s/v1/models" % base], '"object":"list"'),
        (["-H", "Content-Type: application/json", "-d", chat, "%s/v1/chat/completions" % base],
         '"chat.completion"'),
        (["-N", "-H", "Content-Type: application/json", "-d", chat_stream, "%s/v1/chat/completions" % base],
         "data: [DONE]"),
        (["-H", "Content-Type: application/json", "-d", msgs, "%s/v1/messages" % base], '"type":"message"'),
    ]


class TlsConn(RawConn):
    """RawConn over TLS (python's ssl): the same deadline-bounded reads."""

    def __init__(self, port, ctx, sni="a.test", timeout=DEFAULT_TIMEOUT):
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        raw = socket.create_connection((HOST, port), timeout=timeout)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=sni, suppress_ragged_eofs=False)
        except Exception:
            raw.close()
            raise


class TlsBase(HapaxTestCase):
    """A mock provider and certificates; start_tls() starts hapax with TLS."""

    def setUp(self):
        super().setUp()
        self.certs = os.path.join(self.workdir, "certs")
        subprocess.run(["sh", os.path.join(REPO_ROOT, "tests", "certs", "gen.sh"), self.certs], check=True)
        self.mock = self.start_mock(name="mock")

    def cert(self, name):
        return os.path.join(self.certs, name)

    def start_tls(self, tls=None, extra=None, wait_ready=True, same_port=False):
        self.tls_port = free_port()
        t = {"enabled": True, "port": self.tls_port, "cert_file": self.cert("chain.pem"),
             "key_file": self.cert("server.key"),
             "certificates": [{"cert_file": self.cert("other.pem"), "key_file": self.cert("other.key")}],
             "handshake_timeout": "1s"}
        t.update(tls or {})
        over = {"server": {"tls": t},
                "llm": {"provider": "openai", "model": "gpt-4o-mini", "api_key": "sk-test",
                        "endpoint": self.mock.endpoint("openai"), "health_check": {"enabled": False}}}
        for k, v in (extra or {}).items():
            over.setdefault(k, {}).update(v)
        if same_port:
            from harness import HapaxServer  # a TLS-only server: its port is the TLS port
            srv = HapaxServer(self.workdir, name="tlsonly", port=self.tls_port, overrides=dict(
                over, server=dict(over["server"], port=self.tls_port, host=HOST, shutdown_timeout="5s")))
            self._servers.append(srv)
            srv.start(wait_ready=False)
            self.srv = srv
            self.wait_tls()
            return srv
        self.srv = self.start_server(over, wait_ready=wait_ready)
        self.wait_tls()
        return self.srv

    def ctx(self, cert=None, key=None, maxv=None, minv=None, alpn=None):
        c = ssl.create_default_context(cafile=self.cert("ca.pem"))
        if cert:
            c.load_cert_chain(self.cert(cert), self.cert(key))
        if maxv:
            c.maximum_version = maxv
        if minv:
            c.minimum_version = minv
        if alpn:
            c.set_alpn_protocols(alpn)
        return c

    def wait_tls(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                with TlsConn(self.tls_port, self.ctx()) as c:
                    if c.request("GET", "/health").status == 200:
                        return
            except (OSError, ssl.SSLError):
                pass
            if time.monotonic() > deadline or not self.srv.alive():
                self.fail("the TLS port did not answer:\n" + self.srv.stderr_text()[-3000:])
            time.sleep(0.05)

    def tls_get(self, path, sni="a.test", ctx=None, headers=None):
        with TlsConn(self.tls_port, ctx or self.ctx(), sni=sni) as c:
            return c.request("GET", path, headers=headers)

    def serial(self, sni="a.test"):
        with TlsConn(self.tls_port, self.ctx(), sni=sni) as c:
            return c.sock.getpeercert()["serialNumber"]

    def curl(self, *args):
        return subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", self.cert("ca.pem"),
                               "--resolve", "a.test:%d:%s" % (self.tls_port, HOST)] + list(args),
                              capture_output=True, text=True, timeout=20)


class TlsServeTest(TlsBase):

    def setUp(self):
        super().setUp()
        self.start_tls(extra={"server": {"max_header_bytes": "16KB", "max_body_bytes": "1MB"}})

    def test_tls12_and_13_by_every_client(self):
        for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(python=v):
                with TlsConn(self.tls_port, self.ctx(maxv=v, minv=v)) as c:
                    self.assertEqual(c.request("GET", "/health").status, 200)
                    self.assertEqual(c.sock.version(), "TLSv1.3" if v == ssl.TLSVersion.TLSv1_3 else "TLSv1.2")
        if have("openssl"):
            for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
                with self.subTest(openssl=flag):
                    r = self.hold_stdin(["openssl", "s_client", "-connect", "%s:%d" % (HOST, self.tls_port),
                                         "-servername", "a.test", "-CAfile", self.cert("ca.pem"), flag,
                                         "-verify_return_error", "-brief"])
                    self.assertIn("HTTP/1.1 200", r.stdout, r.stderr)
                    self.assertIn("Protocol version: " + name, r.stderr)
        if have("gnutls-cli"):
            for prio, name in (("NORMAL:-VERS-ALL:+VERS-TLS1.2", "TLS1.2"),
                               ("NORMAL:-VERS-ALL:+VERS-TLS1.3", "TLS1.3")):
                with self.subTest(gnutls=name):
                    r = self.hold_stdin(["gnutls-cli", "--x509cafile", self.cert("ca.pem"), "--priority", prio,
                                         "--sni-hostname", "a.test", "--verify-hostname", "a.test",
                                         "-p", str(self.tls_port), HOST])
                    self.assertIn("HTTP/1.1 200", r.stdout, r.stderr)
                    self.assertIn("(%s-X.509)" % name, r.stdout)

    @staticmethod
    def hold_stdin(cmd):
        """A command-line client sends the request and keeps its input open
        until the answer is in (at EOF on stdin it would close first)."""
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        p.stdin.write("GET /health HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        p.stdin.flush()
        try:
            p.wait(timeout=20)  # the server closes after the answer; the client then exits
        except subprocess.TimeoutExpired:
            p.kill()
        p.stdin.close()
        out, err = p.stdout.read(), p.stderr.read()
        p.stdout.close()
        p.stderr.close()
        p.wait()
        return subprocess.CompletedProcess(cmd, p.returncode, out, err)

    def test_alpn_picks_h2_or_http11(self):
        """The default alpn [h2, http/1.1]: a client offering both gets h2;
        one offering http/1.1 only, or no ALPN at all, is served HTTP/1.1."""
        with TlsConn(self.tls_port, self.ctx(alpn=["h2", "http/1.1"])) as c:
            self.assertEqual(c.sock.selected_alpn_protocol(), "h2")
        with TlsConn(self.tls_port, self.ctx(alpn=["http/1.1"])) as c:
            self.assertEqual(c.sock.selected_alpn_protocol(), "http/1.1")
            self.assertEqual(c.request("GET", "/health").status, 200)
        with TlsConn(self.tls_port, self.ctx()) as c:  # no ALPN at all: HTTP/1.1
            self.assertEqual(c.request("GET", "/health").status, 200)

    def test_sni_picks_the_certificate(self):
        for sni, cn in (("a.test", "a.test"), ("b.test", "a.test"), ("c.test", "c.test")):
            with self.subTest(sni=sni):
                with TlsConn(self.tls_port, self.ctx(), sni=sni) as c:
                    subject = dict(x[0] for x in c.sock.getpeercert()["subject"])
                    self.assertEqual(subject["commonName"], cn)

    def test_every_route_family_with_curl(self):
        base = "https://a.test:%d" % self.tls_port
        for args, want in route_family_cases(base):
            with self.subTest(url=args[-1], want=want):
                r = self.curl(*args)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(want, r.stdout)
        log = self.srv.wait_log(lambda ln: ln.get("msg") == "request" and ln.get("path") == "/v1/messages")
        self.assertEqual(log.get("scheme"), "https")

    def test_413_and_431_over_tls(self):
        with TlsConn(self.tls_port, self.ctx()) as c:
            r = c.request("GET", "/health", headers={"X-Big": "x" * 20000})
            self.assertEqual(r.status, 431)
        with TlsConn(self.tls_port, self.ctx()) as c:
            c.send(build_request("POST", "/v1/chat/completions",
                                 headers={"Content-Type": "application/json", "Content-Length": str(1 << 30)}))
            self.assertEqual(c.read_response("POST").status, 413)

    def test_stalled_handshake_is_cut(self):
        """handshake_timeout (1s): a client that sends nothing, or half a
        ClientHello, is closed; others are served meanwhile."""
        silent = RawConn(self.tls_port, timeout=8)
        half = RawConn(self.tls_port, timeout=8)
        half.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        self.assertEqual(self.tls_get("/health").status, 200)
        t0 = time.monotonic()
        self.assertTrue(silent.wait_closed(8))
        self.assertTrue(half.wait_closed(8))
        self.assertLess(time.monotonic() - t0, 7)
        silent.close()
        half.close()

    def test_garbage_instead_of_client_hello(self):
        for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\xff\xff" + b"\x00" * 64, os.urandom(512)):
            with self.subTest(junk=junk[:8]):
                c = RawConn(self.tls_port, timeout=5)
                c.send(junk)
                self.assertTrue(c.wait_closed(5))
                self.assertNotIn(b"HTTP/1.1", bytes(c.buf))
                c.close()
                self.assertEqual(self.tls_get("/health").status, 200)

    def test_plain_port_still_plain(self):
        self.assertEqual(self.srv.get("/health").status, 200)
        r = self.srv.get("/v1/models", headers={"Host": "a.test"})
        self.assertEqual(r.status, 200, "redirect_http is off by default")

    def test_keep_alive_and_large_answer(self):
        with TlsConn(self.tls_port, self.ctx()) as c:
            for _ in range(3):
                self.assertEqual(c.request("GET", "/v1/models").status, 200)
            # a body of many records each way
            body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"%s"}]}' % ("y" * 300000)
            r = c.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"}, body=body)
            self.assertEqual(r.status, 200, r.body[:300])

    def test_drain_sends_close_notify(self):
        """SIGTERM: an idle keep-alive TLS connection gets close_notify
        (a clean TLS EOF, not a bare FIN: the client can tell a cut)."""
        c = TlsConn(self.tls_port, self.ctx(maxv=ssl.TLSVersion.TLSv1_2))
        self.assertEqual(c.request("GET", "/health").status, 200)
        self.srv.signal(signal.SIGTERM)
        c.sock.settimeout(5)
        try:
            data = c.sock.recv(100)
        except ssl.SSLEOFError as e:
            self.fail("FIN without close_notify: %r" % e)
        self.assertEqual(data, b"")
        c.close()
        self.srv.wait_exit(10)


class TlsOnlyTest(TlsBase):

    def test_same_port_is_tls_only(self):
        self.start_tls(same_port=True)
        self.assertEqual(self.tls_get("/health").status, 200)
        c = RawConn(self.tls_port, timeout=5)
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(c.wait_closed(5))
        self.assertNotIn(b"HTTP/1.1 200", bytes(c.buf))
        c.close()


class TlsMinVersionTest(TlsBase):

    def test_min_version_13_refuses_12(self):
        self.start_tls({"min_version": "1.3"})
        with self.assertRaises(ssl.SSLError):
            TlsConn(self.tls_port, self.ctx(maxv=ssl.TLSVersion.TLSv1_2)).close()
        with TlsConn(self.tls_port, self.ctx()) as c:
            self.assertEqual(c.sock.version(), "TLSv1.3")
        if have("openssl"):
            r = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (HOST, self.tls_port), "-tls1_2",
                                "-servername", "a.test"], input="", capture_output=True, text=True, timeout=20)
            self.assertNotEqual(r.returncode, 0)


class TlsClientCertTest(TlsBase):

    def fingerprint(self, name):
        with open(self.cert(name)) as f:
            return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()

    def start_mtls(self, mode):
        self.start_tls({"client_auth": mode, "client_ca_file": self.cert("ca.pem")}, extra={
            "auth": {"enabled": True, "keys": [
                {"name": "svc", "client_cert": "sha256:" + self.fingerprint("client.pem")},
                {"name": "web", "key": "hx-bearer-key-0123456789"}]},
        }, wait_ready=True)

    def wait_tls(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with TlsConn(self.tls_port, self.ctx("client.pem", "client.key")) as c:
                    if c.request("GET", "/health").status == 200:
                        return
            except (OSError, ssl.SSLError):
                time.sleep(0.05)
        self.fail("TLS port not ready:\n" + self.srv.stderr_text()[-3000:])

    def chat(self, ctx, headers=None):
        body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        with TlsConn(self.tls_port, ctx) as c:
            return c.request("POST", "/v1/chat/completions", headers=h, body=body)

    def test_client_cert_is_a_key(self):
        self.start_mtls("optional")
        r = self.chat(self.ctx("client.pem", "client.key"))
        self.assertEqual(r.status, 200, r.body)
        log = self.srv.wait_log(lambda ln: ln.get("msg") == "request" and ln.get("status") == 200
                                and ln.get("path") == "/v1/chat/completions")
        self.assertEqual(log.get("key_name"), "svc")
        # no certificate: the bearer key decides
        self.assertEqual(self.chat(self.ctx()).status, 401)
        self.assertEqual(self.chat(self.ctx(), {"Authorization": "Bearer hx-bearer-key-0123456789"}).status, 200)
        # a certificate from another CA fails the handshake
        with self.assertRaises((ssl.SSLError, OSError)):
            self.chat(self.ctx("rogue.pem", "rogue.key"))

    @unittest.skipUnless(have("curl"), "curl needed")
    def test_client_cert_is_a_key_over_h2(self):
        """ALPN h2: the certificate's identity reaches the HTTP/2 stream's
        request as it does over HTTP/1.1."""
        self.start_mtls("optional")
        chat = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
        url = "https://a.test:%d/v1/chat/completions" % self.tls_port
        r = self.curl("--http2", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                      "--cert", self.cert("client.pem"), "--key", self.cert("client.key"),
                      "-H", "Content-Type: application/json", "-d", chat, url)
        self.assertEqual(r.stdout, "200 2", r.stderr)
        log = self.srv.wait_log(lambda ln: ln.get("msg") == "request" and ln.get("status") == 200
                                and ln.get("path") == "/v1/chat/completions")
        self.assertEqual(log.get("key_name"), "svc")
        r = self.curl("--http2", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                      "-H", "Content-Type: application/json", "-d", chat, url)
        self.assertEqual(r.stdout, "401 2", r.stderr)

    def test_require_refuses_without_certificate(self):
        self.start_mtls("require")
        self.assertEqual(self.chat(self.ctx("client.pem", "client.key")).status, 200)
        with self.assertRaises((ssl.SSLError, OSError, ConnectionError)):
            # TLS 1.3: the refusal may surface at the first read
            self.chat(self.ctx())


class TlsReloadTest(TlsBase):

    def new_leaf(self, out, days=3650, expired=False):
        tmpl = os.path.join(self.certs, "renew.tmpl")
        with open(tmpl, "w") as f:
            f.write('cn = "a.test"\ndns_name = "a.test"\ndns_name = "b.test"\ntls_www_server\nsigning_key\n'
                    'serial = %d\n' % (int(time.time() * 1000) % 10**9))
            if expired:
                f.write('activation_date = "2019-01-01 00:00:00"\nexpiration_date = "2020-01-01 00:00:00"\n')
            else:
                f.write("expiration_days = %d\n" % days)
        subprocess.run(["certtool", "--generate-certificate", "--load-privkey", self.cert("server.key"),
                        "--load-ca-certificate", self.cert("ca.pem"), "--load-ca-privkey", self.cert("ca.key"),
                        "--template", tmpl, "--outfile", out], check=True, capture_output=True)
        return out

    def swap_in(self, leaf):
        tmp = self.cert("chain.pem.new")
        with open(tmp, "w") as f, open(leaf) as a, open(self.cert("ca.pem")) as b:
            f.write(a.read() + b.read())
        os.rename(tmp, self.cert("chain.pem"))  # atomic, as certbot's link swap

    def test_renewal_without_a_signal_under_traffic(self):
        self.start_tls()
        old = self.serial()
        keep = TlsConn(self.tls_port, self.ctx())
        self.assertEqual(keep.request("GET", "/health").status, 200)
        self.swap_in(self.new_leaf(self.cert("renewed.pem")))
        deadline = time.monotonic() + 15
        while self.serial() == old:
            self.assertLess(time.monotonic(), deadline, "the renewed certificate was not picked up")
            self.assertEqual(keep.request("GET", "/health").status, 200)  # keeps working meanwhile
            time.sleep(0.2)
        self.assertEqual(keep.request("GET", "/v1/models").status, 200)
        keep.close()
        self.srv.wait_log(lambda ln: ln.get("msg") == "configuration reloaded" and ln.get("trigger") == "certificate")

    def test_expired_certificate_in_reload_is_refused(self):
        self.start_tls()
        old = self.serial()
        self.swap_in(self.new_leaf(self.cert("expired2.pem"), expired=True))
        self.srv.signal(signal.SIGHUP)
        self.srv.wait_log(lambda ln: ln.get("msg", "").startswith("configuration reload failed")
                          and "expired" in ln.get("error", ""))
        self.assertEqual(self.serial(), old)
        self.assertEqual(self.tls_get("/health").status, 200)


class RedirectTest(TlsBase):

    def test_plain_port_redirects_to_https(self):
        self.start_tls({"redirect_http": True})
        r = self.srv.request("POST", "/v1/chat/completions?x=1", headers={"Host": "a.test:%d" % self.srv.port},
                             body="{}")
        self.assertEqual(r.status, 308)
        self.assertEqual(r.header("location"), "https://a.test:%d/v1/chat/completions?x=1" % self.tls_port)
        # the request's own host only, port replaced; a bad Host is refused
        r = self.srv.get("/v1/models", headers={"Host": "[::1]:80"})
        self.assertEqual(r.header("location"), "https://[::1]:%d/v1/models" % self.tls_port)
        for bad in ("evil.com/x", "a.test:80@evil.com", "a b", ""):
            with self.subTest(host=bad):
                c = RawConn(self.srv.port)
                r = c.request("GET", "/v1/models", headers={"Host": bad})
                self.assertEqual(r.status, 400)
                self.assertIsNone(r.header("location"))
                c.close()
        # CR/LF decoded from the path cannot split the header
        r = self.srv.get("/a%0d%0aSet-Cookie:%20x", headers={"Host": "a.test"})
        self.assertEqual(r.header("location"), "https://a.test:%d/a%%0d%%0aSet-Cookie:%%20x" % self.tls_port)
        self.assertIsNone(r.header("set-cookie"))
        # health and metrics stay plain; HTTPS is served as usual
        self.assertEqual(self.srv.get("/health").status, 200)
        self.assertEqual(self.tls_get("/v1/models").status, 200)
        # curl follows to HTTPS
        r = self.curl("-L", "http://a.test:%d/v1/models" % self.srv.port,
                      "--resolve", "a.test:%d:%s" % (self.srv.port, HOST))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"object":"list"', r.stdout)


if __name__ == "__main__":
    unittest.main()


class H2Tls(H2Raw):
    """test_http2's frame client over TLS with ALPN h2."""

    def __init__(self, port, ctx, settings=b""):
        self.buf = b""
        self.closed = False
        raw = socket.create_connection((HOST, port), timeout=5)
        self.sock = ctx.wrap_socket(raw, server_hostname="a.test")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.send(PREFACE + frame(SETTINGS, 0, 0, settings))


@unittest.skipUnless(have("curl") and have("nghttp"), "curl and nghttp (nghttp2-client) needed")
class TlsHttp2Test(TlsBase):
    """HTTP/2 over TLS (ALPN h2): the routes, the limits and the defences
    of docs/http2.md, as on h2c."""

    def setUp(self):
        super().setUp()
        self.start_tls(extra={"server": {"max_header_bytes": "16KB", "max_body_bytes": "1MB",
                                         "http2": {"max_resets_per_second": 50}}})

    def h2curl(self, *args):
        r = self.curl("--http2", "-w", "\n%{http_code} %{http_version}", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        body, _, tail = r.stdout.rpartition("\n")
        return body, tail

    def test_routes_with_curl_h2(self):
        base = "https://a.test:%d" % self.tls_port
        for args, want in route_family_cases(base):
            with self.subTest(url=args[-1], want=want):
                body, tail = self.h2curl(*args)
                self.assertEqual(tail, "200 2", body[:300])
                self.assertIn(want, body)
        log = self.srv.wait_log(lambda ln: ln.get("msg") == "request" and ln.get("path") == "/v1/messages")
        self.assertEqual(log.get("scheme"), "https")

    def test_413_and_431_over_h2_tls(self):
        base = "https://a.test:%d" % self.tls_port
        _, tail = self.h2curl("-o", "/dev/null", "-H", "X-Big: " + "x" * 20000, "%s/health" % base)
        self.assertEqual(tail, "431 2")
        path = os.path.join(self.workdir, "big.json")
        with open(path, "wb") as f:
            f.write(b"y" * (2 << 20))
        _, tail = self.h2curl("-o", "/dev/null", "-H", "Content-Type: application/json",
                              "--data-binary", "@" + path, "%s/v1/chat/completions" % base)
        self.assertEqual(tail, "413 2")

    def test_nghttp_over_tls(self):
        url = "https://%s:%d" % (HOST, self.tls_port)
        p = subprocess.run(["nghttp", "-v", "-y", url + "/health"], capture_output=True, timeout=30)
        out = p.stdout.decode()
        self.assertIn("h2", out)
        self.assertIn(":status: 200", out)
        path = os.path.join(self.workdir, "req.json")
        with open(path, "w") as f:
            f.write('{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}')
        p = subprocess.run(["nghttp", "-v", "-y", "-d", path, "-H", "content-type: application/json",
                            url + "/v1/chat/completions"], capture_output=True, timeout=30)
        out = p.stdout.decode()
        self.assertIn(":status: 200", out)
        self.assertIn("data: [DONE]", out)

    def test_rapid_reset_over_tls_gets_goaway(self):
        c = H2Tls(self.tls_port, self.ctx(alpn=["h2"]))
        c.send(rapid_reset_frames(400))
        got = c.frames(timeout=10, until=lambda f: f[0] == GOAWAY)
        self.assertEqual(goaway_code(got), ENHANCE_YOUR_CALM, got[-3:])
        c.close()
        ev = self.srv.wait_log(lambda r: r.get("kind") == "http2_abuse")
        self.assertIsNotNone(ev, "no security event")
        self.assertEqual(ev.get("reason"), "rapid_reset")
        _, tail = self.h2curl("-o", "/dev/null", "https://a.test:%d/health" % self.tls_port)
        self.assertEqual(tail, "200 2")  # other clients are still served


class TlsHttp2OffTest(TlsBase):

    def test_http2_disabled_alpn_picks_http11(self):
        self.start_tls(extra={"server": {"http2": {"enabled": False}}})
        with TlsConn(self.tls_port, self.ctx(alpn=["h2", "http/1.1"])) as c:
            self.assertEqual(c.sock.selected_alpn_protocol(), "http/1.1")
            self.assertEqual(c.request("GET", "/health").status, 200)
        if have("curl"):
            r = self.curl("--http2", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                          "https://a.test:%d/health" % self.tls_port)
            self.assertEqual(r.stdout, "200 1.1", r.stderr)
        # alpn [h2, http/1.1] by default: the operator is told h2 is not offered
        self.assertIsNotNone(self.srv.wait_log(lambda ln: ln.get("protocol") == "h2"
                                               and "not offered" in ln.get("msg", "")))
