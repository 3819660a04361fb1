"""What every upstream request carries and how adapter refusals read
(issue 10, item 6): `User-Agent: hapax/<version>` on requests of every
adapter and on health probes; an Ollama refusal names the provider once
(it read "ollama: ollama: ..." before)."""

import json
import time

from harness import HapaxTestCase, run_cli
from test_providers import llm, provider, user


def version():
    out = run_cli(["--version"]).stdout.strip()  # "hapax 0.1.0"
    return out.split()[-1]


class TestUpstreamIdentity(HapaxTestCase):

    def chat(self, srv, model, body_extra=None):
        body = {"model": model, "messages": [user("hi")]}
        body.update(body_extra or {})
        return srv.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"},
                           body=json.dumps(body), timeout=15)

    def test_user_agent_on_every_adapter(self):
        mock = self.start_mock()
        srv = self.start_server(llm(provider("openai", mock),
                                    [provider("anthropic", mock), provider("ollama", mock)]))
        ua = "hapax/" + version()
        for model, path in (("gpt-test", "/v1/chat/completions"), ("claude-test", "/v1/messages"),
                            ("llama-test", "/api/chat")):
            with self.subTest(model=model):
                r = self.chat(srv, model)
                self.assertEqual(r.status, 200, r)
                last = mock.last()
                self.assertEqual(last["path"], path, last)
                self.assertEqual(last["headers"].get("user-agent"), ua, last)
        # streamed and passed through unchanged (OpenAI -> OpenAI) too
        r = self.chat(srv, "gpt-test", {"stream": True})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(mock.last()["headers"].get("user-agent"), ua)

    def test_user_agent_on_probes(self):
        mock = self.start_mock()
        self.start_server(llm(provider("ollama", mock),
                              health_check={"enabled": True, "interval": "100ms", "timeout": "2s",
                                            "failure_threshold": 2}))
        deadline = time.monotonic() + 10
        while mock.stats()["requests"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        last = mock.last()
        self.assertEqual(last["path"], "/api/tags", last)
        self.assertEqual(last["headers"].get("user-agent"), "hapax/" + version(), last)

    def test_ollama_refusal_names_the_provider_once(self):
        mock = self.start_mock()
        srv = self.start_server(llm(provider("ollama", mock)))
        msg = {"role": "user", "content": [{"type": "image_url",
                                            "image_url": {"url": "https://example.com/cat.png"}}]}
        r = srv.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"},
                        body=json.dumps({"model": "llama-test", "messages": [msg]}), timeout=15)
        err = self.assertJsonError(r, 400, "invalid_request")
        self.assertEqual(err["message"], "ollama: image URLs must be data: URLs", err)
        self.assertEqual(mock.stats()["requests"], 0)
