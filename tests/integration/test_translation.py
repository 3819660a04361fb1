"""Cross-format translation (issue 10 items 2, 4, 6; docs/providers.md
"Translation"): a scripted upstream per wire format records what it
received and answers with thinking, cache usage, stop sequences,
reasoning_content and refusals; each test checks both what the upstream got
and what the client saw, in the client's own format."""

import json

from fidelity import ScriptedUpstream
from harness import HapaxTestCase

TIMEOUT = 15.0
H = {"Content-Type": "application/json"}


def sse(events):
    """Anthropic SSE text from (type, data) pairs."""
    return "".join("event: %s\ndata: %s\n\n" % (t, json.dumps(d)) for t, d in events)


def sse_data(text):
    """The JSON data of every SSE event in text, as (event name, object)."""
    out = []
    for frame in text.split("\n\n"):
        name, data = None, None
        for line in frame.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if data and data != "[DONE]":
            out.append((name, json.loads(data)))
    return out


ANTH_STREAM = sse([
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_up", "type": "message", "role": "assistant", "model": "claude-up", "content": [],
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20,
                  "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "thinking_delta", "thinking": "Counting."}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "signature_delta", "signature": "EqQBsig"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1,
                             "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "text_delta", "text": "1, 2, "}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "stop_sequence", "stop_sequence": "3"},
                       "usage": {"output_tokens": 30}}),
    ("message_stop", {"type": "message_stop"}),
])

ANTH_BODY = json.dumps({
    "id": "msg_up", "type": "message", "role": "assistant", "model": "claude-up",
    "content": [{"type": "thinking", "thinking": "Counting.", "signature": "EqQBsig"},
                {"type": "text", "text": "{\"a\":1}"}],
    "stop_reason": "stop_sequence", "stop_sequence": "END",
    "usage": {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20,
              "output_tokens": 30}})


def oa_chunk(delta, finish=None, usage=None):
    c = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up",
         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else []}
    if usage is not None:
        c["usage"] = usage
    return "data: %s\n\n" % json.dumps(c)


OA_STREAM = (oa_chunk({"role": "assistant", "reasoning_content": "Hmm."}) + oa_chunk({"content": "Hi"}) +
             oa_chunk({}, "stop") +
             oa_chunk(None, usage={"prompt_tokens": 50, "completion_tokens": 9,
                                   "prompt_tokens_details": {"cached_tokens": 32},
                                   "completion_tokens_details": {"reasoning_tokens": 4}}) +
             "data: [DONE]\n\n")

OA_REFUSAL = json.dumps({
    "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": "gpt-up",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": "I can't help."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3}})

OLLAMA_BODY = json.dumps({
    "model": "qwen3", "created_at": "2026-01-01T00:00:00Z",
    "message": {"role": "assistant", "content": "42", "thinking": "6 times 7."},
    "done": True, "done_reason": "stop", "prompt_eval_count": 12, "eval_count": 8})


def script(rec):
    path, body = rec["path"], rec["body"] or {}
    ctype, data = script_for(path, body)
    return {"raw": data, "content_type": ctype}


def script_for(path, body):
    if path.endswith("/messages"):
        return ("text/event-stream", ANTH_STREAM) if body.get("stream") else ("application/json", ANTH_BODY)
    if path.endswith("/chat/completions"):
        if body.get("stream"):
            return "text/event-stream", OA_STREAM
        return "application/json", OA_REFUSAL
    return "application/json", OLLAMA_BODY


class TranslationTest(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.up = ScriptedUpstream()
        self.up.script(script)
        self.addCleanup(self.up.close)

    def base(self, v1=True):
        return self.up.url + ("/v1" if v1 else "")

    def serve(self, *providers):
        """A gateway whose chain is providers: (name, type, model)."""
        def prov(name, kind, model):
            return {"name": name, "provider": kind, "model": model, "api_key": "sk-translate-test",
                    "endpoint": self.base(kind != "ollama")}
        first = prov(*providers[0])
        first.pop("name")
        first["retry"] = {"max_retries": 0}
        first["backup_providers"] = [prov(*p) for p in providers[1:]]
        return self.start_server({"llm": first})

    def post(self, srv, path, body):
        return srv.request("POST", path, headers=H, body=json.dumps(body), timeout=TIMEOUT)

    def posts(self):
        """What reached the upstream, the health probes (GET) left out."""
        return [r for r in self.up.received() if r["method"] == "POST"]

    def received(self):
        got = self.posts()
        self.assertEqual(len(got), 1, got)
        return got[0]["body"]

    # -- OpenAI client, Anthropic upstream ---------------------------------------------

    def test_openai_client_anthropic_upstream_structured_reasoning_usage(self):
        srv = self.serve(("anthropic", "anthropic", "claude-up"))
        schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
                  "additionalProperties": False}
        r = self.post(srv, "/v1/chat/completions", {
            "messages": [{"role": "user", "content": "Give a"}], "reasoning_effort": "low", "user": "u-1",
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}})
        self.assertEqual(r.status, 200, r)
        up = self.received()
        self.assertEqual(up["output_config"], {"format": {"type": "json_schema", "schema": schema}})
        self.assertEqual(up["thinking"], {"type": "enabled", "budget_tokens": 1024})
        self.assertEqual(up["max_tokens"], 1024 + 4096)
        self.assertEqual(up["metadata"], {"user_id": "u-1"})
        self.assertNotIn("response_format", up)
        self.assertNotIn("reasoning_effort", up)
        d = r.json()
        msg = d["choices"][0]["message"]
        self.assertEqual(msg["content"], '{"a":1}')
        self.assertEqual(msg["reasoning_content"], "Counting.")
        self.assertEqual(d["choices"][0]["finish_reason"], "stop")
        self.assertEqual(d["usage"]["prompt_tokens"], 130)  # input + cache read + cache write
        self.assertEqual(d["usage"]["prompt_tokens_details"], {"cached_tokens": 100})
        self.assertEqual(d["usage"]["completion_tokens"], 30)

    def test_refused_by_name_then_failover(self):
        srv = self.serve(("anthropic", "anthropic", "claude-up"))
        for field, value in (("seed", 7), ("logprobs", True), ("presence_penalty", 0.5),
                             ("logit_bias", {"50256": -100})):
            with self.subTest(field=field):
                r = self.post(srv, "/v1/chat/completions",
                              {"messages": [{"role": "user", "content": "x"}], field: value})
                self.assertEqual(r.status, 400, r)
                self.assertEqual(r.json()["error"]["message"],
                                 "%s is not supported by provider anthropic (anthropic)" % field)
        r = self.post(srv, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                                     "response_format": {"type": "json_object"}})
        self.assertEqual(r.status, 400, r)
        self.assertIn("response_format json_object is not supported by provider anthropic (anthropic)",
                      r.json()["error"]["message"])
        self.assertEqual(self.posts(), [])  # nothing reached the upstream
        # a chain where another provider can carry it: that one serves
        srv2 = self.serve(("anthropic", "anthropic", "claude-up"), ("local", "ollama", "qwen3"))
        r = self.post(srv2, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "seed": 7})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Hapax-Provider"), "local")
        self.assertEqual(self.received()["options"]["seed"], 7)

    # -- Anthropic client ----------------------------------------------------------------

    def test_anthropic_client_stream_thinking_cache_stop_sequence(self):
        srv = self.serve(("anthropic", "anthropic", "claude-up"))
        r = self.post(srv, "/v1/messages", {"model": "claude-up", "max_tokens": 2000, "stream": True,
                                            "stop_sequences": ["3"],
                                            "messages": [{"role": "user", "content": "Count"}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.received()["stop_sequences"], ["3"])
        ev = sse_data(r.body.decode())
        start = [d for n, d in ev if n == "message_start"][0]
        self.assertEqual(start["message"]["usage"]["input_tokens"], 10)
        self.assertEqual(start["message"]["usage"]["cache_read_input_tokens"], 100)
        self.assertEqual(start["message"]["usage"]["cache_creation_input_tokens"], 20)
        blocks = [d["content_block"]["type"] for n, d in ev if n == "content_block_start"]
        self.assertEqual(blocks, ["thinking", "text"])
        deltas = [d["delta"] for n, d in ev if n == "content_block_delta"]
        self.assertEqual(deltas[0], {"type": "thinking_delta", "thinking": "Counting."})
        self.assertEqual(deltas[1], {"type": "signature_delta", "signature": "EqQBsig"})
        self.assertEqual(deltas[2], {"type": "text_delta", "text": "1, 2, "})
        md = [d for n, d in ev if n == "message_delta"][0]
        self.assertEqual(md["delta"], {"stop_reason": "stop_sequence", "stop_sequence": "3"})
        self.assertEqual(md["usage"]["output_tokens"], 30)

    def test_anthropic_client_openai_upstream_reasoning_and_cached_usage(self):
        srv = self.serve(("openai", "openai", "gpt-up"))
        r = self.post(srv, "/v1/messages", {"model": "gpt-up", "max_tokens": 100, "stream": True,
                                            "messages": [{"role": "user", "content": "Hi"}]})
        self.assertEqual(r.status, 200, r)
        ev = sse_data(r.body.decode())
        self.assertEqual([d["content_block"]["type"] for n, d in ev if n == "content_block_start"],
                         ["thinking", "text"])
        self.assertEqual([d["delta"] for n, d in ev if n == "content_block_delta"][0],
                         {"type": "thinking_delta", "thinking": "Hmm."})
        md = [d for n, d in ev if n == "message_delta"][0]
        # OpenAI's prompt_tokens include the cached ones; Anthropic's input_tokens do not
        self.assertEqual(md["usage"]["input_tokens"], 18)
        self.assertEqual(md["usage"]["cache_read_input_tokens"], 32)
        self.assertEqual(md["usage"]["output_tokens"], 9)

    def test_openai_refusal_reaches_both_clients(self):
        srv = self.serve(("openai", "openai", "gpt-up"))
        r = self.post(srv, "/v1/messages", {"model": "gpt-up", "max_tokens": 100,
                                            "messages": [{"role": "user", "content": "Hi"}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["content"], [{"type": "text", "text": "I can't help."}])
        # the OpenAI client's own format relays the answer as it is (passthrough)
        r = self.post(srv, "/v1/chat/completions", {"model": "gpt-up",
                                                    "messages": [{"role": "user", "content": "Hi"}]})
        self.assertEqual(r.json()["choices"][0]["message"]["refusal"], "I can't help.")

    # -- Ollama upstream -----------------------------------------------------------------

    def test_ollama_upstream_think_and_thinking(self):
        srv = self.serve(("ollama", "ollama", "qwen3"))
        r = self.post(srv, "/v1/chat/completions", {
            "messages": [{"role": "user", "content": "6*7?"}], "reasoning_effort": "medium", "top_k": 20,
            "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}})
        self.assertEqual(r.status, 200, r)
        up = self.received()
        self.assertEqual(up["think"], "medium")
        self.assertEqual(up["options"]["top_k"], 20)
        self.assertEqual(up["format"], {"type": "object"})
        d = r.json()
        self.assertEqual(d["choices"][0]["message"]["reasoning_content"], "6 times 7.")
        self.assertEqual(d["choices"][0]["message"]["content"], "42")
        r = self.post(srv, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                                    "logprobs": True})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["error"]["message"], "logprobs is not supported by provider ollama (ollama)")
        # an Anthropic client's answer carries the thinking block
        r = self.post(srv, "/v1/messages", {"model": "qwen3", "max_tokens": 100,
                                            "messages": [{"role": "user", "content": "6*7?"}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["content"][0], {"type": "thinking", "thinking": "6 times 7.", "signature": ""})
        self.assertEqual(r.json()["usage"]["input_tokens"], 12)
