"""Structured logs on stderr: JSON lines, text format, levels, access log,
no secrets."""

import json
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


class AccessLogFieldsTest(HapaxTestCase):
    """The access-log line of a request that went through auth, the queue
    and a failover carries every field, in the same order: the line is
    written by the application's done hook (gateway/access_log.c) from the
    modules' request context slots, and must read as it always has."""

    KEY = "sk-logging-fields-0001"

    def test_fields_and_order_of_a_proxied_request(self):
        from test_money import config
        from test_providers import provider, user

        a, b = self.start_mock(), self.start_mock()
        a.arm("500", -1)
        cfg = config(provider("openai", a), [provider("openai", b, name="backup")],
                     retry={"max_retries": 0})
        cfg["auth"] = {"enabled": True, "keys": [{"name": "app", "key": self.KEY}]}
        cfg["queue"] = {"enabled": True, "max_concurrent": 4, "initial_size": 4, "max_wait": "5s"}
        srv = self.start_server(cfg)
        body = json.dumps({"messages": [user("one two three")]})
        r = srv.request("POST", "/v1/chat/completions", body=body, headers={
            "Content-Type": "application/json", "Authorization": "Bearer " + self.KEY,
            "X-Request-ID": "fields-1"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(srv.stop(), 0)
        lines = [ln for ln in srv.log_lines() if '"request_id":"fields-1"' in ln and '"msg":"request"' in ln]
        self.assertEqual(len(lines), 1, lines)
        rec = json.loads(lines[0], object_pairs_hook=list)
        keys = [k for k, _ in rec]
        self.assertEqual(keys, ["ts", "level", "msg", "request_id", "client_ip", "key_name", "method", "path",
                                "status", "duration_ms", "bytes_in", "bytes_out", "queue_wait_ms", "provider",
                                "model", "attempts", "prompt_tokens", "completion_tokens", "failures",
                                "aborted"], lines[0])
        vals = dict(rec)
        self.assertEqual((vals["client_ip"], vals["key_name"], vals["provider"], vals["attempts"]),
                         ("127.0.0.1", "app", "backup", 2), lines[0])
        self.assertEqual((vals["prompt_tokens"], vals["aborted"]), (3, False), lines[0])
        self.assertIn("openai:", vals["failures"], lines[0])
