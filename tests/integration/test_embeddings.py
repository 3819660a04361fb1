"""POST /v1/embeddings: OpenAI-compatible upstreams natively (the client's
body with the model replaced, the answer relayed), Ollama by translation
(/api/embed and back, base64 done by the gateway), Anthropic skipped by
name; failover, validation and auth (docs/providers.md, "Embeddings")."""

import base64
import json
import struct

from harness import HapaxTestCase
from test_protection import parse_metrics, samples
from test_providers import KEYS, MODELS, REQ_TIMEOUT, llm, provider

EMB = "/v1/embeddings"


def fnv(text):
    h = 2166136261
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def mock_vector(text, dims=8):
    """The mock provider's deterministic vector (tests/mock/README.md)."""
    h = fnv(text)
    return [float("%.3f" % ((((h + 7919 * j) & 0xFFFFFFFF) % 2001 - 1000) / 1000.0)) for j in range(dims)]


def b64_floats(values):
    return base64.b64encode(struct.pack("<%df" % len(values), *values)).decode("ascii")


class EmbeddingsTest(HapaxTestCase):
    def post(self, srv, body, headers=None):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return srv.request("POST", EMB, headers=h, body=data, timeout=REQ_TIMEOUT)

    def pair(self, kind, backups=(), **kw):
        mock = self.start_mock()
        cfg = llm(provider(kind, mock), [b(mock) for b in backups], **kw)
        return mock, self.start_server(cfg)

    # -- openai: native passthrough
    def test_openai_native_passthrough(self):
        mock, srv = self.pair("openai")
        body = ('{"model": "%s", "input": ["hello world", "second one here"], "dimensions": 4, '
                '"user": "u-1", "x_vendor_extra": {"keep": 1.50}}' % MODELS["openai"])
        r = self.post(srv, body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Hapax-Provider"), "openai")
        doc = r.json()
        self.assertEqual(doc["object"], "list")
        self.assertEqual([d["embedding"] for d in doc["data"]],
                         [mock_vector("hello world", 4), mock_vector("second one here", 4)])
        self.assertEqual(doc["usage"], {"prompt_tokens": 5, "total_tokens": 5})
        last = mock.last()
        self.assertEqual(last["path"], "/v1/embeddings")
        self.assertEqual(last["headers"]["authorization"], "Bearer " + KEYS["openai"])
        # the client's body as it is: unknown members and number text kept
        self.assertIn('"keep":1.50', mock.last_raw())
        self.assertEqual(last["body"]["user"], "u-1")
        self.assertEqual(last["body"]["dimensions"], 4)

    def test_openai_base64_relayed(self):
        mock, srv = self.pair("openai")
        r = self.post(srv, {"model": MODELS["openai"], "input": "abc", "encoding_format": "base64"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["data"][0]["embedding"], b64_floats(mock_vector("abc")))
        self.assertEqual(mock.last()["body"]["encoding_format"], "base64")

    def test_openai_token_inputs(self):
        mock, srv = self.pair("openai")
        r = self.post(srv, {"model": MODELS["openai"], "input": [[1, 2, 3], [4]]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["data"][0]["embedding"], mock_vector("1 2 3"))
        self.assertEqual(r.json()["usage"]["prompt_tokens"], 4)

    # -- ollama: translation
    def test_ollama_translation(self):
        mock, srv = self.pair("ollama")
        r = self.post(srv, {"model": MODELS["ollama"], "input": ["one two", "three"], "dimensions": 3,
                            "truncate": False})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Hapax-Provider"), "ollama")
        last = mock.last()
        self.assertEqual(last["path"], "/api/embed")
        self.assertEqual(last["body"], {"model": MODELS["ollama"], "input": ["one two", "three"],
                                        "dimensions": 3, "truncate": False})
        doc = r.json()
        self.assertEqual(doc["object"], "list")
        self.assertEqual(doc["model"], MODELS["ollama"])
        self.assertEqual(doc["data"], [
            {"object": "embedding", "index": 0, "embedding": mock_vector("one two", 3)},
            {"object": "embedding", "index": 1, "embedding": mock_vector("three", 3)}])
        self.assertEqual(doc["usage"], {"prompt_tokens": 3, "total_tokens": 3})

    def test_ollama_single_string(self):
        mock, srv = self.pair("ollama")
        r = self.post(srv, {"model": MODELS["ollama"], "input": "just one"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(mock.last()["body"]["input"], "just one")
        self.assertEqual(len(r.json()["data"]), 1)
        self.assertEqual(r.json()["data"][0]["embedding"], mock_vector("just one"))

    def test_ollama_base64_encoded_by_gateway(self):
        mock, srv = self.pair("ollama")
        r = self.post(srv, {"model": MODELS["ollama"], "input": ["abc", "de"], "encoding_format": "base64"})
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("encoding_format", mock.last()["body"])
        data = r.json()["data"]
        self.assertEqual(data[0]["embedding"], b64_floats(mock_vector("abc")))
        self.assertEqual(data[1]["embedding"], b64_floats(mock_vector("de")))

    def test_ollama_refuses_what_it_cannot_carry(self):
        mock, srv = self.pair("ollama")
        r = self.post(srv, {"model": MODELS["ollama"], "input": [1, 2, 3]})
        err = self.assertJsonError(r, 400, "invalid_request")
        self.assertIn("input", err["message"])
        self.assertIn("ollama", err["message"])
        r = self.post(srv, {"model": MODELS["ollama"], "input": "x", "service_tier": "flex"})
        err = self.assertJsonError(r, 400, "invalid_request")
        self.assertIn("service_tier", err["message"])
        self.assertEqual(mock.stats()["requests"], 0)

    # -- anthropic: no embeddings API
    def test_anthropic_only_is_refused_by_name(self):
        mock, srv = self.pair("anthropic")
        r = self.post(srv, {"model": MODELS["anthropic"], "input": "x"})
        err = self.assertJsonError(r, 400, "invalid_request")
        self.assertIn("no configured provider serves embeddings", err["message"])
        self.assertIn("anthropic (anthropic) has no embeddings API", err["message"])
        self.assertEqual(mock.stats()["requests"], 0)

    def test_anthropic_skipped_in_chain(self):
        mock, srv = self.pair("anthropic", backups=[
            lambda m: provider("openai", m, name="oa", model=MODELS["anthropic"])])
        r = self.post(srv, {"model": MODELS["anthropic"], "input": "x"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Hapax-Provider"), "oa")
        self.assertEqual(mock.last()["path"], "/v1/embeddings")

    # -- failover
    def test_failover_openai_500_to_ollama(self):
        mock = self.start_mock()
        cfg = llm(provider("openai", mock, fault="500", model="emb"),
                  [provider("ollama", mock, name="local", model="emb")])
        srv = self.start_server(cfg)
        r = self.post(srv, {"model": "emb", "input": "hi there"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Hapax-Provider"), "local")
        self.assertEqual(r.header("X-Hapax-Attempts"), "2")
        self.assertEqual(r.json()["data"][0]["embedding"], mock_vector("hi there"))

    def test_malformed_upstream_answer(self):
        mock = self.start_mock()
        srv = self.start_server(llm(provider("ollama", mock, fault="malformed-json")))
        r = self.post(srv, {"model": MODELS["ollama"], "input": "x"})
        self.assertJsonError(r, 502, "bad_gateway")

    # -- validation
    def test_bad_inputs(self):
        mock, srv = self.pair("openai")
        cases = [
            ({"input": "x", "model": None}, "model: is required"),
            ({"model": "m"}, "input"),
            ({"input": ""}, "input"),
            ({"input": []}, "input"),
            ({"input": ["a", ""]}, "input[1]"),
            ({"input": ["a", 1]}, "input[1]"),
            ({"input": [[1, -2]]}, "input[0][1]"),
            ({"input": [[]]}, "input[0]"),
            ({"input": {"a": 1}}, "input"),
            ({"input": ["x"] * 2049}, "at most 2048"),
            ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
            ({"input": "x", "dimensions": 0}, "dimensions"),
            ({"input": "x", "dimensions": "8"}, "dimensions"),
            ({"input": "x", "user": 5}, "user"),
            ({"input": "x", "model": 5}, "model"),
            ({"input": "x", "stream": True}, "stream"),
        ]
        for body, needle in cases:
            with self.subTest(body=str(body)[:60]):
                if "model" not in body:
                    body = dict(body, model=MODELS["openai"])
                r = self.post(srv, body)
                err = self.assertJsonError(r, 400, "invalid_request")
                self.assertIn(needle, err["message"])
        r = self.post(srv, b"[1,2")
        self.assertJsonError(r, 400, "invalid_request")
        self.assertEqual(mock.stats()["requests"], 0)

    def test_unknown_model(self):
        mock, srv = self.pair("openai")
        r = self.post(srv, {"model": "nope", "input": "x"})
        self.assertJsonError(r, 404, "model_not_found")

    # -- auth, usage
    def test_auth_and_model_restriction(self):
        mock = self.start_mock()
        cfg = llm(provider("openai", mock))
        cfg["auth"] = {"enabled": True, "keys": [{"key": "hx-client-key-0123456789", "name": "c"},
                                                 {"key": "hx-restricted-key-0123456789", "name": "r",
                                                  "models": ["other"]}]}
        srv = self.start_server(cfg)
        r = self.post(srv, {"model": MODELS["openai"], "input": "x"})
        self.assertEqual(r.status, 401, r)
        r = self.post(srv, {"model": MODELS["openai"], "input": "x"},
                      headers={"Authorization": "Bearer hx-restricted-key-0123456789"})
        self.assertEqual(r.status, 403, r)
        r = self.post(srv, {"model": MODELS["openai"], "input": "x"},
                      headers={"Authorization": "Bearer hx-client-key-0123456789"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(mock.stats()["requests"], 1)

    def test_tokens_in_access_log(self):
        mock, srv = self.pair("ollama")
        r = self.post(srv, {"model": MODELS["ollama"], "input": ["a b c", "d"]})
        self.assertEqual(r.status, 200, r)
        line = srv.wait_log(lambda l: l.get("path") == EMB and "prompt_tokens" in l)
        self.assertEqual(line["prompt_tokens"], 4, line)
        m = parse_metrics(srv.get("/metrics").body.decode())
        self.assertEqual(samples(m, "hapax_tokens_total", provider="ollama", kind="prompt"), [4])
        self.assertEqual(samples(m, "hapax_provider_requests_total", provider="ollama", outcome="success"), [1])

    def test_tokens_debited(self):
        # 5 tokens a minute: an answer with 6 prompt tokens puts the
        # client in debt, so the next request gets 429.
        mock = self.start_mock()
        cfg = llm(provider("openai", mock))
        cfg["rate_limit"] = {"enabled": True, "requests_per_minute": 600, "burst": 100, "tokens_per_minute": 5}
        srv = self.start_server(cfg)
        r = self.post(srv, {"model": MODELS["openai"], "input": "one two three four five six"},
                      headers={"X-Request-ID": "emb-1"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["usage"]["prompt_tokens"], 6)
        self.assertIsNotNone(srv.wait_log(lambda l: l.get("request_id") == "emb-1" and "status" in l))
        r = self.post(srv, {"model": MODELS["openai"], "input": "x"})
        self.assertEqual(r.status, 429, r)
        self.assertEqual(mock.stats()["requests"], 1)
