"""Protection and observability middleware, end to end against the real
binary and the mock provider: request ids, API keys (`auth`), rate limits
(`rate_limit`), CORS, Prometheus metrics (`/metrics`) and secrets that must
never leave the gateway.

Every test starts its own mock provider and its own hapax. The mock's usage
is deterministic (prompt tokens = words of the messages, completion tokens =
8), which the token budget and token counter tests rely on. Waits are
bounded polls; no test asserts how fast something happens.
"""

import hashlib
import json
import re
import secrets
import subprocess
import time

import harness

from harness import (UUID4_RE, HapaxTestCase, base_config, deep_merge, free_port, render_yaml)
from test_providers import provider, user

REQ_TIMEOUT = 15.0
PATH = "/v1/chat/completions"
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
WWW_AUTH = 'Bearer realm="hapax"'


def chat_body(said="hello there", model=None, stream=False):
    body = {"messages": [user(said)]}
    if model is not None:
        body["model"] = model
    if stream:
        body["stream"] = True
    return json.dumps(body)


def bearer(key):
    return {"Authorization": "Bearer " + key}


def cors_headers(resp):
    return [(k, v) for k, v in resp.headers if k.lower().startswith("access-control-")]


# ---------------------------------------------------------------------------
# Prometheus text parsing

_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, float)] of every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if m is None:
            raise AssertionError("not a sample line: %r" % line)
        labels = {k: v for k, v in _LABEL_RE.findall(m.group(2) or "")}
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def samples(parsed, name, **labels):
    """Values of the samples of `name` whose labels include `labels`."""
    return [v for n, l, v in parsed
            if n == name and all(l.get(k) == want for k, want in labels.items())]


# ---------------------------------------------------------------------------
# base

class ProtectionCase(HapaxTestCase):

    def llm_cfg(self, mock, backups=(), **kw):
        p = provider("openai", mock)
        p.update({"retry": {"max_retries": 0}, "health_check": {"enabled": False},
                  "connect_timeout": "2s", "first_byte_timeout": "5s", "request_timeout": "20s"})
        if backups:
            p["backup_providers"] = list(backups)
        p.update(kw)
        return {"llm": p}

    def pair(self, extra=None, backups=None, **llm_kw):
        """A mock and a hapax whose primary is openai/gpt-test on it."""
        mock = self.start_mock()
        cfg = self.llm_cfg(mock, backups(mock) if backups else (), **llm_kw)
        cfg.update(extra or {})
        return mock, self.start_server(cfg)

    def post_chat(self, srv, headers=None, said="hello there", model=None, stream=False,
                  path=PATH):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return srv.request("POST", path, headers=h, body=chat_body(said, model, stream),
                           timeout=REQ_TIMEOUT)

    def access_line(self, srv, rid):
        """The access-log line (msg "request") of request id `rid`."""
        rec = srv.wait_log(lambda r: r.get("msg") == "request" and r.get("request_id") == rid)
        self.assertIsNotNone(rec, "no access-log line for request %s; log tail:\n%s"
                             % (rid, srv.stderr_text()[-3000:]))
        return rec

    def settle(self, srv, resp):
        """Waits for the access-log line of `resp`: hapax writes it after the
        request's finish hooks (token debit) and its request metrics, so
        what follows sees both."""
        return self.access_line(srv, resp.header("X-Request-ID"))

    def event_lines(self, srv, event, n=1, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            got = [r for r in srv.logs()[0] if r.get("event") == event]
            if len(got) >= n or time.monotonic() >= deadline:
                return got
            time.sleep(0.05)

    def wait_answering(self, srv, path="/health", timeout=10.0):
        """For a server started with wait_ready=False: the first answer to GET path."""
        deadline = time.monotonic() + timeout
        while True:
            self.assertTrue(srv.alive(), "hapax exited: %s" % srv.stderr_text()[-2000:])
            try:
                return srv.get(path, timeout=1.0)
            except OSError:
                pass
            self.assertLess(time.monotonic(), deadline, "hapax never answered %s" % path)
            time.sleep(0.05)

    def assertRateHeaders(self, resp, limit=None, remaining=None):
        for h in RATE_HEADERS:
            v = resp.header(h)
            self.assertIsNotNone(v, "%s missing: %r" % (h, resp))
            self.assertRegex(v, r"^\d+$", "%s is not a number: %r" % (h, resp))
        if limit is not None:
            self.assertEqual(int(resp.header("RateLimit-Limit")), limit, resp)
        if remaining is not None:
            self.assertEqual(int(resp.header("RateLimit-Remaining")), remaining, resp)

    def assert429(self, resp, kind="requests"):
        err = self.assertJsonError(resp, 429, "rate_limit_exceeded")
        self.assertEqual(err["type"], "rate_limit_error", resp)
        self.assertRegex(resp.header("Retry-After") or "", r"^\d+$", resp)
        self.assertGreaterEqual(int(resp.header("Retry-After")), 1, resp)
        self.assertRateHeaders(resp)
        if kind == "requests":
            self.assertEqual(resp.header("RateLimit-Remaining"), "0", resp)
        return err

    def assert401(self, resp):
        err = self.assertJsonError(resp, 401, "invalid_api_key")
        self.assertEqual(err["type"], "authentication_error", resp)
        self.assertEqual(resp.header_all("WWW-Authenticate"), [WWW_AUTH], resp)
        return err


# ---------------------------------------------------------------------------
# 1. request ids

class TestRequestId(ProtectionCase):

    def test_valid_incoming_id_is_kept(self):
        mock, srv = self.pair()
        for rid in ("client-req.42:abc_DEF", "x", "A" * 128):
            with self.subTest(rid=rid[:20]):
                r = self.post_chat(srv, {"X-Request-ID": rid})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header_all("X-Request-ID"), [rid], r)
                self.assertTrue(r.header("X-Response-Time"), r)
                line = self.access_line(srv, rid)
                self.assertEqual(line["status"], 200)
                self.assertEqual(line["path"], PATH)

    def test_invalid_incoming_id_is_replaced_by_uuid4(self):
        mock, srv = self.pair()
        bad = {"too long": "A" * 129, "space": "bad id", "slash": "a/b", "bang": "abc!",
               "quote": 'a"b', "empty": ""}
        seen = set()
        for what, rid in bad.items():
            with self.subTest(what=what):
                r = self.post_chat(srv, {"X-Request-ID": rid})
                self.assertEqual(r.status, 200, r)
                got = r.header_all("X-Request-ID")
                self.assertEqual(len(got), 1, r)
                self.assertRegex(got[0], UUID4_RE, "invalid id %r was not replaced: %r" % (rid, r))
                self.assertNotIn(got[0], seen, "request ids repeat")
                seen.add(got[0])
                line = self.access_line(srv, got[0])
                self.assertEqual(line["status"], 200)
        self.assertFalse(any(r.get("request_id") in bad.values() for r in srv.logs()[0]
                             if r.get("request_id")), "an invalid id reached the log")

    def test_id_on_errors_and_in_access_log(self):
        mock, srv = self.pair(extra={"auth": {"enabled": True,
                                              "keys": [{"name": "app", "key": "hx-test-app-key"}]}})
        cases = [("GET", "/no/such/route", {}, 404, "not_found"),
                 ("POST", PATH, {"Content-Type": "application/json"}, 401, "invalid_api_key")]
        for method, path, hdrs, status, code in cases:
            with self.subTest(status=status, incoming=True):
                rid = "err-%d-kept" % status
                h = dict(hdrs, **{"X-Request-ID": rid})
                r = srv.request(method, path, headers=h, body=chat_body() if method == "POST" else None)
                err = self.assertJsonError(r, status, code)
                self.assertEqual(r.header("X-Request-ID"), rid, r)
                self.assertEqual(err["request_id"], rid)
                line = self.access_line(srv, rid)
                self.assertEqual((line["status"], line["path"], line["method"]), (status, path, method))
                self.assertEqual(line.get("error"), code)
            with self.subTest(status=status, incoming=False):
                r = srv.request(method, path, headers=hdrs, body=chat_body() if method == "POST" else None)
                err = self.assertJsonError(r, status, code)
                rid = r.header("X-Request-ID")
                self.assertRegex(rid, UUID4_RE)
                line = self.access_line(srv, rid)
                self.assertEqual(line["status"], status)
        # The 401 also names the request in its audit line.
        fails = self.event_lines(srv, "auth_failure", 2)
        self.assertIn("err-401-kept", [f.get("request_id") for f in fails], fails)
        self.assertEqual(mock.stats()["requests"], 0, "a refused request reached the provider")

    def test_request_id_is_sent_upstream(self):
        # docs/operations.md (middleware table): the request id is
        # "returned on every response, logged, sent upstream".
        mock, srv = self.pair()
        r = self.post_chat(srv, {"X-Request-ID": "trace-me-upstream-1"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Request-ID"), "trace-me-upstream-1")
        up = mock.last()["headers"]
        self.assertEqual(up.get("x-request-id"), "trace-me-upstream-1",
                         "the provider request carries no X-Request-ID; upstream headers: %r" % up)


# ---------------------------------------------------------------------------
# 2. API keys

KEY_APP = harness.secret("hx-test-app-key-0123456789")
KEY_NARROW = harness.secret("hx-test-narrow-key-abcdef")
KEY_HASHED = harness.secret("hx-test-hashed-key-zyxwvu")
KEY_PROM = harness.secret("hx-test-prom-key-424242")


def auth_section(**kw):
    a = {"enabled": True, "keys": [
        {"name": "app", "key": KEY_APP},
        {"name": "narrow", "key": KEY_NARROW, "models": ["claude-test"]},
        {"name": "hashed", "key_sha256": hashlib.sha256(KEY_HASHED.encode()).hexdigest()},
        {"name": "prom", "key": KEY_PROM, "metrics": True},
    ]}
    a.update(kw)
    return {"auth": a}


def anthropic_backup(mock):
    return [provider("anthropic", mock)]


class TestAuth(ProtectionCase):

    def test_good_key_in_either_header(self):
        mock, srv = self.pair(extra=auth_section())
        for how, hdrs in (("bearer", bearer(KEY_APP)), ("x-api-key", {"X-API-Key": KEY_APP}),
                          ("bearer lower-case scheme", {"Authorization": "bearer " + KEY_APP})):
            with self.subTest(how=how):
                rid = "auth-ok-" + how.replace(" ", "-")
                r = self.post_chat(srv, dict(hdrs, **{"X-Request-ID": rid}))
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["choices"][0]["message"]["content"],
                                 "Hello from the mock openai provider. You said: hello there")
                line = self.access_line(srv, rid)
                self.assertEqual(line.get("key_name"), "app", line)
        self.assertEqual(mock.stats()["requests"], 3)
        self.assertNotIn(KEY_APP, srv.stderr_text(), "the key itself reached the log")
        # The client's key is not the provider's: it never goes upstream.
        self.assertNotIn(KEY_APP, mock.last_raw())

    def test_missing_or_wrong_key_gets_401(self):
        mock, srv = self.pair(extra=auth_section())
        cases = {
            "missing": ({}, "missing_key"),
            "wrong bearer": (bearer("hx-not-a-key"), "invalid_key"),
            "wrong x-api-key": ({"X-API-Key": "hx-not-a-key"}, "invalid_key"),
            "key with a suffix": (bearer(KEY_APP + "x"), "invalid_key"),
            "key prefix": (bearer(KEY_APP[:-1]), "invalid_key"),
            "basic scheme": ({"Authorization": "Basic " + KEY_APP}, "missing_key"),
            "empty bearer": ({"Authorization": "Bearer "}, "missing_key"),
            "digest presented as key": (bearer(hashlib.sha256(KEY_HASHED.encode()).hexdigest()),
                                        "invalid_key"),
        }
        for what, (hdrs, reason) in cases.items():
            with self.subTest(what=what):
                rid = "auth-fail-%s" % what.replace(" ", "-")
                r = self.post_chat(srv, dict(hdrs, **{"X-Request-ID": rid}))
                self.assert401(r)
                self.assertNotIn(KEY_APP.encode(), r.body)
                rec = srv.wait_log(lambda x: x.get("event") == "auth_failure" and x.get("request_id") == rid)
                self.assertIsNotNone(rec, "no auth_failure line for %s" % what)
                self.assertEqual(rec.get("reason"), reason, rec)
                self.assertEqual(rec.get("client_ip"), "127.0.0.1", rec)
                self.assertNotIn("key_name", rec, rec)
        self.assertEqual(mock.stats()["requests"], 0, "a request without a valid key reached the provider")
        self.assertNotIn(KEY_APP, srv.stderr_text())
        self.assertNotIn("hx-not-a-key", srv.stderr_text(), "a presented (wrong) key was logged")

    def test_key_sha256(self):
        mock, srv = self.pair(extra=auth_section())
        r = self.post_chat(srv, dict(bearer(KEY_HASHED), **{"X-Request-ID": "hashed-ok"}))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.access_line(srv, "hashed-ok").get("key_name"), "hashed")
        r = self.post_chat(srv, {"X-API-Key": KEY_HASHED})
        self.assertEqual(r.status, 200, r)
        self.assert401(self.post_chat(srv, bearer(KEY_HASHED.upper())))

    def test_models_restriction(self):
        mock, srv = self.pair(extra=auth_section(), backups=anthropic_backup)
        # Allowed model: served by the backup that owns it.
        r = self.post_chat(srv, bearer(KEY_NARROW), model="claude-test")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Hapax-Provider"), "anthropic", r)
        served = mock.stats()["requests"]
        # Another configured model, and no model at all (llm.model = gpt-test): 403.
        for what, model in (("other model", "gpt-test"), ("no model", None)):
            with self.subTest(what=what):
                rid = "forbidden-%s" % what.replace(" ", "-")
                r = self.post_chat(srv, dict(bearer(KEY_NARROW), **{"X-Request-ID": rid}), model=model)
                err = self.assertJsonError(r, 403, "forbidden")
                self.assertEqual(err["type"], "permission_error")
                self.assertIn("gpt-test", err["message"])
                rec = srv.wait_log(lambda x: x.get("event") == "auth_failure" and x.get("request_id") == rid)
                self.assertIsNotNone(rec)
                self.assertEqual(rec.get("reason"), "forbidden_model", rec)
                self.assertEqual(rec.get("key_name"), "narrow", rec)
                self.assertEqual(rec.get("model"), "gpt-test", rec)
        self.assertEqual(mock.stats()["requests"], served, "a forbidden model reached a provider")
        # A key without a models list may use any model.
        self.assertEqual(self.post_chat(srv, bearer(KEY_APP), model="gpt-test").status, 200)
        self.assertEqual(self.post_chat(srv, bearer(KEY_APP), model="claude-test").status, 200)

    def test_restricted_key_never_served_by_another_model(self):
        # A key limited to gpt-test that names no model passes the check
        # through llm.model (gpt-test). When the primary then fails, the
        # chain must not hand the request to a provider serving a model
        # the key may not use (the backup serves claude-test).
        mock = self.start_mock()
        cfg = self.llm_cfg(mock, anthropic_backup(mock))
        cfg["auth"] = {"enabled": True, "keys": [{"name": "gpt-only", "key": "hx-gpt-only",
                                                  "models": ["gpt-test"]}]}
        srv = self.start_server(cfg)
        r = self.post_chat(srv, bearer("hx-gpt-only"))
        self.assertEqual((r.status, r.header("X-Hapax-Provider")), (200, "openai"), r)
        # Naming the model keeps the request on gpt-test providers: 502.
        mock.arm("500", count=1)
        r = self.post_chat(srv, bearer("hx-gpt-only"), model="gpt-test")
        self.assertEqual(r.status, 502, r)
        # Naming none must not do more than naming the default.
        mock.arm("500", count=1)
        r = self.post_chat(srv, bearer("hx-gpt-only"))
        served = r.json().get("model") if r.status == 200 else None
        self.assertNotEqual(r.header("X-Hapax-Provider"), "anthropic",
                            "a key limited to [gpt-test] was served by claude-test on failover: %r" % r)
        self.assertNotEqual(served, "claude-test", r)
        self.assertNotEqual(mock.last()["path"], "/v1/messages",
                            "the request of a key limited to [gpt-test] reached the claude-test provider")

    def test_health_public_other_routes_not(self):
        mock, srv = self.pair(extra=auth_section())
        for path in ("/health", "/health/providers/openai"):
            with self.subTest(path=path):
                r = srv.get(path)
                self.assertEqual(r.status, 200, r)
                self.assertIsNone(r.header("WWW-Authenticate"), r)
        self.assert401(srv.get("/v1/models"))
        self.assertEqual(srv.get("/v1/models", headers=bearer(KEY_APP)).status, 200)
        self.assertEqual([r for r in srv.logs()[0] if r.get("event") == "auth_failure"
                          and r.get("path", "").startswith("/health")], [])

    def test_metrics_needs_a_metrics_key(self):
        mock, srv = self.pair(extra=auth_section())
        self.assert401(srv.get("/metrics"))
        self.assert401(srv.get("/metrics", headers=bearer("hx-not-a-key")))
        r = srv.get("/metrics", headers=bearer(KEY_APP))
        err = self.assertJsonError(r, 403, "forbidden")
        self.assertEqual(err["type"], "permission_error", r)
        self.assertNotIn(b"hapax_", r.body)
        rec = self.event_lines(srv, "auth_failure", 3)
        self.assertIn("metrics_forbidden", [x.get("reason") for x in rec], rec)
        for hdrs in (bearer(KEY_PROM), {"X-API-Key": KEY_PROM}):
            r = srv.get("/metrics", headers=hdrs)
            self.assertEqual(r.status, 200, r)
            self.assertTrue(r.header("Content-Type", "").startswith("text/plain; version=0.0.4"), r)
            self.assertIn(b"# TYPE hapax_auth_failures_total counter", r.body)
        parsed = parse_metrics(r.body.decode())
        self.assertEqual(samples(parsed, "hapax_auth_failures_total", reason="missing_key"), [1.0])
        self.assertEqual(samples(parsed, "hapax_auth_failures_total", reason="invalid_key"), [1.0])
        self.assertEqual(samples(parsed, "hapax_auth_failures_total", reason="metrics_forbidden"), [1.0])

    def test_metrics_open_when_not_required(self):
        mock, srv = self.pair(extra=auth_section(metrics_require_auth=False))
        r = srv.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assert401(self.post_chat(srv))

    def test_route_middleware_list_is_applied(self):
        mock = self.start_mock()
        cfg = self.llm_cfg(mock)
        cfg.update(auth_section())
        cfg["routes"] = [
            {"path": PATH, "handler": "chat"},
            {"path": "/health", "handler": "health", "middleware": ["request_id", "auth", "logging"]},
        ]
        srv = self.start_server(cfg, wait_ready=False)
        r = self.wait_answering(srv, "/health")
        self.assert401_route(r)
        r = srv.get("/health", headers=dict(bearer(KEY_APP), **{"X-Request-ID": "health-key"}))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Request-ID"), "health-key", r)
        # The route's list has no request_timer: proof that it replaced the global chain.
        self.assertIsNone(r.header("X-Response-Time"), r)
        self.assertEqual(self.access_line(srv, "health-key").get("key_name"), "app")
        # The chat route still inherits the global chain (with auth and the timer).
        r = self.post_chat(srv)
        self.assert401(r)
        self.assertEqual(self.post_chat(srv, bearer(KEY_APP)).status, 200)

    def assert401_route(self, r):
        self.assertEqual(r.status, 401, "/health with middleware [request_id, auth, logging] "
                         "must require a key: %r" % r)
        self.assertEqual(r.header("WWW-Authenticate"), WWW_AUTH, r)
        self.assertTrue(r.header("X-Request-ID"), r)
        self.assertEqual(r.json()["error"]["code"], "invalid_api_key")

    def test_enabled_section_outside_every_chain_is_rejected(self):
        cfg = deep_merge(base_config(free_port()), auth_section())
        cfg["server"]["middleware"] = ["request_id", "logging"]
        path = self.write_file("auth-unlisted.yaml", render_yaml(cfg) + "\n")
        res = self.cli(["--config", path, "--validate"])
        self.assertNotEqual(res.returncode, 0, res)
        self.assertIn("auth", res.stderr)
        cfg["server"]["middleware"] = ["request_id", "auth", "logging"]
        path = self.write_file("auth-listed.yaml", render_yaml(cfg) + "\n")
        res = self.cli(["--config", path, "--validate"])
        self.assertEqual(res.returncode, 0, res)


# ---------------------------------------------------------------------------
# 3. rate limits

def rl(**kw):
    section = {"enabled": True}
    section.update(kw)
    return {"rate_limit": section}


class TestRateLimit(ProtectionCase):

    def test_burst_then_429(self):
        # 6 per minute: no token comes back within the test.
        mock, srv = self.pair(extra=rl(requests_per_minute=6, burst=3))
        for i, left in enumerate((2, 1, 0)):
            r = self.post_chat(srv, {"X-Request-ID": "rl-%d" % i})
            self.assertEqual(r.status, 200, r)
            self.assertRateHeaders(r, limit=3, remaining=left)
            self.assertGreaterEqual(int(r.header("RateLimit-Reset")), 1, r)
        r = self.post_chat(srv, {"X-Request-ID": "rl-over"})
        self.assert429(r)
        self.assertEqual(int(r.header("RateLimit-Limit")), 3)
        self.assertEqual(mock.stats()["requests"], 3, "a limited request reached the provider")
        rec = srv.wait_log(lambda x: x.get("event") == "rate_limited")
        self.assertIsNotNone(rec)
        self.assertEqual((rec.get("kind"), rec.get("request_id"), rec.get("client_ip")),
                         ("requests", "rl-over", "127.0.0.1"), rec)
        self.assertEqual(self.access_line(srv, "rl-over")["status"], 429)
        # Other limited routes share the client's bucket; health stays open and unmarked.
        self.assert429(srv.get("/v1/models"))
        h = srv.get("/health")
        self.assertEqual(h.status, 200, h)
        for name in RATE_HEADERS:
            self.assertIsNone(h.header(name), h)

    def test_bucket_refills(self):
        # 600 per minute: one request's token comes back every 100 ms.
        mock, srv = self.pair(extra=rl(requests_per_minute=600, burst=2))
        # Empty the bucket (a slow machine may get a token back meanwhile).
        got = []
        for _ in range(50):
            r = self.post_chat(srv)
            got.append(r.status)
            if r.status != 200:
                break
        self.assertGreaterEqual(len(got), 3, got)
        self.assertEqual(got[:2], [200, 200], got)
        self.assert429(r)
        self.assertEqual(r.header("Retry-After"), "1", r)
        deadline = time.monotonic() + 5
        while True:
            time.sleep(0.1)
            r = self.post_chat(srv)
            if r.status == 200:
                break
            self.assert429(r)
            self.assertLess(time.monotonic(), deadline, "the bucket never refilled")
        self.assertRateHeaders(r, limit=2)
        # After a full refill the whole burst is available again.
        time.sleep(0.3)
        self.assertEqual([self.post_chat(srv).status for _ in range(2)], [200, 200])

    def test_each_key_has_its_own_bucket_and_override(self):
        keys = [{"name": "alpha", "key": "hx-rl-alpha"},
                {"name": "beta", "key": "hx-rl-beta"},
                {"name": "gamma", "key": "hx-rl-gamma",
                 "rate_limit": {"requests_per_minute": 6, "burst": 4}}]
        extra = rl(requests_per_minute=6, burst=2)
        extra["auth"] = {"enabled": True, "keys": keys}
        mock, srv = self.pair(extra=extra)
        a = [self.post_chat(srv, bearer("hx-rl-alpha")) for _ in range(3)]
        self.assertEqual([r.status for r in a], [200, 200, 429], a)
        self.assert429(a[2])
        rec = srv.wait_log(lambda x: x.get("event") == "rate_limited")
        self.assertEqual((rec.get("key_name"), rec.get("bucket")), ("alpha", "key:alpha"), rec)
        self.assertNotIn("hx-rl-alpha", srv.stderr_text())
        # beta is not affected by alpha's empty bucket, and neither is an
        # anonymous client (its bucket is its IP) -- which then gets 401.
        b = [self.post_chat(srv, bearer("hx-rl-beta")) for _ in range(3)]
        self.assertEqual([r.status for r in b], [200, 200, 429], b)
        self.assert401(self.post_chat(srv))
        # gamma's own limits replace the global ones.
        g = [self.post_chat(srv, bearer("hx-rl-gamma")) for _ in range(5)]
        self.assertEqual([r.status for r in g], [200, 200, 200, 200, 429], g)
        self.assertRateHeaders(g[0], limit=4, remaining=3)
        self.assert429(g[4])

    def test_forwarded_for_ignored_from_untrusted_peer(self):
        mock, srv = self.pair(extra=rl(requests_per_minute=6, burst=2))
        got = [self.post_chat(srv, {"X-Forwarded-For": "10.0.0.%d" % i}) for i in range(1, 4)]
        self.assertEqual([r.status for r in got], [200, 200, 429], got)
        rec = srv.wait_log(lambda x: x.get("event") == "rate_limited")
        self.assertEqual(rec.get("client_ip"), "127.0.0.1", rec)

    def test_forwarded_for_believed_from_trusted_proxy(self):
        mock, srv = self.pair(extra=rl(requests_per_minute=6, burst=2, trusted_proxies=["127.0.0.1"]))

        def go(xff, rid=None):
            h = {"X-Forwarded-For": xff}
            if rid:
                h["X-Request-ID"] = rid
            return self.post_chat(srv, h)

        one = [go("10.0.0.1") for _ in range(3)]
        self.assertEqual([r.status for r in one], [200, 200, 429], one)
        rec = srv.wait_log(lambda x: x.get("event") == "rate_limited")
        self.assertEqual((rec.get("client_ip"), rec.get("bucket")), ("10.0.0.1", "ip:10.0.0.1"), rec)
        # Another forwarded address is another client with a full bucket.
        r = go("10.0.0.2", "xff-two")
        self.assertEqual(r.status, 200, r)
        self.assertRateHeaders(r, limit=2, remaining=1)
        self.assertEqual(self.access_line(srv, "xff-two").get("client_ip"), "10.0.0.2")
        # The client is the right-most address that is not a trusted proxy.
        self.assert429(go("10.0.0.2, 10.0.0.1"))
        self.assert429(go("10.0.0.1, 127.0.0.1"))
        r = go("10.0.0.1, 10.0.0.3")
        self.assertEqual(r.status, 200, r)
        self.assertRateHeaders(r, remaining=1)
        # Without the header the proxy itself is the client.
        self.assertEqual(self.post_chat(srv).status, 200)

    def test_trusted_proxy_cidr(self):
        mock, srv = self.pair(extra=rl(requests_per_minute=6, burst=1,
                                       trusted_proxies=["10.20.0.0/16", "127.0.0.0/8"]))
        got = [self.post_chat(srv, {"X-Forwarded-For": "192.0.2.%d, 10.20.3.4" % i}).status
               for i in range(1, 4)]
        self.assertEqual(got, [200, 200, 200], "each client behind the proxies has its own bucket")
        self.assert429(self.post_chat(srv, {"X-Forwarded-For": "192.0.2.1"}))
        # A hop outside the trusted networks is the client, whatever it claims is left of it.
        self.assertEqual(self.post_chat(srv, {"X-Forwarded-For": "192.0.2.1, 198.51.100.7"}).status, 200)
        self.assert429(self.post_chat(srv, {"X-Forwarded-For": "192.0.2.9, 198.51.100.7"}))

    def test_token_budget(self):
        # 5 tokens a minute; one answer costs 2 (prompt) + 8 (completion):
        # the client is in debt after it and stays so for the whole test.
        mock, srv = self.pair(extra=rl(requests_per_minute=600, burst=100, tokens_per_minute=5))
        r = self.post_chat(srv, said="hello there")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["usage"]["prompt_tokens"] + r.json()["usage"]["completion_tokens"], 10)
        self.assertEqual(self.settle(srv, r).get("completion_tokens"), 8)
        r = self.post_chat(srv, {"X-Request-ID": "tokens-over"})
        self.assert429(r, kind="tokens")
        self.assertEqual(r.header("RateLimit-Remaining"), "0", r)
        self.assertIn("oken", r.json()["error"]["message"])
        rec = srv.wait_log(lambda x: x.get("event") == "rate_limited")
        self.assertEqual((rec.get("kind"), rec.get("request_id")), ("tokens", "tokens-over"), rec)
        self.assertEqual(mock.stats()["requests"], 1)

    def test_streamed_answer_debits_tokens(self):
        mock, srv = self.pair(extra=rl(requests_per_minute=600, burst=100, tokens_per_minute=5))
        r = self.post_chat(srv, stream=True)
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"[DONE]", r.body)
        self.assertRateHeaders(r)
        self.assertEqual(self.settle(srv, r).get("completion_tokens"), 8)
        r = self.post_chat(srv)
        self.assert429(r, kind="tokens")


# ---------------------------------------------------------------------------
# 4. CORS

APP = "https://app.example"
OTHER = "https://other.example"


def cors(**kw):
    c = {"enabled": True, "allow_origins": [APP], "allow_methods": ["GET", "POST", "OPTIONS"],
         "allow_headers": ["Authorization", "Content-Type", "X-API-Key"],
         "expose_headers": ["X-Request-ID", "X-Hapax-Provider"], "allow_credentials": False,
         "max_age": "10m"}
    c.update(kw)
    return {"cors": c}


def preflight(srv, origin, method="POST", req_headers="content-type, authorization", path=PATH):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if req_headers:
        h["Access-Control-Request-Headers"] = req_headers
    return srv.request("OPTIONS", path, headers=h)


class TestCors(ProtectionCase):

    def test_allowed_origin_gets_headers(self):
        mock, srv = self.pair(extra=cors())
        r = self.post_chat(srv, {"Origin": APP})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header_all("Access-Control-Allow-Origin"), [APP], r)
        self.assertTrue(r.has_token("Access-Control-Expose-Headers", "X-Request-ID"), r)
        self.assertTrue(r.has_token("Access-Control-Expose-Headers", "X-Hapax-Provider"), r)
        self.assertIsNone(r.header("Access-Control-Allow-Credentials"), r)
        self.assertTrue(r.has_token("Vary", "Origin"), r)
        r = srv.get("/v1/models", headers={"Origin": APP})
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)

    def test_unknown_path_404_is_readable_cross_origin(self):
        """A 404 from an allowed origin carries the CORS headers, so the
        browser shows the JSON error instead of an opaque CORS failure."""
        mock, srv = self.pair(extra=cors())
        r = srv.get("/v1/no-such-thing", headers={"Origin": APP})
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json()["error"]["code"], "not_found")
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)
        r = srv.get("/v1/no-such-thing", headers={"Origin": OTHER})
        self.assertEqual(r.status, 404, r)
        self.assertEqual(cors_headers(r), [], r)

    def test_wildcard(self):
        mock, srv = self.pair(extra=cors(allow_origins=["*"]))
        for origin in (APP, OTHER, "http://localhost:3000"):
            with self.subTest(origin=origin):
                r = self.post_chat(srv, {"Origin": origin})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header_all("Access-Control-Allow-Origin"), ["*"], r)
                self.assertIsNone(r.header("Access-Control-Allow-Credentials"), r)
        p = preflight(srv, OTHER)
        self.assertEqual(p.status, 204, p)
        self.assertEqual(p.header("Access-Control-Allow-Origin"), "*", p)

    def test_disallowed_origin_gets_no_cors_headers(self):
        mock, srv = self.pair(extra=cors())
        for origin in (OTHER, APP + ".evil.example", APP.upper(), APP + ":443", "null"):
            with self.subTest(origin=origin):
                r = self.post_chat(srv, {"Origin": origin})
                self.assertEqual(r.status, 200, r)  # served; the browser withholds it
                self.assertEqual(cors_headers(r), [], r)
                self.assertTrue(r.has_token("Vary", "Origin"), r)
        r = self.post_chat(srv)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(cors_headers(r), [], "a request without Origin got CORS headers: %r" % r)

    def test_preflight(self):
        extra = cors()
        extra.update(auth_section())  # a preflight never carries credentials
        mock, srv = self.pair(extra=extra)
        r = preflight(srv, APP)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)
        for m in ("GET", "POST", "OPTIONS"):
            self.assertTrue(r.has_token("Access-Control-Allow-Methods", m), r)
        self.assertFalse(r.has_token("Access-Control-Allow-Methods", "DELETE"), r)
        for h in ("Authorization", "Content-Type", "X-API-Key"):
            self.assertTrue(r.has_token("Access-Control-Allow-Headers", h), r)
        self.assertEqual(r.header("Access-Control-Max-Age"), "600", r)
        self.assertIsNone(r.header("Access-Control-Allow-Credentials"), r)
        self.assertTrue(r.has_token("Vary", "Origin"), r)
        self.assertTrue(r.header("X-Request-ID"), r)
        self.assertIsNone(r.header("WWW-Authenticate"), r)
        self.assertEqual(mock.stats()["requests"], 0, "a preflight reached the provider")
        self.assertEqual(self.event_lines(srv, "auth_failure", 1, timeout=0.3), [])

    def test_preflight_max_age_in_seconds(self):
        mock, srv = self.pair(extra=cors(max_age="90s"))
        r = preflight(srv, APP, req_headers=None)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header("Access-Control-Max-Age"), "90", r)

    def test_preflight_refused(self):
        mock, srv = self.pair(extra=cors())
        for what, origin, method in (("method", APP, "DELETE"), ("origin", OTHER, "POST"),
                                     ("both", OTHER, "PUT")):
            with self.subTest(what=what):
                r = preflight(srv, origin, method)
                err = self.assertJsonError(r, 403, "forbidden")
                self.assertIn("CORS", err["message"])
                self.assertIsNone(r.header("Access-Control-Allow-Origin"), r)
                self.assertIsNone(r.header("Access-Control-Allow-Methods"), r)

    def test_sdk_preflights_pass_with_default_headers(self):
        """The preflights the official SDKs make from a browser (header
        names as browsers send them), with the default allow_headers: every
        requested header is allowed by name (browsers take no patterns), and
        the answers expose the ids and rate-limit headers SDKs read."""
        extra = {"cors": {"enabled": True, "allow_origins": [APP]}}
        mock, srv = self.pair(extra=extra)
        sdks = {
            "openai": "authorization,content-type,user-agent,x-stainless-arch,x-stainless-lang,"
                      "x-stainless-os,x-stainless-package-version,x-stainless-retry-count,"
                      "x-stainless-runtime,x-stainless-runtime-version,x-stainless-timeout",
            "anthropic": "anthropic-dangerous-direct-browser-access,anthropic-version,content-type,"
                         "user-agent,x-api-key,x-stainless-arch,x-stainless-lang,x-stainless-os,"
                         "x-stainless-package-version,x-stainless-retry-count,x-stainless-runtime,"
                         "x-stainless-runtime-version,x-stainless-timeout",
        }
        for sdk, wanted in sdks.items():
            for path in (PATH, "/v1/messages", "/v1/models/x"):
                with self.subTest(sdk=sdk, path=path):
                    r = preflight(srv, APP, "GET" if "models" in path else "POST", wanted, path=path)
                    self.assertEqual(r.status, 204, r)
                    self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)
                    for h in wanted.split(","):
                        self.assertTrue(r.has_token("Access-Control-Allow-Headers", h), (h, r))
                    self.assertFalse(r.has_token("Access-Control-Allow-Headers", "X-Stainless-*"), r)
        r = preflight(srv, APP, "POST", "x-evil,content-type")
        self.assertEqual(r.status, 204, r)
        self.assertFalse(r.has_token("Access-Control-Allow-Headers", "x-evil"), r)
        r = self.post_chat(srv, {"Origin": APP})
        self.assertEqual(r.status, 200, r)
        for h in ("X-Request-ID", "Request-ID", "X-Hapax-Provider", "X-Hapax-Attempts", "Retry-After",
                  "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
            self.assertTrue(r.has_token("Access-Control-Expose-Headers", h), (h, r))

    def test_credentials_echo_the_origin(self):
        b = "https://b.example"
        mock, srv = self.pair(extra=cors(allow_origins=[APP, b], allow_credentials=True))
        for origin in (APP, b):
            with self.subTest(origin=origin):
                r = self.post_chat(srv, {"Origin": origin})
                self.assertEqual(r.header_all("Access-Control-Allow-Origin"), [origin], r)
                self.assertEqual(r.header("Access-Control-Allow-Credentials"), "true", r)
                self.assertTrue(r.has_token("Vary", "Origin"), r)
                p = preflight(srv, origin)
                self.assertEqual(p.status, 204, p)
                self.assertEqual(p.header("Access-Control-Allow-Origin"), origin, p)
                self.assertEqual(p.header("Access-Control-Allow-Credentials"), "true", p)
        self.assertEqual(cors_headers(self.post_chat(srv, {"Origin": OTHER})), [])

    def test_validate_rejects_wildcard_with_credentials(self):
        def validate(name, **kw):
            cfg = deep_merge(base_config(free_port()), cors(**kw))
            path = self.write_file(name, render_yaml(cfg) + "\n")
            return self.cli(["--config", path, "--validate"])

        bad = validate("cors-bad.yaml", allow_origins=[APP, "*"], allow_credentials=True)
        self.assertNotEqual(bad.returncode, 0, bad)
        self.assertIn("cors.allow_credentials", bad.stderr, bad)
        self.assertNotIn("configuration is valid", bad.stdout)
        ok = validate("cors-ok.yaml", allow_origins=["*"], allow_credentials=False)
        self.assertEqual(ok.returncode, 0, ok)
        ok = validate("cors-ok2.yaml", allow_origins=[APP], allow_credentials=True)
        self.assertEqual(ok.returncode, 0, ok)


# ---------------------------------------------------------------------------
# 5. metrics

def named_backup(mock):
    b = provider("anthropic", mock, name="backup")
    return [b]


class TestMetrics(ProtectionCase):

    def post_chat(self, srv, *a, **kw):
        # Request metrics are recorded as a request ends, after the answer
        # reached the client: wait for that before the next step.
        r = super().post_chat(srv, *a, **kw)
        self.settle(srv, r)
        return r

    def scrape(self, srv, path="/metrics", headers=None):
        r = srv.get(path, headers=headers)
        self.assertEqual(r.status, 200, r)
        self.settle(srv, r)
        self.assertEqual(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8", r)
        text = r.body.decode("utf-8")
        self.promtool(text)
        return text, parse_metrics(text)

    def promtool(self, text):
        try:
            res = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                                 text=True, timeout=30)
        except FileNotFoundError:
            self.fail("promtool is not installed (apt-get install prometheus)")
        self.assertEqual((res.returncode, res.stdout, res.stderr), (0, "", ""),
                         "promtool check metrics complained")

    def test_counters_after_traffic(self):
        mock, srv = self.pair(backups=named_backup)
        # 1: success on the primary.
        r = self.post_chat(srv)
        self.assertEqual((r.status, r.header("X-Hapax-Provider")), (200, "openai"), r)
        self.settle(srv, r)
        # 2: unknown paths (raw paths must not become label values).
        for path in ("/random/unknown/path", "/health/providers/no-such-provider-xyz"):
            r = srv.get(path)
            self.assertEqual(r.status, 404, r)
            self.settle(srv, r)
        # 3: the primary fails with 500, the backup serves.
        mock.arm("500", count=1)
        r = self.post_chat(srv, said="after a failure")
        self.assertEqual((r.status, r.header("X-Hapax-Provider")), (200, "backup"), r)
        self.settle(srv, r)
        successes = 2
        text, m = self.scrape(srv)
        self.assertEqual(samples(m, "hapax_request_duration_seconds_count", route=PATH,
                                 method="POST", status_class="2xx"), [successes])
        self.assertEqual(samples(m, "hapax_request_duration_seconds_bucket", route=PATH,
                                 method="POST", status_class="2xx", le="+Inf"), [successes])
        self.assertGreater(samples(m, "hapax_request_duration_seconds_sum", route=PATH,
                                   method="POST", status_class="2xx")[0], 0)
        self.assertEqual(samples(m, "hapax_request_duration_seconds_count", route="unmatched",
                                 method="GET", status_class="4xx"), [1])
        self.assertEqual(samples(m, "hapax_request_duration_seconds_count",
                                 route="/health/providers/{name}", method="GET",
                                 status_class="4xx"), [1])
        self.assertEqual(samples(m, "hapax_errors_total", type="not_found"), [2])
        self.assertEqual(samples(m, "hapax_provider_requests_total", provider="openai",
                                 outcome="failure"), [1])
        self.assertEqual(samples(m, "hapax_provider_requests_total", provider="openai",
                                 outcome="success"), [1])
        self.assertEqual(samples(m, "hapax_provider_requests_total", provider="backup",
                                 outcome="success"), [1])
        self.assertEqual(samples(m, "hapax_provider_failures_total", provider="openai",
                                 **{"class": "server_error"}), [1])
        self.assertEqual(samples(m, "hapax_failovers_total", from_provider="openai"), [1])
        self.assertEqual(sum(samples(m, "hapax_tokens_total", kind="completion")), 8 * successes)
        self.assertEqual(samples(m, "hapax_tokens_total", provider="openai", model="gpt-test",
                                 kind="completion"), [8])
        self.assertEqual(samples(m, "hapax_tokens_total", provider="backup", model="claude-test",
                                 kind="prompt"), [3])
        self.assertEqual(samples(m, "hapax_provider_latency_seconds_count", provider="openai"), [2])
        for p in ("openai", "backup"):
            self.assertEqual(samples(m, "hapax_circuit_breaker_state", provider=p), [0], p)
            self.assertEqual(samples(m, "hapax_provider_healthy", provider=p), [1], p)
        self.assertGreater(samples(m, "process_resident_memory_bytes")[0], 0)
        started = samples(m, "process_start_time_seconds")
        self.assertEqual(len(started), 1)
        self.assertLess(abs(started[0] - time.time()), 300, "process_start_time_seconds is not now")
        self.assertGreaterEqual(samples(m, "process_cpu_seconds_total")[0], 0)
        self.assertGreater(samples(m, "process_max_fds")[0], 0)
        self.assertGreater(samples(m, "process_open_fds")[0], 0)
        for fam in ("hapax_queue_depth", "hapax_queue_in_flight", "hapax_load_shedding",
                    "hapax_active_requests"):
            self.assertEqual(len(samples(m, fam)), 1, fam)
        for raw in ("/random/unknown/path", "random", "no-such-provider-xyz"):
            self.assertNotIn(raw, text, "a raw request path became a label value")
        # Every sample belongs to a family that was announced with # TYPE.
        typed = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
        for name, _, _ in m:
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            self.assertTrue(name in typed or base in typed, name)

    def test_auth_and_rate_limit_counters(self):
        keys = [{"name": "prom", "key": KEY_PROM, "metrics": True},
                {"name": "one-shot", "key": "hx-one-shot", "rate_limit": {"burst": 1}},
                {"name": "thrifty", "key": "hx-thrifty", "rate_limit": {"tokens_per_minute": 5}}]
        extra = rl(requests_per_minute=6, burst=50)
        extra["auth"] = {"enabled": True, "keys": keys}
        mock, srv = self.pair(extra=extra)
        self.assert401(self.post_chat(srv))
        self.assert401(self.post_chat(srv, bearer("hx-wrong")))
        self.assert401(self.post_chat(srv, bearer("hx-wrong-again")))
        self.assertEqual(self.post_chat(srv, bearer("hx-one-shot")).status, 200)
        self.assert429(self.post_chat(srv, bearer("hx-one-shot")))
        r = self.post_chat(srv, bearer("hx-thrifty"))
        self.assertEqual(r.status, 200, r)
        self.settle(srv, r)
        r = self.post_chat(srv, bearer("hx-thrifty"))
        self.assert429(r, kind="tokens")
        self.settle(srv, r)
        text, m = self.scrape(srv, headers=bearer(KEY_PROM))
        self.assertEqual(samples(m, "hapax_auth_failures_total", reason="missing_key"), [1])
        self.assertEqual(samples(m, "hapax_auth_failures_total", reason="invalid_key"), [2])
        self.assertEqual(samples(m, "hapax_rate_limit_hits_total", kind="requests"), [1])
        self.assertEqual(samples(m, "hapax_rate_limit_hits_total", kind="tokens"), [1])
        self.assertEqual(samples(m, "hapax_errors_total", type="invalid_api_key"), [3])
        self.assertEqual(samples(m, "hapax_errors_total", type="rate_limit_exceeded"), [2])
        for s in ("hx-wrong", "hx-one-shot", "hx-thrifty", KEY_PROM):
            self.assertNotIn(s, text)

    def test_metrics_disabled(self):
        mock, srv = self.pair(extra={"metrics": {"enabled": False}})
        r = srv.get("/metrics")
        self.assertJsonError(r, 404, "not_found")
        self.assertEqual(self.post_chat(srv).status, 200)

    def test_custom_path(self):
        mock, srv = self.pair(extra={"metrics": {"path": "/prom"}})
        r = self.post_chat(srv)
        self.assertEqual(r.status, 200, r)
        self.settle(srv, r)
        r = srv.get("/metrics")
        self.assertJsonError(r, 404, "not_found")
        self.settle(srv, r)
        text, m = self.scrape(srv, "/prom")
        self.assertEqual(samples(m, "hapax_request_duration_seconds_count", route=PATH,
                                 method="POST", status_class="2xx"), [1])
        # The second scrape sees the first one under its own route label.
        text, m = self.scrape(srv, "/prom")
        self.assertEqual(samples(m, "hapax_request_duration_seconds_count", route="/prom",
                                 method="GET", status_class="2xx"), [1])
        self.assertEqual(samples(m, "hapax_request_duration_seconds_count", route="unmatched",
                                 method="GET", status_class="4xx"), [1])


# ---------------------------------------------------------------------------
# 6. secrets

class TestSecrets(ProtectionCase):

    def test_no_secret_leaves_the_gateway(self):
        provider_key = harness.secret("sk-secret-provider-" + secrets.token_hex(12))
        client_key = harness.secret("hx-client-secret-" + secrets.token_hex(12))
        metrics_key = harness.secret("hx-metrics-secret-" + secrets.token_hex(12))
        backup_key = harness.secret("sk-ant-secret-backup-" + secrets.token_hex(12))
        mock = self.start_mock()
        cfg = self.llm_cfg(mock, backups=[provider("anthropic", mock, key=backup_key, name="backup")],
                           api_key=provider_key)
        cfg.update({
            "auth": {"enabled": True, "keys": [
                {"name": "client", "key": client_key, "models": ["gpt-test", "backup"]},
                {"name": "scraper", "key": metrics_key, "metrics": True}]},
            "rate_limit": {"enabled": True, "requests_per_minute": 600, "burst": 100},
            "cors": {"enabled": True, "allow_origins": [APP]},
            "logging": {"level": "debug"},
        })
        srv = self.start_server(cfg)
        seen = []

        def keep(r):
            seen.append(r)
            return r

        good = bearer(client_key)
        self.assertEqual(keep(self.post_chat(srv, good)).status, 200)
        self.assertEqual(keep(self.post_chat(srv, {"X-API-Key": client_key}, stream=True)).status, 200)
        self.assertEqual(keep(self.post_chat(srv, dict(good, Origin=APP), model="backup")).status, 200)
        keep(self.post_chat(srv, bearer("hx-client-wrong")))
        keep(self.post_chat(srv, {}))
        keep(self.post_chat(srv, good, model="claude-test"))            # forbidden model
        keep(srv.get("/v1/models", headers=good))
        keep(srv.get("/metrics", headers=good))                           # 403
        keep(srv.request("POST", PATH, headers=dict(good, **{"Content-Type": "application/json"}),
                         body="{not json"))
        mock.arm("401", count=2)                                          # upstream rejects our keys
        keep(self.post_chat(srv, good))
        mock.arm("500", count=1)                                          # failover
        keep(self.post_chat(srv, good))
        mock.arm("500", count=-1)
        keep(self.post_chat(srv, good, stream=True))
        mock.reset()
        self.assertEqual(mock.last(), None)
        self.assertEqual(keep(self.post_chat(srv, good)).status, 200)
        # The provider key was really used (so its absence below means something).
        self.assertEqual(mock.last()["headers"].get("authorization"), "Bearer " + provider_key)
        self.assertNotIn(client_key, mock.last_raw(), "the client's key was forwarded upstream")
        metrics = keep(srv.get("/metrics", headers=bearer(metrics_key)))
        self.assertEqual(metrics.status, 200, metrics)
        self.assertEqual([r.status for r in seen],
                         [200, 200, 200, 401, 401, 403, 200, 403, 400, 502, 200, 502, 200, 200],
                         seen)
        self.assertEqual(srv.stop(), 0)
        logs = srv.stderr_text() + srv.stdout_text()
        printed = self.cli(["--config", srv.config_path, "--print-config"])
        self.assertEqual(printed.returncode, 0, printed)
        self.assertIn("[redacted]", printed.stdout)
        self.assertIn('"key_name":"client"', logs)
        for name, s in (("provider api_key", provider_key), ("backup api_key", backup_key),
                        ("client key", client_key), ("metrics key", metrics_key)):
            with self.subTest(secret=name):
                self.assertNotIn(s, logs, "%s in hapax's log" % name)
                for r in seen:
                    self.assertNotIn(s.encode(), r.body, "%s in a response body: %r" % (name, r))
                    self.assertNotIn(s.encode(), r.raw_head, name)
                    for k, v in r.headers:
                        self.assertNotIn(s, v, "%s in response header %s" % (name, k))
                self.assertNotIn(s.encode(), metrics.body, "%s in /metrics" % name)
                self.assertNotIn(s, printed.stdout + printed.stderr, "%s in --print-config" % name)
