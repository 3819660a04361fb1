"""Structured logs on stderr: JSON lines, text format, levels, access log,
no secrets."""

import re

from harness import HapaxTestCase, build_request

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")
LEVELS = {"debug", "info", "warn", "error"}


def traffic(test, srv, prefix):
    """A mix of requests with known ids; returns [(id, method, path, status)]."""
    plan = [
        ("GET", "/health", None, 200),
        ("GET", "/nope", None, 404),
        ("DELETE", "/health", None, 405),
        ("HEAD", "/health", None, 200),
        ("POST", "/health", b'{"x":1}', 405),
    ]
    done = []
    c = test.conn(srv)
    for i, (method, path, body, status) in enumerate(plan):
        rid = "%s-%d" % (prefix, i)
        r = c.request(method, path, [("X-Request-ID", rid)], body)
        test.assertEqual(r.status, status, r)
        done.append((rid, method, path, status))
    c.close()
    return done


class JsonLogTest(HapaxTestCase):

    def test_every_line_is_json_with_ts_level_msg(self):
        srv = self.start_server()
        traffic(self, srv, "j")
        c = self.conn(srv)
        c.try_send(b"GARBAGE\r\n\r\n")
        c.wait_closed(5)
        c.close()
        self.assertEqual(srv.stop(), 0)
        recs, bad = srv.logs()
        self.assertEqual(bad, [], "stderr lines that are not JSON objects")
        self.assertTrue(recs, "no log lines at all")
        for r in recs:
            for key in ("ts", "level", "msg"):
                self.assertIn(key, r, "log line without %r: %r" % (key, r))
            self.assertRegex(r["ts"], TS_RE, r)
            self.assertIn(r["level"], LEVELS, r)
            self.assertIsInstance(r["msg"], str, r)
            self.assertTrue(r["msg"], r)
        self.assertTrue(any(r["level"] == "info" for r in recs), "no info lines at the default level")

    def test_access_log_one_line_per_request(self):
        srv = self.start_server()
        done = traffic(self, srv, "acc")
        self.assertEqual(srv.stop(), 0)
        recs, bad = srv.logs()
        self.assertEqual(bad, [])
        for rid, method, path, status in done:
            lines = [r for r in recs if r.get("msg") == "request" and r.get("request_id") == rid]
            self.assertEqual(len(lines), 1, "access log lines for %s %s (%s): %r"
                             % (method, path, rid, lines))
            rec = lines[0]
            self.assertEqual(rec.get("method"), method, rec)
            self.assertEqual(rec.get("path"), path, rec)
            self.assertEqual(rec.get("status"), status, rec)
            self.assertIsInstance(rec.get("duration_ms"), (int, float), rec)
            self.assertNotIsInstance(rec.get("duration_ms"), bool, rec)
            self.assertGreaterEqual(rec["duration_ms"], 0, rec)

    def test_access_log_disabled(self):
        srv = self.start_server({"logging": {"access_log": False}})
        done = traffic(self, srv, "off")
        self.assertEqual(srv.stop(), 0)
        recs, bad = srv.logs()
        self.assertEqual(bad, [])
        self.assertTrue(recs, "no log lines at all (expected at least startup/shutdown)")
        ids = {d[0] for d in done}
        self.assertEqual([r for r in recs if r.get("msg") == "request"], [])
        self.assertEqual([r for r in recs if r.get("request_id") in ids], [])


class LogFormatLevelTest(HapaxTestCase):

    def test_text_format(self):
        srv = self.start_server({"logging": {"format": "text"}})
        done = traffic(self, srv, "txt")
        self.assertEqual(srv.stop(), 0)
        lines = srv.log_lines()
        self.assertTrue(lines, "no log lines in text format")
        recs, _ = srv.logs()
        self.assertEqual(recs, [], "JSON lines although logging.format is text")
        for ln in lines:
            self.assertFalse(ln.lstrip().startswith("{"), "JSON-looking line in text format: %r" % ln)
        text = "\n".join(lines)
        for rid, _, _, _ in done:
            self.assertIn(rid, text, "request %s not in the text access log" % rid)

    def test_level_warn_has_no_info_lines(self):
        srv = self.start_server({"logging": {"level": "warn"}})
        traffic(self, srv, "warn")
        self.assertEqual(srv.stop(), 0)
        recs, bad = srv.logs()
        self.assertEqual(bad, [])
        low = [r for r in recs if r.get("level") in ("info", "debug")]
        self.assertEqual(low, [], "info/debug lines with logging.level=warn")


class SecretsNotLoggedTest(HapaxTestCase):

    SECRET1 = "sk-live-TOPSECRET"
    SECRET2 = "sk-live-TOPSECRET2"

    def test_auth_headers_never_logged(self):
        srv = self.start_server({"logging": {"level": "debug"},
                                 "server": {"max_header_bytes": "16KB"}})
        secret_headers = [("Authorization", "Bearer " + self.SECRET1),
                          ("X-API-Key", self.SECRET2)]
        ids = []
        c = self.conn(srv)
        for i, (method, path) in enumerate((("GET", "/health"), ("GET", "/nope"),
                                            ("POST", "/health"), ("DELETE", "/health"))):
            rid = "sec-%d" % i
            ids.append(rid)
            body = b'{"model":"x","prompt":"hi"}' if method == "POST" else None
            r = c.request(method, path, secret_headers + [("X-Request-ID", rid)], body)
            self.assertTrue(r.status > 0)
            if r.has_token("Connection", "close"):
                c.close()
                c = self.conn(srv)
        c.close()
        # Error paths too: oversized headers and a malformed request.
        big = self.conn(srv)
        big.try_send(build_request("GET", "/health", secret_headers + [("X-Pad", "p" * 32768)]))
        big.wait_closed(5)
        bad = self.conn(srv)
        bad.try_send(b"GET /health HTTP/1.1\r\nAuthorization: Bearer " + self.SECRET1.encode()
                     + b"\r\nX-API-Key: " + self.SECRET2.encode() + b"\r\nBroken header\r\n\r\n")
        bad.wait_closed(5)
        big.close()
        bad.close()
        self.assertEqual(srv.stop(), 0)
        text = srv.stderr_text()
        self.assertNotIn("TOPSECRET", text, "a secret header value reached the log")
        for rid in ids:
            self.assertIn(rid, text, "request %s was not logged at all" % rid)
