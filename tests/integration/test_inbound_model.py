"""The model name under one rule for every inbound API (gateway/inbound.c,
hx_in_read_model): anything but a string, a name too long for routing to see
whole, and a name holding NUL are refused with a 400 in the client's own
error format naming `model`; nothing reaches the upstream."""

import json

from harness import HapaxTestCase
from test_providers import REQ_TIMEOUT, llm, provider

MSG = [{"role": "user", "content": "hi"}]
# Each API's path, a valid body without its model, and the provider kind.
APIS = [
    ("/v1/chat/completions", {"messages": MSG}, "openai"),
    ("/v1/completions", {"prompt": "hi"}, "openai"),
    ("/v1/messages", {"max_tokens": 8, "messages": MSG}, "anthropic"),
    ("/v1/messages/count_tokens", {"messages": MSG}, "anthropic"),
    ("/v1/responses", {"input": "hi"}, "openai"),
    ("/v1/embeddings", {"input": "hi"}, "openai"),
]
REQUIRED = {"/v1/messages", "/v1/messages/count_tokens", "/v1/embeddings"}


class InboundModelTest(HapaxTestCase):
    def post(self, srv, path, body):
        return srv.request("POST", path, headers={"Content-Type": "application/json"},
                           body=json.dumps(body), timeout=REQ_TIMEOUT)

    def check(self, kind, cases):
        mock = self.start_mock()
        srv = self.start_server(llm(provider(kind, mock)))
        for path, base, k in APIS:
            if k != kind:
                continue
            for model, needle in cases(path):
                with self.subTest(path=path, model=repr(model)[:40]):
                    body = dict(base)
                    if model is not ...:
                        body["model"] = model
                    r = self.post(srv, path, body)
                    err = self.assertJsonError(r, 400, "invalid_request")
                    self.assertIn(needle, err["message"])
        self.assertEqual(mock.stats()["requests"], 0)

    def bad_models(self, path):
        cases = [
            (5, "model: expected a"),
            (["gpt"], "model: expected a"),
            ("m" * 256, "model: name too long"),
            ("gpt\u0000-evil", "model: must not contain NUL characters"),
        ]
        if path in REQUIRED:
            cases += [(..., "model: is required"), (None, "model: is required"),
                      ("", "model: expected a non-empty string")]
        return cases

    def test_openai_shaped_apis(self):
        self.check("openai", self.bad_models)

    def test_anthropic_shaped_apis(self):
        self.check("anthropic", self.bad_models)

    def test_longest_name_fits(self):
        # 255 bytes fit info->model whole: routed (unknown model → 404), not refused as too long.
        mock = self.start_mock()
        srv = self.start_server(llm(provider("openai", mock)))
        for path, base, _ in APIS:
            if path.startswith("/v1/messages"):
                continue
            with self.subTest(path=path):
                r = self.post(srv, path, dict(base, model="m" * 255))
                self.assertNotEqual(r.status, 400, r)
