"""Model routing and the model endpoints (issue 10, items 1 and 7):
`name`/`aliases` on the primary, Ollama's implied `:latest`, wildcard
aliases that send the client's model name, `llm.model_map`, the unknown
model 404, GET /v1/models and GET /v1/models/{id} in the client's shape,
and a model-restricted key judged by the model actually asked for.

The mock provider echoes the model it was asked for and records the
upstream request (/_mock/last)."""

import json

from harness import HapaxTestCase, secret
from test_providers import llm, provider, user

KEY_WIDE = secret("sk-hapax-models-wide-key-1")
KEY_OPUS = secret("sk-hapax-models-opus-key-1")
KEY_MINI = secret("sk-hapax-models-mini-key-1")
KEY_LOCAL = secret("sk-hapax-models-local-key-1")


class ModelsCase(HapaxTestCase):

    def pair(self, primary, backups=(), extra=None, **llm_kw):
        """primary/backups: functions mock -> provider entry."""
        mock = self.start_mock()
        cfg = llm(primary(mock), [b(mock) for b in backups], **llm_kw)
        cfg.update(extra or {})
        return mock, self.start_server(cfg)

    def chat(self, srv, model, headers=None, stream=False):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        body = {"model": model, "messages": [user("hi")]}
        if stream:
            body["stream"] = True
        return srv.request("POST", "/v1/chat/completions", headers=h, body=json.dumps(body), timeout=15)

    def served(self, mock, srv, model, provider_name, upstream_model, path=None, headers=None):
        """model is answered 200 by provider_name, which was asked for upstream_model."""
        r = self.chat(srv, model, headers)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Hapax-Provider"), provider_name, r)
        last = mock.last()
        self.assertEqual(last["body"]["model"], upstream_model, last)
        if path:
            self.assertEqual(last["path"], path, last)
        # The answer reports the model the provider says it used (the
        # mock echoes what it was asked for).
        self.assertEqual(r.json()["model"], upstream_model, r)
        return r


def ollama(model="llama-test", **kw):
    return lambda m: provider("ollama", m, model=model, **kw)


def anthropic(**kw):
    return lambda m: provider("anthropic", m, **kw)


def openai(**kw):
    return lambda m: provider("openai", m, **kw)


class TestRouting(ModelsCase):

    def test_primary_takes_name_and_aliases(self):
        mock, srv = self.pair(ollama(name="local", aliases=["small", "cheap"]),
                              [anthropic(aliases=["smart"])])
        for model in ("local", "small", "cheap", "llama-test"):
            with self.subTest(model=model):
                self.served(mock, srv, model, "local", "llama-test", "/api/chat")
        self.served(mock, srv, "smart", "anthropic", "claude-test", "/v1/messages")

    def test_ollama_latest_tag_is_implied_both_ways(self):
        mock, srv = self.pair(ollama("llama-test"), [ollama("qwen-test:latest", name="qwen")])
        self.served(mock, srv, "llama-test:latest", "ollama", "llama-test")
        self.served(mock, srv, "qwen-test", "qwen", "qwen-test:latest")
        # only :latest is implied
        r = self.chat(srv, "llama-test:7b")
        self.assertJsonError(r, 404, "model_not_found")

    def test_wildcard_alias_sends_the_clients_model(self):
        mock, srv = self.pair(ollama(), [anthropic(aliases=["claude-*"]), openai(aliases=["gpt-*"])])
        self.served(mock, srv, "claude-3-opus-20240229", "anthropic", "claude-3-opus-20240229",
                    "/v1/messages")
        self.served(mock, srv, "gpt-4o-2024-08-06", "openai", "gpt-4o-2024-08-06",
                    "/v1/chat/completions")
        # an exact name wins over a wildcard
        self.served(mock, srv, "claude-test", "anthropic", "claude-test")
        # streamed too
        r = self.chat(srv, "claude-3-haiku", stream=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(mock.last()["body"]["model"], "claude-3-haiku")
        self.assertIn(b'"model":"claude-3-haiku"', r.body)

    def test_wildcard_longest_prefix_first_then_failover(self):
        mock = self.start_mock()
        srv = self.start_server(llm(provider("ollama", mock),
                                    [provider("openai", mock, name="broad", aliases=["gpt-*"]),
                                     provider("openai", mock, fault="500", name="narrow",
                                              aliases=["gpt-4o*"])]))
        # narrow (longer prefix) is tried first, fails, broad serves it
        r = self.chat(srv, "gpt-4o-mini")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Hapax-Provider"), "broad", r)
        self.assertEqual(r.header("X-Hapax-Attempts"), "2", r)
        self.assertEqual(mock.last()["body"]["model"], "gpt-4o-mini")

    def test_model_map_serves_a_hard_coded_model(self):
        mock, srv = self.pair(ollama(), [anthropic(aliases=["claude-*"])],
                              model_map={"gpt-4o-mini": "llama-test",
                                         "gpt-4o": "claude-3-5-sonnet-latest"})
        self.served(mock, srv, "gpt-4o-mini", "ollama", "llama-test", "/api/chat")
        self.served(mock, srv, "gpt-4o", "anthropic", "claude-3-5-sonnet-latest", "/v1/messages")
        # the Messages API routes the same way
        r = srv.request("POST", "/v1/messages", headers={"Content-Type": "application/json"},
                        body=json.dumps({"model": "gpt-4o-mini", "max_tokens": 5,
                                         "messages": [user("hi")]}), timeout=15)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(mock.last()["body"]["model"], "llama-test")

    def test_model_map_target_must_be_served(self):
        srv = self.start_server(llm({"provider": "ollama", "model": "llama-test",
                                     "model_map": {"gpt-4o-mini": "mistral"}}), wait_ready=False)
        srv.expected_exit = None
        self.assertNotEqual(srv.wait_exit(10), 0)
        self.assertIn("llm.model_map.gpt-4o-mini: maps to \"mistral\", which no provider serves",
                      srv.stderr_text())

    def test_unknown_model_404_names_served_models(self):
        mock, srv = self.pair(ollama(), [anthropic(aliases=["claude-*"])],
                              model_map={"gpt-4o-mini": "llama-test"})
        r = self.chat(srv, "mistral-large")
        err = self.assertJsonError(r, 404, "model_not_found")
        self.assertIn("'mistral-large'", err["message"])
        for name in ("llama-test", "claude-test", "claude-*", "gpt-4o-mini"):
            self.assertIn(name, err["message"])
        self.assertEqual(mock.stats()["requests"], 0)


class TestRestrictedKeys(ModelsCase):

    def test_key_judged_by_the_model_asked_for(self):
        auth = {"auth": {"enabled": True, "keys": [
            {"name": "wide", "key": KEY_WIDE},
            {"name": "opus", "key": KEY_OPUS, "models": ["claude-3-opus"]},
            {"name": "mini", "key": KEY_MINI, "models": ["gpt-4o-mini"]},
            {"name": "local", "key": KEY_LOCAL, "models": ["llama-test"]},
        ]}}
        mock, srv = self.pair(ollama(), [anthropic(aliases=["claude-*"])], extra=auth,
                              model_map={"gpt-4o-mini": "llama-test"})

        def bearer(k):
            return {"Authorization": "Bearer " + k}
        # a wildcard route: the provider is asked for the key's model
        self.served(mock, srv, "claude-3-opus", "anthropic", "claude-3-opus", headers=bearer(KEY_OPUS))
        r = self.chat(srv, "claude-3-haiku", bearer(KEY_OPUS))
        self.assertJsonError(r, 403, "forbidden")
        # the model map: the key names the client's model
        self.served(mock, srv, "gpt-4o-mini", "ollama", "llama-test", headers=bearer(KEY_MINI))
        self.served(mock, srv, "llama-test", "ollama", "llama-test", headers=bearer(KEY_LOCAL))
        # the default chain keeps only what the key may use: no failover
        # from a failing ollama to anthropic
        mock.arm("500", count=1)
        r = srv.request("POST", "/v1/chat/completions",
                        headers={"Content-Type": "application/json", **bearer(KEY_LOCAL)},
                        body=json.dumps({"messages": [user("hi")]}), timeout=15)
        self.assertJsonError(r, 502, "bad_gateway")
        self.assertEqual(r.header("X-Hapax-Attempts"), "1", r)


class TestModelEndpoints(ModelsCase):

    def setUp(self):
        super().setUp()
        self.mock, self.srv = self.pair(
            ollama(name="local", aliases=["small"]),
            [anthropic(aliases=["claude-*", "small"]),
             openai(model="meta-llama/Llama-3-8b", name="vllm")],
            model_map={"gpt-4o-mini": "llama-test", "my-claude": "claude-3-opus"})

    def test_list(self):
        r = self.srv.get("/v1/models")
        self.assertEqual(r.status, 200, r)
        doc = r.json()
        self.assertEqual(doc["object"], "list")
        got = [(m["id"], m["owned_by"]) for m in doc["data"]]
        self.assertEqual(got, [("llama-test", "local"), ("local", "local"), ("small", "local"),
                               ("claude-test", "anthropic"), ("anthropic", "anthropic"),
                               ("claude-*", "anthropic"),
                               ("meta-llama/Llama-3-8b", "vllm"), ("vllm", "vllm"),
                               ("gpt-4o-mini", "local"), ("my-claude", "anthropic")])
        for m in doc["data"]:
            self.assertEqual((m["object"], m["created"]), ("model", 0), m)

    def test_list_anthropic_shape(self):
        r = self.srv.get("/v1/models", headers={"anthropic-version": "2023-06-01"})
        self.assertEqual(r.status, 200, r)
        doc = r.json()
        self.assertEqual((doc["has_more"], doc["first_id"], doc["last_id"]),
                         (False, "llama-test", "my-claude"), doc)
        self.assertEqual(doc["data"][0], {"type": "model", "id": "llama-test",
                                          "display_name": "llama-test",
                                          "created_at": "1970-01-01T00:00:00Z"})
        self.assertNotIn("object", doc)

    def test_retrieve_openai_shape(self):
        for asked, owner in (("llama-test", "local"), ("small", "local"),
                             ("llama-test:latest", "local"), ("claude-3-opus", "anthropic"),
                             ("gpt-4o-mini", "local"), ("meta-llama/Llama-3-8b", "vllm")):
            with self.subTest(id=asked):
                r = self.srv.get("/v1/models/" + asked)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json(), {"id": asked, "object": "model", "created": 0,
                                            "owned_by": owner})
        r = self.srv.get("/v1/models/meta-llama%2FLlama-3-8b")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["id"], "meta-llama/Llama-3-8b")
        r = self.srv.request("HEAD", "/v1/models/small")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.mock.stats()["requests"], 0, "a model lookup reached a provider")

    def test_retrieve_anthropic_shape(self):
        r = self.srv.get("/v1/models/claude-3-opus", headers={"anthropic-version": "2023-06-01"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"type": "model", "id": "claude-3-opus", "display_name": "claude-3-opus",
                                    "created_at": "1970-01-01T00:00:00Z"})

    def test_retrieve_unknown_404(self):
        for path in ("/v1/models/gpt-5", "/v1/models/a/b/c", "/v1/models/" + "x" * 300):
            with self.subTest(path=path[:40]):
                r = self.srv.get(path)
                err = self.assertJsonError(r, 404, "model_not_found")
                self.assertIn("llama-test", err["message"])
                self.assertLess(len(err["message"]), 600)

    def test_retrieve_has_the_same_middleware_as_the_list(self):
        mock = self.start_mock()
        srv = self.start_server(dict(llm(provider("ollama", mock)),
                                     auth={"enabled": True, "keys": [{"name": "w", "key": KEY_WIDE}]}))
        for path in ("/v1/models", "/v1/models/llama-test"):
            with self.subTest(path=path):
                self.assertJsonError(srv.get(path), 401, "invalid_api_key")
                r = srv.get(path, headers={"Authorization": "Bearer " + KEY_WIDE})
                self.assertEqual(r.status, 200, r)
