"""Hostile JSON from clients and upstreams (issue 9): memory amplification
bounded by server.max_json_elements / max_json_depth before json-c builds
anything, strict RFC 8259 on every inbound path, integers json-c would
rewrite, NUL in model and member names, and absurd token counts from an
upstream (the ASan+UBSan build aborts on an overflow; tearDown fails the
test on any sanitizer report)."""

import json
import os
import time

import harness
from fidelity import ScriptedUpstream
from harness import HapaxTestCase

MODEL = "gpt-test"
KEY = "hx-json-test-key"
ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/messages")
TIMEOUT = 60.0  # generous: the old code took 13-47 s for the 9.9 MB body


def chat(model=MODEL):
    return '{"model":"%s","messages":[{"role":"user","content":"hi"}]}' % model


def body_for(route, extra):
    """A valid request for `route` with `extra` (raw JSON text) spliced in
    as the last member."""
    base = {"/v1/chat/completions": '{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]',
            "/v1/completions": '{"model":"gpt-test","prompt":"hi"',
            "/v1/messages": '{"model":"gpt-test","max_tokens":5,"messages":[{"role":"user","content":"hi"}]'}
    return base[route] + "," + extra + "}"


def proc_mem(pid):
    """VmRSS and VmHWM of pid in MiB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) // 1024
    return out


def is_asan():
    return "asan" in os.path.basename(os.path.dirname(os.path.abspath(harness.BIN)))


class JsonTestCase(HapaxTestCase):

    def pair(self, server=None, extra=None):
        mock = self.start_mock()
        cfg = {"llm": {"provider": "openai", "model": MODEL, "api_key": "sk-json-test",
                       "endpoint": mock.endpoint("openai"), "retry": {"max_retries": 0}}}
        if server:
            cfg["server"] = server
        cfg.update(extra or {})
        return mock, self.start_server(cfg)

    def post(self, srv, path, body, headers=None, timeout=TIMEOUT):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        data = body.encode() if isinstance(body, str) else body
        return srv.request("POST", path, headers=h, body=data, timeout=timeout)


class AmplificationTest(JsonTestCase):

    def test_many_empty_objects_refused_before_parsing(self):
        # 9.9 MB of {} (3.3M values): the old code took 2.5 GB and 13+ s.
        mock, srv = self.pair()
        n = (9_900_000 - 10) // 3
        body = b'{"x":[' + b",".join([b"{}"] * n) + b"]}"
        before = proc_mem(srv.proc.pid)
        t0 = time.monotonic()
        r = self.post(srv, "/v1/messages", body)
        took = time.monotonic() - t0
        err = self.assertJsonError(r, 413, "body_too_large")
        self.assertIn("100000 values", err["message"])
        after = proc_mem(srv.proc.pid)
        # 10 MB of body plus buffers; the old peak was 2.5 GB.
        self.assertLess(after["VmHWM"] - before["VmRSS"], 300,
                        "memory grew from %r to %r for one 9.9 MB body" % (before, after))
        self.assertLess(took, 30.0, "a 9.9 MB body took %.1f s to refuse" % took)
        self.assertEqual(mock.stats()["requests"], 0)

    def test_many_small_messages_refused(self):
        mock, srv = self.pair()
        msg = b'{"role":"user","content":"a"}'
        for path in ("/v1/messages", "/v1/chat/completions"):
            with self.subTest(path=path):
                body = (b'{"model":"gpt-test","max_tokens":5,"messages":[' + b",".join([msg] * 330000)
                        + b"]}")
                r = self.post(srv, path, body)
                self.assertJsonError(r, 413, "body_too_large")
        self.assertEqual(mock.stats()["requests"], 0)

    def test_configured_value_limit(self):
        mock, srv = self.pair(server={"max_json_elements": 20})
        # {model, messages: [{role, content}]}: 2 objects (8 each) + 4 = 20
        few = chat()
        r = self.post(srv, "/v1/chat/completions", few)
        self.assertEqual(r.status, 200, r)
        many = '{"model":"gpt-test","messages":[%s]}' % ",".join(
            ['{"role":"user","content":"hi"}'] * 2)  # 30
        for path in ROUTES:
            with self.subTest(path=path):
                b = many if path != "/v1/completions" else '{"model":"gpt-test","prompt":[%s]}' % ",".join(
                    ['"a"'] * 11)  # 21
                r = self.post(srv, path, b)
                err = self.assertJsonError(r, 413, "body_too_large")
                self.assertIn("more than 20 values", err["message"])
        self.assertEqual(mock.stats()["requests"], 1)

    def test_configured_depth_limit(self):
        mock, srv = self.pair(server={"max_json_depth": 4})
        ok = body_for("/v1/chat/completions", '"metadata":{"a":{"b":"c"}}')  # 3 levels
        r = self.post(srv, "/v1/chat/completions", ok)
        self.assertEqual(r.status, 200, r)
        for path in ROUTES:
            with self.subTest(path=path):
                r = self.post(srv, path, body_for(path, '"metadata":{"a":{"b":{"c":{"d":1}}}}'))
                err = self.assertJsonError(r, 400, "invalid_request")
                self.assertIn("nested deeper than 4 levels", err["message"])
        self.assertEqual(mock.stats()["requests"], 1)

    def test_default_depth_limit(self):
        mock, srv = self.pair()
        deep = "[" * 70 + "]" * 70
        for path in ROUTES:
            with self.subTest(path=path):
                r = self.post(srv, path, body_for(path, '"x":' + deep))
                err = self.assertJsonError(r, 400, "invalid_request")
                self.assertIn("nested deeper than 64 levels", err["message"])

    def test_memory_returned_after_a_large_body(self):
        if is_asan():
            self.skipTest("ASan's allocator keeps freed memory in quarantine")
        # the highest limit allowed: 99990 objects, ~80 MB of json-c objects
        mock, srv = self.pair(server={"workers": 1, "max_json_elements": 1000000})
        idle = proc_mem(srv.proc.pid)
        body = b'{"x":[' + b",".join([b"{}"] * 99990) + b"]}"
        r = self.post(srv, "/v1/messages", body)
        self.assertEqual(r.status, 400, r)  # parsed in full, then "model: is required"
        time.sleep(0.5)
        after = proc_mem(srv.proc.pid)
        self.assertGreater(after["VmHWM"] - idle["VmRSS"], 40, "the parse did not use memory: %r" % after)
        self.assertLess(after["VmRSS"] - idle["VmRSS"], 30,
                        "memory not returned after the request: idle %r, after %r" % (idle, after))


class StrictJsonTest(JsonTestCase):

    CASES = {
        "NaN": ('"temperature":NaN', "NaN and Infinity"),
        "Infinity": ('"temperature":Infinity', "NaN and Infinity"),
        "-Infinity": ('"temperature":-Infinity', "NaN and Infinity"),
        "block comment": ('"top_p":1 /* c */', "comments"),
        "line comment": ('"top_p":1 // c\n', "comments"),
        "single quotes": ("'top_p':1", "double quotes"),
        "trailing comma in an object": ('"top_p":1,', "trailing comma"),
        "trailing comma in an array": ('"stop":["a",]', "trailing comma"),
        "max_tokens overflow": ('"max_tokens":99999999999999999999999', "integer out of range"),
        "negative overflow": ('"seed":-9223372036854775809', "integer out of range"),
    }

    def test_non_json_refused_on_every_route(self):
        mock, srv = self.pair()
        for path in ROUTES:
            for what, (extra, why) in self.CASES.items():
                with self.subTest(path=path, case=what):
                    r = self.post(srv, path, body_for(path, extra))
                    err = self.assertJsonError(r, 400, "invalid_request")
                    self.assertIn(why, err["message"])
        self.assertEqual(mock.stats()["requests"], 0, "a non-JSON body reached the upstream")

    def test_large_integers_json_c_holds_are_relayed_unchanged(self):
        mock, srv = self.pair()
        body = body_for("/v1/chat/completions", '"seed":18446744073709551615')
        r = self.post(srv, "/v1/chat/completions", body)
        self.assertEqual(r.status, 200, r)
        self.assertIn("18446744073709551615", json.dumps(mock.last()))


class NulTest(JsonTestCase):

    def test_nul_in_model_does_not_pass_a_model_restricted_key(self):
        mock, srv = self.pair(extra={"auth": {"enabled": True, "keys": [
            {"name": "mini", "key": harness.secret(KEY), "models": [MODEL]}]}})
        auth = {"Authorization": "Bearer " + KEY}
        r = self.post(srv, "/v1/chat/completions", chat(), auth)
        self.assertEqual(r.status, 200, r)
        bodies = {
            "/v1/chat/completions": chat(MODEL + "\\u0000-x"),
            "/v1/completions": '{"model":"%s\\u0000-x","prompt":"hi"}' % MODEL,
            "/v1/messages": ('{"model":"%s\\u0000-x","max_tokens":5,'
                             '"messages":[{"role":"user","content":"hi"}]}' % MODEL),
        }
        for path, body in bodies.items():
            with self.subTest(path=path):
                r = self.post(srv, path, body, auth)
                err = self.assertJsonError(r, 400, "invalid_request")
                self.assertIn("model", err["message"])
                self.assertIn("NUL", err["message"])
        self.assertEqual(mock.stats()["requests"], 1, "a NUL model name reached the upstream")

    def test_nul_in_member_name_refused(self):
        # json-c would read "model\u0000" as a second "model" that only it sees.
        mock, srv = self.pair(extra={"auth": {"enabled": True, "keys": [
            {"name": "mini", "key": harness.secret(KEY), "models": [MODEL]}]}})
        auth = {"Authorization": "Bearer " + KEY}
        body = ('{"model":"gpt-other","messages":[{"role":"user","content":"hi"}],'
                '"model\\u0000":"%s"}' % MODEL)
        r = self.post(srv, "/v1/chat/completions", body, auth)
        err = self.assertJsonError(r, 400, "invalid_request")
        self.assertIn("NUL", err["message"])
        self.assertEqual(mock.stats()["requests"], 0)

    def test_nul_in_role_refused(self):
        mock, srv = self.pair()
        body = '{"model":"gpt-test","messages":[{"role":"user\\u0000x","content":"hi"}]}'
        r = self.post(srv, "/v1/chat/completions", body)
        err = self.assertJsonError(r, 400, "invalid_request")
        self.assertIn("role", err["message"])
        self.assertEqual(mock.stats()["requests"], 0)


# ---------------------------------------------------------------------------
# an upstream that reports absurd usage

HUGE = 9007199254740992  # HX_JSON_TOKENS_MAX = 2^53


ABSURD_USAGE = '{"prompt_tokens":1e308,"completion_tokens":9223372036854775807}'


def absurd_usage_reply(rec):
    """A chat answer (streamed when asked) reporting absurd usage."""
    if (rec["body"] or {}).get("stream"):
        chunk = ('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-test",'
                 '"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}')
        fin = ('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-test",'
               '"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}')
        usage = ('{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-test",'
                 '"choices":[],"usage":%s}' % ABSURD_USAGE)
        data = "".join("data: %s\n\n" % e for e in (chunk, fin, usage)) + "data: [DONE]\n\n"
        ctype = "text/event-stream"
    else:
        data = ('{"id":"c1","object":"chat.completion","created":1,"model":"gpt-test","choices":'
                '[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
                '"usage":%s}' % ABSURD_USAGE)
        ctype = "application/json"
    return {"raw": data, "content_type": ctype}


class UpstreamUsageTest(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.up = ScriptedUpstream()
        self.up.script(absurd_usage_reply)
        self.addCleanup(self.up.close)

    def test_absurd_usage_is_clamped_everywhere(self):
        srv = self.start_server({
            "llm": {"provider": "openai", "model": MODEL, "api_key": "sk-json-test",
                    "endpoint": self.up.url + "/v1",
                    "retry": {"max_retries": 0}}})
        h = {"Content-Type": "application/json"}
        cases = [
            ("/v1/messages", {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
             lambda d: (d["usage"]["input_tokens"], d["usage"]["output_tokens"])),
            ("/v1/completions", {"model": MODEL, "prompt": "hi"},
             lambda d: (d["usage"]["prompt_tokens"], d["usage"]["total_tokens"])),
            ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
             None),
        ]
        for path, body, usage in cases:
            with self.subTest(path=path):
                r = srv.request("POST", path, headers=h, body=json.dumps(body), timeout=15)
                self.assertEqual(r.status, 200, r)
                if usage:
                    self.assertEqual(usage(r.json()), (HUGE, HUGE), r)
        for path in ("/v1/messages", "/v1/chat/completions"):
            with self.subTest(path=path, stream=True):
                body = dict(cases[0][1] if path == "/v1/messages" else cases[2][1], stream=True)
                r = srv.request("POST", path, headers=h, body=json.dumps(body), timeout=15)
                self.assertEqual(r.status, 200, r)
        # still serving (the sanitizer build aborted on the overflow before)
        self.assertEqual(srv.get("/health").status, 200)


class JsonConfigTest(HapaxTestCase):

    def test_limits_validated_and_printed(self):
        ok = self.write_file("ok.yaml", "server:\n  max_json_depth: 1024\n  max_json_elements: 1000000\n")
        res = self.cli(["--config", ok, "--print-config"])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("max_json_depth: 1024", res.stdout)
        self.assertIn("max_json_elements: 1000000", res.stdout)
        bad = self.write_file("bad.yaml", "server:\n  max_json_depth: 0\n  max_json_elements: 1000001\n")
        res = self.cli(["--config", bad, "--validate"])
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        out = res.stdout + res.stderr
        self.assertIn("server.max_json_depth", out)
        self.assertIn("server.max_json_elements", out)
        res = self.cli(["--config", os.path.join(harness.REPO_ROOT, "config", "hapax.yaml"), "--print-config"])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("max_json_depth: 64", res.stdout)
        self.assertIn("max_json_elements: 100000", res.stdout)
