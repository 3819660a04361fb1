"""POST /v1/messages/count_tokens: an Anthropic provider is asked natively
(the client's body with the model replaced, its anthropic-version and
anthropic-beta headers forwarded, the provider's key); other providers get
a local estimate marked X-Hapax-Token-Estimate: true (docs/providers.md,
"Token counting")."""

import json

from harness import HapaxTestCase
from test_providers import KEYS, MODELS, REQ_TIMEOUT, llm, provider

CT = "/v1/messages/count_tokens"


def body(model, text="hello there world", **kw):
    d = {"model": model, "messages": [{"role": "user", "content": text}]}
    d.update(kw)
    return d


class CountTokensTest(HapaxTestCase):
    def post(self, srv, b, headers=None):
        data = b if isinstance(b, (str, bytes)) else json.dumps(b)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return srv.request("POST", CT, headers=h, body=data, timeout=REQ_TIMEOUT)

    def pair(self, kind, backups=(), **kw):
        mock = self.start_mock()
        cfg = llm(provider(kind, mock), [b(mock) for b in backups], **kw)
        return mock, self.start_server(cfg)

    def test_anthropic_native_with_headers(self):
        mock, srv = self.pair("anthropic")
        raw = ('{"model": "%s", "system": "be brief", "messages": [{"role": "user", "content": "one two three"}],'
               ' "thinking": {"type": "enabled", "budget_tokens": 1024}, "x_new": 1.50}' % MODELS["anthropic"])
        r = self.post(srv, raw, headers={"anthropic-version": "2023-06-01",
                                         "anthropic-beta": "token-counting-2024-11-01"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"input_tokens": 5})
        self.assertIsNone(r.header("X-Hapax-Token-Estimate"))
        self.assertEqual(r.header("X-Hapax-Provider"), "anthropic")
        self.assertTrue(r.header("request-id"))
        last = mock.last()
        self.assertEqual(last["path"], "/v1/messages/count_tokens")
        self.assertEqual(last["headers"]["x-api-key"], KEYS["anthropic"])
        self.assertEqual(last["headers"]["anthropic-version"], "2023-06-01")
        self.assertEqual(last["headers"]["anthropic-beta"], "token-counting-2024-11-01")
        self.assertIn('"x_new": 1.50', mock.last_raw().replace('"x_new":1.50', '"x_new": 1.50'))
        self.assertEqual(last["body"]["thinking"], {"type": "enabled", "budget_tokens": 1024})

    def test_anthropic_default_version(self):
        mock, srv = self.pair("anthropic")
        r = self.post(srv, body(MODELS["anthropic"]))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(mock.last()["headers"]["anthropic-version"], "2023-06-01")
        self.assertNotIn("anthropic-beta", mock.last()["headers"])

    def test_client_key_not_forwarded(self):
        mock, srv = self.pair("anthropic")
        r = self.post(srv, body(MODELS["anthropic"]), headers={"x-api-key": "sk-ant-client-own"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(mock.last()["headers"]["x-api-key"], KEYS["anthropic"])

    def test_estimate_for_openai(self):
        mock, srv = self.pair("openai")
        text = "x" * 400
        r = self.post(srv, body(MODELS["openai"], text=text, system="y" * 40))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Hapax-Token-Estimate"), "true")
        # (400 + 40) / 4 characters + 4 per message
        self.assertEqual(r.json(), {"input_tokens": 114})
        self.assertEqual(mock.stats()["requests"], 0, "an estimate must not call the upstream")

    def test_estimate_for_ollama_images_and_tools(self):
        mock, srv = self.pair("ollama")
        img = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 4000}}
        tools = [{"name": "f", "input_schema": {"type": "object"}}]
        msgs = [{"role": "user", "content": [{"type": "text", "text": "abcd" * 10}, img]}]
        r = self.post(srv, {"model": MODELS["ollama"], "messages": msgs, "tools": tools})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Hapax-Token-Estimate"), "true")
        tools_chars = len(json.dumps(tools, separators=(",", ":")))
        self.assertEqual(r.json()["input_tokens"], (40 + tools_chars + 3) // 4 + 1600 + 4)
        self.assertEqual(mock.stats()["requests"], 0)

    def test_real_count_before_any_estimate(self):
        # openai first in the chain, but an Anthropic provider can count for
        # real: it is asked first, the estimate only if it fails.
        mock = self.start_mock()
        cfg = llm(provider("openai", mock, aliases=None),
                  [provider("anthropic", mock, model=MODELS["openai"], name="counter")])
        srv = self.start_server(cfg)
        r = self.post(srv, body(MODELS["openai"]))
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("X-Hapax-Token-Estimate"), r)
        self.assertEqual(r.header("X-Hapax-Provider"), "counter")
        self.assertEqual(mock.last()["path"], "/v1/messages/count_tokens")

    def test_failover_anthropic_down_to_estimate(self):
        mock = self.start_mock()
        cfg = llm(provider("anthropic", mock, fault="500", model="m"),
                  [provider("openai", mock, name="oa", model="m")])
        srv = self.start_server(cfg)
        r = self.post(srv, body("m", text="abcdefgh"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Hapax-Provider"), "oa")
        self.assertEqual(r.header("X-Hapax-Token-Estimate"), "true")
        self.assertEqual(r.json(), {"input_tokens": 6})

    def test_bad_requests(self):
        mock, srv = self.pair("anthropic")
        for b, needle in [({"messages": []}, "model"),
                          ({"model": MODELS["anthropic"]}, "messages"),
                          ({"model": MODELS["anthropic"], "messages": [{"role": "bot", "content": "x"}]},
                           "messages[0].role"),
                          ({"model": MODELS["anthropic"], "messages": [{"role": "user", "content": 3}]},
                           "messages[0].content"),
                          ({"model": MODELS["anthropic"], "messages": [], "system": 1}, "system")]:
            with self.subTest(b=b):
                r = self.post(srv, b)
                self.assertEqual(r.status, 400, r)
                self.assertIn(needle, r.body.decode())
        self.assertEqual(mock.stats()["requests"], 0)

    def test_upstream_error_passed_as_4xx(self):
        mock = self.start_mock()
        srv = self.start_server(llm(provider("anthropic", mock, fault="400")))
        r = self.post(srv, body(MODELS["anthropic"]))
        self.assertEqual(r.status, 400, r)

    def test_auth_required(self):
        mock = self.start_mock()
        cfg = llm(provider("anthropic", mock))
        cfg["auth"] = {"enabled": True, "keys": [{"key": "hx-client-key-0123456789", "name": "c"}]}
        srv = self.start_server(cfg)
        r = self.post(srv, body(MODELS["anthropic"]))
        self.assertEqual(r.status, 401, r)
        r = self.post(srv, body(MODELS["anthropic"]), headers={"x-api-key": "hx-client-key-0123456789"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(mock.last()["headers"]["x-api-key"], KEYS["anthropic"])

    def test_counting_spends_no_tokens(self):
        # 5 tokens a minute: one charged request would put the client in
        # debt (429 after it); counting, native or estimated, costs nothing.
        mock = self.start_mock()
        cfg = llm(provider("anthropic", mock), [provider("ollama", mock)])
        cfg["rate_limit"] = {"enabled": True, "requests_per_minute": 600, "burst": 100, "tokens_per_minute": 5}
        srv = self.start_server(cfg)
        for i, model in enumerate([MODELS["anthropic"], MODELS["ollama"]] * 2):
            rid = "ct-%d" % i
            r = self.post(srv, body(model, text="one two three four five six seven " * 20),
                          headers={"X-Request-ID": rid})
            self.assertEqual(r.status, 200, r)
            self.assertIsNotNone(srv.wait_log(lambda l, rid=rid: l.get("request_id") == rid and "status" in l))
