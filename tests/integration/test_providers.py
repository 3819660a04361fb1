"""End-to-end tests of the provider/API layer against the mock provider
(tests/mock, `mock-provider`).

Every test starts its own mock and its own hapax. The mock answers
deterministically ("Hello from the mock <family> provider. You said: <first
8 words of the last user message>", 8 content chunks, usage = words in all
messages / 8 completion tokens, tool call get_weather({"location":"Paris"})
when tools are offered) and records the last upstream request
(/_mock/last), so both directions of every translation are checked:

  * the format matrix: each adapter (openai, anthropic, ollama) as primary
    x each inbound API (chat completions, /v1/completions in the Hapax and
    the legacy `prompt` shapes, /v1/messages), streamed and not, tools;
  * the upstream request each adapter builds;
  * routing by model / provider name / alias, unknown models;
  * failover and error mapping (5xx, 429, 401/403, 404, timeouts, refused
    connections, malformed answers, client 4xx without failover);
  * mid-stream failures, client disconnects, backpressure, missing keys,
    secrets in logs.
"""

import json
import threading
import time

from harness import DEFAULT_TIMEOUT, SANITIZER_ENV, HapaxTestCase, RawConn, free_port

MODELS = {"openai": "gpt-test", "anthropic": "claude-test", "ollama": "llama-test"}
KEYS = {"openai": "sk-test-openai-key", "anthropic": "sk-ant-test-key", "ollama": ""}
ADAPTERS = ("openai", "anthropic", "ollama")

REQ_TIMEOUT = 15.0  # any single request to hapax in these tests

TOOL_PARAMS = {"type": "object", "properties": {"location": {"type": "string"}},
               "required": ["location"]}
TOOL_OAI = {"type": "function", "function": {"name": "get_weather",
                                             "description": "Weather for a city",
                                             "parameters": TOOL_PARAMS}}
TOOL_ANTH = {"name": "get_weather", "description": "Weather for a city",
             "input_schema": TOOL_PARAMS}
TOOL_ARGS = {"location": "Paris"}

HUGE_PATTERN = "lorem ipsum dolor sit amet consectetur adipiscing elit "
HUGE_BYTES = 8 << 20


# ---------------------------------------------------------------------------
# helpers

def expected_text(family, said):
    """The mock's answer to a last user message `said` (8 chunks)."""
    words = said.split()[:8]
    return "Hello from the mock %s provider. You said:%s" % (family, "".join(" " + w for w in words))


def words(*texts):
    return sum(len(t.split()) for t in texts)


def provider(kind, mock=None, fault=None, model=None, key=None, endpoint=None, name=None,
             aliases=None):
    """One provider entry for the config (name/aliases only for backups)."""
    d = {"provider": kind, "model": model or MODELS[kind]}
    k = KEYS[kind] if key is None else key
    if k:
        d["api_key"] = k
    d["endpoint"] = endpoint if endpoint is not None else mock.endpoint(kind, fault)
    if name:
        d["name"] = name
    if aliases:
        d["aliases"] = list(aliases)
    return d


def llm(primary, backups=(), **kw):
    section = dict(primary)
    section.update({"connect_timeout": "2s", "first_byte_timeout": "5s", "request_timeout": "20s"})
    # These tests pin down failover and error mapping one attempt per
    # provider; retries of the same provider are tested in test_resilience.
    section["retry"] = {"max_retries": 0}
    section.update(kw)
    if backups:
        section["backup_providers"] = list(backups)
    return {"llm": section}


def sse_events(body):
    """[(event name or None, data)] of an SSE body (\\n\\n-separated)."""
    text = body.decode("utf-8")
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            k, _, v = line.partition(":")
            if v.startswith(" "):
                v = v[1:]
            if k == "event":
                name = v
            elif k == "data":
                data.append(v)
        out.append((name, "\n".join(data)))
    return out


def user(text):
    return {"role": "user", "content": text}


class ProviderTestCase(HapaxTestCase):
    """Adds the mock + hapax pair and format checkers."""

    def start_pair(self, primary_kind="openai", fault=None, backups=None, mock_args=None,
                   env=None, extra=None, **llm_kw):
        """A mock and a hapax whose primary is `primary_kind` on that mock.
        `backups` is a function mock -> list of backup entries."""
        mock = self.start_mock(args=mock_args)
        prim = provider(primary_kind, mock, fault=fault)
        cfg = llm(prim, backups(mock) if backups else (), **llm_kw)
        if extra:
            cfg.update(extra)
        srv = self.start_server(cfg, env=env)
        return mock, srv

    def post(self, srv, path, body, headers=None, timeout=REQ_TIMEOUT):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return srv.request("POST", path, headers=h, body=data, timeout=timeout)

    # -- format checks
    def assertOk(self, resp, provider_name=None, attempts=None, stream=False):
        self.assertEqual(resp.status, 200, resp)
        ctype = (resp.header("Content-Type") or "").split(";")[0].strip()
        self.assertEqual(ctype, "text/event-stream" if stream else "application/json", resp)
        if provider_name is not None:
            self.assertEqual(resp.header("X-Hapax-Provider"), provider_name, resp)
        if attempts is not None:
            self.assertEqual(resp.header("X-Hapax-Attempts"), str(attempts), resp)

    def openai_chunks(self, resp, done=True):
        """Parses an OpenAI stream; with done=True it must end with
        data: [DONE] (returned chunks exclude it)."""
        self.assertTrue(resp.body.endswith(b"\n\n"), "stream does not end with a blank line: %r"
                        % resp.body[-200:])
        events = sse_events(resp.body)
        self.assertTrue(events, resp)
        for name, _ in events:
            self.assertIsNone(name, "OpenAI streams carry no event names: %r" % resp.body[:500])
        if done:
            self.assertEqual(events[-1][1], "[DONE]", "stream does not end with [DONE]: %r"
                             % resp.body[-300:])
            self.assertEqual([d for _, d in events].count("[DONE]"), 1, resp.body[-500:])
            events = events[:-1]
        return [json.loads(d) for _, d in events]

    def check_chat_stream(self, resp, model, family, said, usage=None):
        chunks = self.openai_chunks(resp)
        self.assertGreaterEqual(len(chunks), 3, chunks)
        ids = {c["id"] for c in chunks}
        self.assertEqual(len(ids), 1, "chunks carry different ids: %r" % ids)
        for c in chunks:
            self.assertEqual(c["object"], "chat.completion.chunk", c)
            self.assertEqual(c["model"], model, c)
        self.assertEqual(chunks[0]["choices"][0]["delta"].get("role"), "assistant", chunks[0])
        content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
        self.assertGreaterEqual(len(content), 2, "the answer was not streamed in pieces: %r" % chunks)
        text = "".join(c["choices"][0]["delta"]["content"] for c in content)
        self.assertEqual(text, expected_text(family, said))
        fin = [c for c in chunks if c["choices"] and c["choices"][0].get("finish_reason")]
        self.assertEqual(len(fin), 1, chunks)
        self.assertEqual(fin[0]["choices"][0]["finish_reason"], "stop")
        with_usage = [c for c in chunks if c.get("usage")]
        if usage is None:
            self.assertEqual(with_usage, [], "usage chunk sent although not asked for")
        else:
            self.assertEqual(len(with_usage), 1, chunks)
            u = with_usage[0]
            self.assertIs(u is chunks[-1], True, "the usage chunk must be the last before [DONE]")
            self.assertEqual(u["choices"], [], u)
            self.assertEqual(u["usage"], usage)
        return chunks

    def check_anthropic_stream(self, resp):
        """Validates the Messages API event order; returns (blocks, start,
        delta) where blocks are dicts {type, text | name/id/partial_json}."""
        self.assertTrue(resp.body.endswith(b"\n\n"), resp.body[-200:])
        events = sse_events(resp.body)
        names = [n for n, _ in events]
        datas = [json.loads(d) for _, d in events]
        for n, d in zip(names, datas):
            self.assertIsNotNone(n, "event without a name: %r" % d)
            self.assertEqual(d.get("type"), n, "data.type differs from the event name")
        seq = [(n, d) for n, d in zip(names, datas) if n != "ping"]
        self.assertGreaterEqual(len(seq), 4, names)
        self.assertEqual(seq[0][0], "message_start", names)
        self.assertEqual(seq[-1][0], "message_stop", names)
        self.assertEqual(seq[-2][0], "message_delta", names)
        blocks, cur = [], None
        for n, d in seq[1:-2]:
            if n == "content_block_start":
                self.assertIsNone(cur, "block started inside a block: %r" % names)
                self.assertEqual(d["index"], len(blocks), names)
                cur = dict(d["content_block"])
                cur.setdefault("text", "")
                cur["partial_json"] = ""
            elif n == "content_block_delta":
                self.assertIsNotNone(cur, "delta outside a block: %r" % names)
                self.assertEqual(d["index"], len(blocks))
                delta = d["delta"]
                if delta["type"] == "text_delta":
                    self.assertEqual(cur["type"], "text")
                    cur["text"] += delta["text"]
                else:
                    self.assertEqual(delta["type"], "input_json_delta")
                    self.assertEqual(cur["type"], "tool_use")
                    cur["partial_json"] += delta["partial_json"]
            elif n == "content_block_stop":
                self.assertIsNotNone(cur)
                self.assertEqual(d["index"], len(blocks))
                blocks.append(cur)
                cur = None
            else:
                self.fail("unexpected event %r in %r" % (n, names))
        self.assertIsNone(cur, "a block was never stopped: %r" % names)
        start = seq[0][1]["message"]
        self.assertEqual(start["role"], "assistant")
        self.assertEqual(start["content"], [])
        return blocks, start, seq[-2][1]

    def check_upstream_model(self, mock, model):
        last = mock.last()
        self.assertIsNotNone(last, "the mock saw no request")
        self.assertEqual(last["body"]["model"], model, last)


# ---------------------------------------------------------------------------
# the format matrix: each adapter as primary x each inbound API

SAID = "tell me about the weather in Paris today please now"   # 10 words: 8 are echoed
SYSTEM = "You are terse."


class _Matrix:
    KIND = None

    def setUp(self):
        super().setUp()
        self.mock, self.srv = self.start_pair(self.KIND)
        self.model = MODELS[self.KIND]

    # chat completions
    def test_chat(self):
        msgs = [{"role": "system", "content": SYSTEM}, user(SAID)]
        r = self.post(self.srv, "/v1/chat/completions", {"messages": msgs})
        self.assertOk(r, self.KIND, 1)
        doc = r.json()
        self.assertEqual(doc["object"], "chat.completion")
        self.assertEqual(doc["model"], self.model)
        self.assertTrue(doc["id"])
        ch = doc["choices"]
        self.assertEqual(len(ch), 1)
        self.assertEqual(ch[0]["message"]["role"], "assistant")
        self.assertEqual(ch[0]["message"]["content"], expected_text(self.KIND, SAID))
        self.assertEqual(ch[0]["finish_reason"], "stop")
        pt = words(SYSTEM, SAID)
        self.assertEqual(doc["usage"], {"prompt_tokens": pt, "completion_tokens": 8,
                                        "total_tokens": pt + 8})

    def test_chat_stream(self):
        r = self.post(self.srv, "/v1/chat/completions",
                      {"messages": [user(SAID)], "stream": True})
        self.assertOk(r, self.KIND, 1, stream=True)
        self.check_chat_stream(r, self.model, self.KIND, SAID)

    def test_chat_stream_include_usage(self):
        r = self.post(self.srv, "/v1/chat/completions",
                      {"messages": [{"role": "system", "content": SYSTEM}, user(SAID)],
                       "stream": True, "stream_options": {"include_usage": True}})
        self.assertOk(r, self.KIND, 1, stream=True)
        pt = words(SYSTEM, SAID)
        self.check_chat_stream(r, self.model, self.KIND, SAID,
                               usage={"prompt_tokens": pt, "completion_tokens": 8,
                                      "total_tokens": pt + 8})

    # /v1/completions, original Hapax shape
    def test_completions_hapax_input(self):
        r = self.post(self.srv, "/v1/completions", {"input": SAID})
        self.assertOk(r, self.KIND, 1)
        self.assertEqual(r.json(), {"content": expected_text(self.KIND, SAID)})

    def test_completions_hapax_messages_and_function_description(self):
        r = self.post(self.srv, "/v1/completions",
                      {"function_description": "Answer in French.",
                       "messages": [user("first question here"),
                                    {"role": "assistant", "content": "an answer"},
                                    user(SAID)]})
        self.assertOk(r, self.KIND, 1)
        self.assertEqual(r.json(), {"content": expected_text(self.KIND, SAID)})
        body = self.mock.last()["body"]
        if self.KIND == "anthropic":
            self.assertEqual(body["system"], "Answer in French.", body)
        else:
            self.assertEqual(body["messages"][0], {"role": "system", "content": "Answer in French."},
                             body)

    # /v1/completions, OpenAI legacy prompt
    def test_completions_legacy_prompt(self):
        r = self.post(self.srv, "/v1/completions", {"prompt": SAID, "max_tokens": 50})
        self.assertOk(r, self.KIND, 1)
        doc = r.json()
        self.assertEqual(doc["object"], "text_completion", doc)
        self.assertEqual(doc["model"], self.model)
        self.assertEqual(doc["choices"][0]["text"], expected_text(self.KIND, SAID))
        self.assertEqual(doc["choices"][0]["finish_reason"], "stop")
        self.assertEqual(doc["usage"], {"prompt_tokens": words(SAID), "completion_tokens": 8,
                                        "total_tokens": words(SAID) + 8})

    def test_completions_legacy_prompt_stream(self):
        r = self.post(self.srv, "/v1/completions",
                      {"prompt": SAID, "stream": True, "stream_options": {"include_usage": True}})
        self.assertOk(r, self.KIND, 1, stream=True)
        chunks = self.openai_chunks(r)
        for c in chunks:
            self.assertEqual(c["object"], "text_completion", c)
        text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
        self.assertEqual(text, expected_text(self.KIND, SAID))
        self.assertGreaterEqual(len([c for c in chunks if c["choices"] and c["choices"][0]["text"]]), 2)
        fin = [c["choices"][0]["finish_reason"] for c in chunks
               if c["choices"] and c["choices"][0]["finish_reason"]]
        self.assertEqual(fin, ["stop"])
        self.assertEqual(chunks[-1].get("usage"), {"prompt_tokens": words(SAID),
                                                   "completion_tokens": 8,
                                                   "total_tokens": words(SAID) + 8}, chunks[-1])

    # /v1/messages (Anthropic Messages API inbound)
    def test_messages(self):
        r = self.post(self.srv, "/v1/messages",
                      {"model": "default", "max_tokens": 100, "system": SYSTEM,
                       "messages": [user(SAID)]})
        self.assertOk(r, self.KIND, 1)
        doc = r.json()
        self.assertEqual(doc["type"], "message", doc)
        self.assertEqual(doc["role"], "assistant")
        self.assertEqual(doc["model"], self.model)
        self.assertIsInstance(doc["id"], str)
        self.assertTrue(doc["id"], doc)
        self.assertEqual(doc["content"], [{"type": "text", "text": expected_text(self.KIND, SAID)}])
        self.assertEqual(doc["stop_reason"], "end_turn")
        self.assertEqual(doc["usage"]["input_tokens"], words(SYSTEM, SAID), doc)
        self.assertEqual(doc["usage"]["output_tokens"], 8, doc)

    def test_messages_stream(self):
        r = self.post(self.srv, "/v1/messages",
                      {"model": "default", "max_tokens": 100, "stream": True, "system": SYSTEM,
                       "messages": [user(SAID)]})
        self.assertOk(r, self.KIND, 1, stream=True)
        blocks, start, delta = self.check_anthropic_stream(r)
        self.assertEqual(start["model"], self.model)
        self.assertEqual(len(blocks), 1, blocks)
        self.assertEqual(blocks[0]["type"], "text")
        self.assertEqual(blocks[0]["text"], expected_text(self.KIND, SAID))
        self.assertEqual(delta["delta"]["stop_reason"], "end_turn")
        self.assertEqual(delta["usage"]["output_tokens"], 8, delta)
        # input tokens: in message_start (Anthropic) or in message_delta
        inp = delta["usage"].get("input_tokens") or start["usage"].get("input_tokens")
        self.assertEqual(inp, words(SYSTEM, SAID), (start, delta))

    def test_unicode_and_escapes_round_trip(self):
        said = 'h\u00e9llo w\u00f6rld \U0001F600 "quoted" back\\slash \u4e2d\u6587 <tag>&amp; end'
        r = self.post(self.srv, "/v1/chat/completions", {"messages": [user(said)]})
        self.assertOk(r, self.KIND, 1)
        self.assertEqual(r.json()["choices"][0]["message"]["content"], expected_text(self.KIND, said))
        r = self.post(self.srv, "/v1/chat/completions", {"messages": [user(said)], "stream": True})
        self.check_chat_stream(r, self.model, self.KIND, said)
        r = self.post(self.srv, "/v1/messages", {"model": "default", "max_tokens": 9, "stream": True,
                                                 "messages": [user(said)]})
        blocks, _, _ = self.check_anthropic_stream(r)
        self.assertEqual(blocks[0]["text"], expected_text(self.KIND, said))

    def test_large_request_body_reaches_upstream_intact(self):
        big = ("0123456789abcdef\u00e9" * 20000) + " tail words here"
        r = self.post(self.srv, "/v1/chat/completions", {"messages": [user(big)]}, timeout=30)
        self.assertOk(r, self.KIND, 1)
        body = self.mock.last()["body"]
        content = body["messages"][-1]["content"]
        if isinstance(content, list):
            content = "".join(b.get("text", "") for b in content)
        self.assertEqual(content, big)

    # tools: OpenAI in -> tool_calls out
    def test_chat_tools(self):
        r = self.post(self.srv, "/v1/chat/completions",
                      {"messages": [user("weather in Paris?")], "tools": [TOOL_OAI]})
        self.assertOk(r, self.KIND, 1)
        ch = r.json()["choices"][0]
        self.assertEqual(ch["finish_reason"], "tool_calls", ch)
        calls = ch["message"]["tool_calls"]
        self.assertEqual(len(calls), 1, calls)
        self.assertEqual(calls[0]["type"], "function")
        self.assertTrue(calls[0]["id"], calls)
        self.assertEqual(calls[0]["function"]["name"], "get_weather")
        self.assertEqual(json.loads(calls[0]["function"]["arguments"]), TOOL_ARGS)
        self.assertFalse(ch["message"].get("content"), ch)

    def test_chat_tools_stream(self):
        r = self.post(self.srv, "/v1/chat/completions",
                      {"messages": [user("weather in Paris?")], "tools": [TOOL_OAI],
                       "stream": True})
        self.assertOk(r, self.KIND, 1, stream=True)
        chunks = self.openai_chunks(r)
        calls = {}
        for c in chunks:
            for tc in (c["choices"][0]["delta"].get("tool_calls") or []) if c["choices"] else []:
                acc = calls.setdefault(tc["index"], {"id": None, "name": None, "args": ""})
                if tc.get("id"):
                    self.assertIsNone(acc["id"], "tool call id sent twice")
                    acc["id"] = tc["id"]
                fn = tc.get("function") or {}
                if fn.get("name"):
                    acc["name"] = fn["name"]
                acc["args"] += fn.get("arguments") or ""
        self.assertEqual(list(calls), [0], chunks)
        self.assertTrue(calls[0]["id"])
        self.assertEqual(calls[0]["name"], "get_weather")
        self.assertEqual(json.loads(calls[0]["args"]), TOOL_ARGS)
        fin = [c["choices"][0]["finish_reason"] for c in chunks
               if c["choices"] and c["choices"][0].get("finish_reason")]
        self.assertEqual(fin, ["tool_calls"])

    def test_chat_tool_result_round_trip(self):
        msgs = [user("weather in Paris?"),
                {"role": "assistant", "content": None,
                 "tool_calls": [{"id": "call_1", "type": "function",
                                 "function": {"name": "get_weather",
                                              "arguments": json.dumps(TOOL_ARGS)}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny 21C"}]
        r = self.post(self.srv, "/v1/chat/completions", {"messages": msgs, "tools": [TOOL_OAI]})
        self.assertOk(r, self.KIND, 1)
        ch = r.json()["choices"][0]
        # the mock answers a tool result with text, never with another call
        self.assertFalse(ch["message"].get("tool_calls"), ch)
        self.assertTrue(ch["message"]["content"].startswith(
            "Hello from the mock %s provider. You said:" % self.KIND), ch)
        self.assertEqual(ch["finish_reason"], "stop")

    # tools: Anthropic in -> tool_use out
    def test_messages_tools(self):
        r = self.post(self.srv, "/v1/messages",
                      {"model": "default", "max_tokens": 100, "tools": [TOOL_ANTH],
                       "messages": [user("weather in Paris?")]})
        self.assertOk(r, self.KIND, 1)
        doc = r.json()
        self.assertEqual(doc["stop_reason"], "tool_use", doc)
        uses = [b for b in doc["content"] if b["type"] == "tool_use"]
        self.assertEqual(len(uses), 1, doc)
        self.assertEqual(uses[0]["name"], "get_weather")
        self.assertEqual(uses[0]["input"], TOOL_ARGS)
        self.assertTrue(uses[0]["id"])

    def test_messages_tools_stream(self):
        r = self.post(self.srv, "/v1/messages",
                      {"model": "default", "max_tokens": 100, "tools": [TOOL_ANTH],
                       "stream": True, "messages": [user("weather in Paris?")]})
        self.assertOk(r, self.KIND, 1, stream=True)
        blocks, _, delta = self.check_anthropic_stream(r)
        uses = [b for b in blocks if b["type"] == "tool_use"]
        self.assertEqual(len(uses), 1, blocks)
        self.assertEqual(uses[0]["name"], "get_weather")
        self.assertTrue(uses[0]["id"])
        self.assertEqual(json.loads(uses[0]["partial_json"]), TOOL_ARGS)
        self.assertEqual(delta["delta"]["stop_reason"], "tool_use")

    def test_messages_tool_result_round_trip(self):
        msgs = [user("weather in Paris?"),
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                                   "name": "get_weather", "input": TOOL_ARGS}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                              "content": "sunny 21C"}]}]
        r = self.post(self.srv, "/v1/messages", {"model": "default", "max_tokens": 100,
                                                 "tools": [TOOL_ANTH], "messages": msgs})
        self.assertOk(r, self.KIND, 1)
        doc = r.json()
        self.assertEqual(doc["stop_reason"], "end_turn", doc)
        self.assertEqual([b["type"] for b in doc["content"]], ["text"], doc)
        self.assertTrue(doc["content"][0]["text"].startswith(
            "Hello from the mock %s provider. You said:" % self.KIND), doc)


class OpenAIPrimaryTest(_Matrix, ProviderTestCase):
    KIND = "openai"

    def test_upstream_request_shape(self):
        # Raw body: number text, unknown fields, model = the provider name.
        raw = ('{"model":"openai","messages":[{"role":"user","content":"hi there"}],'
               '"temperature":0.70,"top_p":1.0,"seed":12345678901234,'
               '"x_unknown_field":{"nested":[1,2.50,"s"],"flag":true},'
               '"logit_bias":{"50256":-100}}')
        r = self.post(self.srv, "/v1/chat/completions", raw)
        self.assertOk(r, "openai", 1)
        last = self.mock.last()
        self.assertEqual(last["method"], "POST")
        self.assertEqual(last["path"], "/v1/chat/completions")
        self.assertEqual(last["headers"].get("authorization"), "Bearer " + KEYS["openai"])
        self.assertTrue(last["headers"].get("content-type", "").startswith("application/json"))
        body = last["body"]
        self.assertIsInstance(body, dict, last)
        self.assertEqual(body["model"], MODELS["openai"])
        self.assertEqual(body["x_unknown_field"], {"nested": [1, 2.5, "s"], "flag": True})
        self.assertEqual(body["logit_bias"], {"50256": -100})
        self.assertEqual(body["seed"], 12345678901234)
        self.assertIs(body.get("stream", False), False, "a non-streamed request asked for a stream")
        text = self.mock.last_raw()
        for frag in ('"temperature":0.70', '"top_p":1.0', '"nested":[1,2.50,"s"]'):
            self.assertIn(frag, text, "number text not kept byte-identical upstream")

    def test_upstream_passthrough_when_model_is_the_providers(self):
        # Naming the provider's own model: the body may go upstream as it
        # is; either way nothing may be lost or rewritten.
        raw = ('{"model": "gpt-test", "messages": [{"role": "user", "content": "hi there",'
               ' "name": "bob"}], "temperature": 0.70, "top_p": 1.0,'
               ' "response_format": {"type": "json_object"}, "n": 1, "user": "u-1",'
               ' "x_vendor_ext": {"deep": [{"a": null}, 1e3, -0.0]}}')
        r = self.post(self.srv, "/v1/chat/completions", raw)
        self.assertOk(r, "openai", 1)
        # the mock answers response_format json_object with its JSON object
        self.assertEqual(json.loads(r.json()["choices"][0]["message"]["content"]), {"location": "Paris"})
        body = self.mock.last()["body"]
        want = json.loads(raw)
        self.assertEqual({k: v for k, v in body.items() if k != "stream" or v is not False}, want)
        text = self.mock.last_raw()
        for frag in ('"temperature":0.70', '"top_p":1.0', '1e3', '-0.0'):
            self.assertIn(frag, text, "number text changed on the way upstream")

    def test_upstream_request_shape_stream(self):
        r = self.post(self.srv, "/v1/chat/completions",
                      {"model": "gpt-test", "messages": [user("hi")], "stream": True})
        self.assertOk(r, "openai", 1, stream=True)
        body = self.mock.last()["body"]
        self.assertIs(body["stream"], True, body)

    def test_upstream_from_messages_api(self):
        # Anthropic in -> OpenAI out: system becomes a system message,
        # stop_sequences -> stop, max_tokens kept.
        r = self.post(self.srv, "/v1/messages",
                      {"model": "default", "max_tokens": 77, "system": SYSTEM,
                       "stop_sequences": ["END"], "temperature": 0.5,
                       "messages": [user("hi there")]})
        self.assertOk(r, "openai", 1)
        body = self.mock.last()["body"]
        self.assertEqual(body["model"], MODELS["openai"])
        self.assertEqual(body["messages"][0]["role"], "system", body)
        self.assertIn(SYSTEM, json.dumps(body["messages"][0]["content"]))
        self.assertEqual(body["messages"][-1]["role"], "user", body)
        mt = body.get("max_tokens", body.get("max_completion_tokens"))
        self.assertEqual(mt, 77, body)
        self.assertIn(body.get("stop"), (["END"], "END"), body)

    def test_upstream_tool_choice_from_messages_api(self):
        cases = [({"type": "any"}, "required"),
                 ({"type": "tool", "name": "get_weather"},
                  {"type": "function", "function": {"name": "get_weather"}})]
        for choice, want in cases:
            with self.subTest(choice=choice):
                r = self.post(self.srv, "/v1/messages",
                              {"model": "default", "max_tokens": 50, "tools": [TOOL_ANTH],
                               "tool_choice": choice, "messages": [user("weather?")]})
                self.assertOk(r, "openai", 1)
                self.assertEqual(self.mock.last()["body"]["tool_choice"], want)

    def test_upstream_tools_from_messages_api(self):
        r = self.post(self.srv, "/v1/messages",
                      {"model": "default", "max_tokens": 50, "tools": [TOOL_ANTH],
                       "messages": [user("weather?")]})
        self.assertOk(r, "openai", 1)
        body = self.mock.last()["body"]
        self.assertEqual(body["tools"], [TOOL_OAI], body)


class AnthropicPrimaryTest(_Matrix, ProviderTestCase):
    KIND = "anthropic"

    def test_upstream_request_shape(self):
        raw = ('{"model":"default","max_tokens":77,"temperature":0.70,"stop":"END",'
               '"messages":[{"role":"system","content":"Be brief."},'
               '{"role":"user","content":"hi there"}]}')
        r = self.post(self.srv, "/v1/chat/completions", raw)
        self.assertOk(r, "anthropic", 1)
        last = self.mock.last()
        self.assertEqual(last["path"], "/v1/messages")
        h = last["headers"]
        self.assertEqual(h.get("x-api-key"), KEYS["anthropic"])
        self.assertTrue(h.get("anthropic-version"), h)
        self.assertNotIn("authorization", h)
        body = last["body"]
        self.assertEqual(body["model"], MODELS["anthropic"])
        self.assertIn(body["system"], ("Be brief.", [{"type": "text", "text": "Be brief."}]), body)
        for m in body["messages"]:
            self.assertIn(m["role"], ("user", "assistant"), body)
        self.assertEqual(len(body["messages"]), 1, body)
        self.assertIn(body["messages"][0]["content"],
                      ("hi there", [{"type": "text", "text": "hi there"}]), body)
        self.assertEqual(body["max_tokens"], 77)
        self.assertEqual(body["stop_sequences"], ["END"])
        self.assertIn('"temperature":0.70', self.mock.last_raw())

    def test_upstream_max_tokens_always_present(self):
        r = self.post(self.srv, "/v1/chat/completions", {"messages": [user("hi")]})
        self.assertOk(r, "anthropic", 1)
        body = self.mock.last()["body"]
        self.assertIsInstance(body.get("max_tokens"), int, body)
        self.assertGreater(body["max_tokens"], 0)
        self.assertIs(body.get("stream", False), False, "a non-streamed request asked for a stream")

    def test_upstream_stream_flag_and_tools(self):
        r = self.post(self.srv, "/v1/chat/completions",
                      {"messages": [user("weather?")], "tools": [TOOL_OAI], "stream": True})
        self.assertOk(r, "anthropic", 1, stream=True)
        body = self.mock.last()["body"]
        self.assertIs(body.get("stream"), True, body)
        self.assertEqual(body["tools"], [TOOL_ANTH], body)

    def test_upstream_tool_choice_translation(self):
        cases = [("required", {"type": "any"}),
                 ({"type": "function", "function": {"name": "get_weather"}},
                  {"type": "tool", "name": "get_weather"})]
        for choice, want in cases:
            with self.subTest(choice=choice):
                r = self.post(self.srv, "/v1/chat/completions",
                              {"messages": [user("weather?")], "tools": [TOOL_OAI],
                               "tool_choice": choice})
                self.assertOk(r, "anthropic", 1)
                self.assertEqual(self.mock.last()["body"]["tool_choice"], want)
        r = self.post(self.srv, "/v1/chat/completions",
                      {"messages": [user("weather?")], "tools": [TOOL_OAI],
                       "tool_choice": "auto", "parallel_tool_calls": False})
        self.assertOk(r, "anthropic", 1)
        self.assertEqual(self.mock.last()["body"]["tool_choice"],
                         {"type": "auto", "disable_parallel_tool_use": True})

    def test_upstream_tool_result_translation(self):
        msgs = [user("weather in Paris?"),
                {"role": "assistant", "content": None,
                 "tool_calls": [{"id": "call_1", "type": "function",
                                 "function": {"name": "get_weather",
                                              "arguments": json.dumps(TOOL_ARGS)}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny 21C"}]
        r = self.post(self.srv, "/v1/chat/completions", {"messages": msgs, "tools": [TOOL_OAI]})
        self.assertOk(r, "anthropic", 1)
        body = self.mock.last()["body"]
        roles = [m["role"] for m in body["messages"]]
        self.assertEqual(roles, ["user", "assistant", "user"], body)
        use = body["messages"][1]["content"]
        self.assertIsInstance(use, list, body)
        self.assertEqual([(b["type"], b.get("id"), b.get("name"), b.get("input")) for b in use],
                         [("tool_use", "call_1", "get_weather", TOOL_ARGS)], body)
        res = body["messages"][2]["content"]
        self.assertEqual(res[0]["type"], "tool_result", body)
        self.assertEqual(res[0]["tool_use_id"], "call_1", body)
        self.assertIn("sunny 21C", json.dumps(res[0].get("content")), body)


class OllamaPrimaryTest(_Matrix, ProviderTestCase):
    KIND = "ollama"

    def test_upstream_request_shape(self):
        raw = ('{"messages":[{"role":"system","content":"Be brief."},'
               '{"role":"user","content":"hi there"}],"max_tokens":33,"temperature":0.70,'
               '"stop":["END"]}')
        r = self.post(self.srv, "/v1/chat/completions", raw)
        self.assertOk(r, "ollama", 1)
        last = self.mock.last()
        self.assertEqual(last["path"], "/api/chat")
        self.assertNotIn("authorization", last["headers"], "no api_key: no Authorization header")
        body = last["body"]
        self.assertEqual(body["model"], MODELS["ollama"])
        self.assertIn("stream", body, "Ollama streams by default: stream must be explicit")
        self.assertIs(body["stream"], False)
        self.assertEqual(body["options"]["num_predict"], 33, body)
        self.assertEqual(body["options"]["stop"], ["END"], body)
        self.assertEqual(body["messages"], [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "hi there"}])
        self.assertIn('"temperature":0.70', self.mock.last_raw())

    def test_upstream_stream_flag(self):
        r = self.post(self.srv, "/v1/chat/completions",
                      {"messages": [user("hi")], "stream": True})
        self.assertOk(r, "ollama", 1, stream=True)
        self.assertIs(self.mock.last()["body"].get("stream"), True)

    def test_upstream_tools_and_tool_result(self):
        msgs = [user("weather in Paris?"),
                {"role": "assistant", "content": None,
                 "tool_calls": [{"id": "call_1", "type": "function",
                                 "function": {"name": "get_weather",
                                              "arguments": json.dumps(TOOL_ARGS)}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny 21C"}]
        r = self.post(self.srv, "/v1/chat/completions", {"messages": msgs, "tools": [TOOL_OAI]})
        self.assertOk(r, "ollama", 1)
        body = self.mock.last()["body"]
        self.assertEqual(body["tools"], [TOOL_OAI], body)
        calls = body["messages"][1].get("tool_calls")
        self.assertEqual(calls[0]["function"]["name"], "get_weather", body)
        # Ollama wants the arguments as an object, not a JSON string
        self.assertEqual(calls[0]["function"]["arguments"], TOOL_ARGS, body)
        self.assertEqual(body["messages"][2]["role"], "tool", body)
        self.assertEqual(body["messages"][2]["content"], "sunny 21C", body)


class OllamaWithKeyTest(ProviderTestCase):

    def test_bearer_key_sent_when_configured(self):
        mock = self.start_mock()
        srv = self.start_server(llm(provider("ollama", mock, key="ollama-proxy-key")))
        r = self.post(srv, "/v1/chat/completions", {"messages": [user("hi")]})
        self.assertOk(r, "ollama", 1)
        self.assertEqual(mock.last()["headers"].get("authorization"), "Bearer ollama-proxy-key")


# ---------------------------------------------------------------------------
# routing

class RoutingTest(ProviderTestCase):

    def setUp(self):
        super().setUp()
        self.mock = self.start_mock()
        self.srv = self.start_server(llm(
            provider("openai", self.mock),
            [provider("anthropic", self.mock, name="claude", aliases=["fast", "cheap"]),
             provider("ollama", self.mock)]))

    def test_route_by_model_name_and_alias(self):
        cases = [("gpt-test", "openai"), ("openai", "openai"),
                 ("claude-test", "claude"), ("claude", "claude"), ("fast", "claude"),
                 ("cheap", "claude"), ("llama-test", "ollama"), ("ollama", "ollama"),
                 ("default", "openai"), ("", "openai"), (None, "openai")]
        models = {"openai": "gpt-test", "claude": "claude-test", "ollama": "llama-test"}
        for model, name in cases:
            with self.subTest(model=model):
                body = {"messages": [user("hi")]}
                if model is not None:
                    body["model"] = model
                r = self.post(self.srv, "/v1/chat/completions", body)
                self.assertOk(r, name, 1)
                self.assertEqual(r.json()["model"], models[name])
                self.check_upstream_model(self.mock, models[name])

    def test_route_messages_api_by_alias(self):
        r = self.post(self.srv, "/v1/messages", {"model": "fast", "max_tokens": 10,
                                                 "messages": [user("hi")]})
        self.assertOk(r, "claude", 1)
        self.assertEqual(self.mock.last()["path"], "/v1/messages")

    def test_unknown_model_404_on_every_api(self):
        bodies = [("/v1/chat/completions", {"model": "nope-9", "messages": [user("hi")]}),
                  ("/v1/completions", {"model": "nope-9", "input": "hi"}),
                  ("/v1/completions", {"model": "nope-9", "prompt": "hi"}),
                  ("/v1/messages", {"model": "nope-9", "max_tokens": 5, "messages": [user("hi")]}),
                  ("/v1/chat/completions", {"model": "nope-9", "messages": [user("hi")],
                                            "stream": True})]
        for path, body in bodies:
            with self.subTest(path=path, body=body):
                r = self.post(self.srv, path, body)
                err = self.assertJsonError(r, 404, "model_not_found")
                self.assertIn("nope-9", err["message"])
        self.assertEqual(self.mock.stats()["requests"], 0, "an unknown model reached a provider")

    def test_models_list(self):
        r = self.srv.get("/v1/models")
        self.assertEqual(r.status, 200, r)
        doc = r.json()
        self.assertEqual(doc["object"], "list")
        ids = [(m["id"], m["owned_by"]) for m in doc["data"]]
        for want in [("gpt-test", "openai"), ("claude-test", "claude"), ("fast", "claude"),
                     ("cheap", "claude"), ("llama-test", "ollama")]:
            self.assertIn(want, ids)
        for m in doc["data"]:
            self.assertEqual(m["object"], "model")


class PinnedModelTest(ProviderTestCase):

    def test_pinned_model_does_not_fail_over(self):
        # A request naming a provider's model goes only to that provider.
        mock = self.start_mock()
        srv = self.start_server(llm(provider("openai", mock),
                                    [provider("anthropic", mock, fault="500", name="claude")]))
        r = self.post(srv, "/v1/chat/completions", {"model": "claude-test",
                                                    "messages": [user("hi")]})
        self.assertJsonError(r, 502, "bad_gateway")
        self.assertEqual(r.header("X-Hapax-Provider"), "claude", r)
        self.assertEqual(r.header("X-Hapax-Attempts"), "1", r)
        self.assertEqual(mock.stats()["requests"], 1)
        self.assertTrue(mock.last()["path"].endswith("/v1/messages"), mock.last())

    def test_long_chain_reaches_every_provider(self):
        # 17 providers, the first 16 failing: the default chain must reach
        # the 17th -- or hapax must refuse a chain it cannot walk at start-up,
        # not silently drop providers.
        mock = self.start_mock()
        failing = [provider("openai", mock, fault="500", model="m%d" % i, name="b%d" % i)
                   for i in range(15)]
        srv = self.start_server(llm(provider("ollama", mock, fault="500"),
                                    failing + [provider("anthropic", mock, name="last")]),
                                wait_ready=False)
        deadline = time.monotonic() + 10
        while srv.alive() and time.monotonic() < deadline:
            try:
                if srv.get("/health", timeout=1.0).status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        if not srv.alive():
            srv.expected_exit = None
            self.assertNotEqual(srv.wait_exit(5), 0)
            self.assertIn("backup_providers", srv.stderr_text())
            return
        r = self.post(srv, "/v1/chat/completions", {"messages": [user("hi")]})
        self.assertOk(r, "last", 17)
        self.assertEqual(mock.stats()["requests"], 17)

    def test_shared_model_chain_in_order(self):
        # Two providers serving the same model name form that model's chain.
        mock = self.start_mock()
        srv = self.start_server(llm(
            provider("openai", mock),
            [provider("ollama", mock, fault="503", model="shared", name="first"),
             provider("anthropic", mock, model="shared", name="second")]))
        r = self.post(srv, "/v1/chat/completions", {"model": "shared", "messages": [user("hi")]})
        self.assertOk(r, "second", 2)
        self.assertEqual(mock.stats()["requests"], 2)


# ---------------------------------------------------------------------------
# client errors

class ClientErrorTest(ProviderTestCase):

    def setUp(self):
        super().setUp()
        self.mock, self.srv = self.start_pair("openai")

    PATHS = {"/v1/chat/completions": {"messages": [user("hi")]},
             "/v1/completions": {"input": "hi"},
             "/v1/messages": {"model": "default", "max_tokens": 5, "messages": [user("hi")]}}

    def test_non_json_content_type(self):
        for path, body in self.PATHS.items():
            for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
                with self.subTest(path=path, ctype=ctype):
                    h = {"Content-Type": ctype} if ctype else {}
                    r = self.srv.request("POST", path, headers=h, body=json.dumps(body),
                                         timeout=REQ_TIMEOUT)
                    self.assertJsonError(r, 400, "invalid_request")
        self.assertEqual(self.mock.stats()["requests"], 0)

    def test_json_content_type_with_charset_accepted(self):
        r = self.srv.request("POST", "/v1/chat/completions",
                             headers={"Content-Type": "application/json; charset=utf-8"},
                             body=json.dumps({"messages": [user("hi")]}), timeout=REQ_TIMEOUT)
        self.assertOk(r, "openai", 1)

    def test_malformed_json(self):
        for path in self.PATHS:
            for body in ('{"messages": [', '{"a":1} trailing', '', 'nul', '{"a":1}{"b":2}'):
                with self.subTest(path=path, body=body):
                    r = self.post(self.srv, path, body)
                    self.assertJsonError(r, 400, "invalid_request")
        self.assertEqual(self.mock.stats()["requests"], 0)

    def test_hapax_shape_limits(self):
        cases = [({"input": "x" * (512 * 1024 + 1)}, "Input too large"),
                 ({"input": "hi", "function_description": "d" * (5 * 1024 + 1)},
                  "Function description too large"),
                 ({"input": ""}, "Either input or messages must be provided")]
        for body, msg in cases:
            with self.subTest(msg=msg):
                r = self.post(self.srv, "/v1/completions", body)
                err = self.assertJsonError(r, 400, "invalid_request")
                self.assertIn(msg, err["message"])
        r = self.post(self.srv, "/v1/completions", {"input": "x" * (512 * 1024)})
        self.assertOk(r, "openai", 1)
        self.assertEqual(self.mock.stats()["requests"], 1)

    def test_invalid_shapes(self):
        cases = [("/v1/chat/completions", []),
                 ("/v1/chat/completions", {"messages": []}),
                 ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}),
                 ("/v1/chat/completions", {"messages": [user("x")], "stream": "yes"}),
                 ("/v1/completions", {}),
                 ("/v1/completions", {"input": "x", "stream": True}),
                 ("/v1/messages", {"model": "default", "messages": [user("x")]}),  # no max_tokens
                 ("/v1/messages", {"max_tokens": 5, "messages": [user("x")]})]      # no model
        for path, body in cases:
            with self.subTest(path=path, body=body):
                r = self.post(self.srv, path, body)
                self.assertJsonError(r, 400, "invalid_request")
        self.assertEqual(self.mock.stats()["requests"], 0)


# ---------------------------------------------------------------------------
# failover and error mapping (non-streamed unless said otherwise)

class FailoverTest(ProviderTestCase):

    def chat(self, srv, stream=False, model=None):
        body = {"messages": [user("hi")], "stream": stream}
        if model:
            body["model"] = model
        return self.post(srv, "/v1/chat/completions", body)

    def test_500_fails_over_to_backup(self):
        mock, srv = self.start_pair("openai", fault="500",
                                    backups=lambda m: [provider("anthropic", m, name="backup")])
        r = self.chat(srv)
        self.assertOk(r, "backup", 2)
        self.assertEqual(r.json()["choices"][0]["message"]["content"], expected_text("anthropic", "hi"))
        self.assertEqual(mock.stats()["requests"], 2)

    def test_every_adapter_fails_over_on_5xx(self):
        mock, srv = self.start_pair("openai", fault="502", backups=lambda m: [
            provider("anthropic", m, fault="503", name="a"),
            provider("ollama", m, fault="500", name="o"),
            provider("openai", m, name="good")])
        r = self.chat(srv)
        self.assertOk(r, "good", 4)
        self.assertEqual(mock.stats()["requests"], 4)

    def test_streaming_fails_over_before_first_byte(self):
        mock, srv = self.start_pair("anthropic", fault="503",
                                    backups=lambda m: [provider("ollama", m, name="backup")])
        r = self.chat(srv, stream=True)
        self.assertOk(r, "backup", 2, stream=True)
        self.check_chat_stream(r, MODELS["ollama"], "ollama", "hi")

    def test_all_fail_5xx_gives_502(self):
        mock, srv = self.start_pair("openai", fault="500", backups=lambda m: [
            provider("ollama", m, fault="503", name="o")])
        r = self.chat(srv)
        err = self.assertJsonError(r, 502, "bad_gateway")
        self.assertEqual(r.header("X-Hapax-Attempts"), "2", r)
        self.assertTrue(err["message"], err)

    def test_429_fails_over(self):
        mock, srv = self.start_pair("ollama", fault="429",
                                    backups=lambda m: [provider("openai", m, name="backup")])
        r = self.chat(srv)
        self.assertOk(r, "backup", 2)

    def test_all_429_keeps_retry_after(self):
        mock = self.start_mock()
        mock2 = self.start_mock()
        mock2.arm("429", count=-1, retry_after=7)
        srv = self.start_server(llm(provider("openai", mock, fault="429"),
                                    [provider("anthropic", mock2, name="backup")]))
        r = self.chat(srv)
        err = self.assertJsonError(r, 429, "rate_limit_exceeded")
        self.assertEqual(r.header("Retry-After"), "7", r)
        self.assertEqual(r.header("X-Hapax-Attempts"), "2", r)
        self.assertEqual(err["type"], "rate_limit_error")
        self.assertEqual(mock.stats()["requests"] + mock2.stats()["requests"], 2)

    def test_primary_429_backups_failing_gives_429(self):
        # The client should be told to come back later (with the
        # provider's Retry-After), not that the gateway is broken.
        mock, srv = self.start_pair("openai", fault="429", backups=lambda m: [
            provider("ollama", m, fault="500", name="o"),
            provider("anthropic", m, fault="503", name="a")])
        r = self.chat(srv)
        self.assertJsonError(r, 429, "rate_limit_exceeded")
        self.assertEqual(r.header("Retry-After"), "1", r)
        self.assertEqual(r.header("X-Hapax-Attempts"), "3", r)

    def test_only_provider_429_keeps_retry_after(self):
        mock = self.start_mock()
        mock.arm("429", count=-1, retry_after=3)
        srv = self.start_server(llm(provider("ollama", mock)))
        r = self.chat(srv)
        self.assertJsonError(r, 429, "rate_limit_exceeded")
        self.assertEqual(r.header("Retry-After"), "3", r)

    def test_401_and_403_fail_over(self):
        for status in ("401", "403"):
            with self.subTest(status=status):
                mock, srv = self.start_pair("openai", fault=status,
                                            backups=lambda m: [provider("ollama", m, name="backup")])
                r = self.chat(srv)
                self.assertOk(r, "backup", 2)

    def test_only_provider_401_is_502_naming_api_key(self):
        for kind, status in (("openai", "401"), ("anthropic", "403")):
            with self.subTest(kind=kind, status=status):
                mock, srv = self.start_pair(kind, fault=status)
                r = self.chat(srv)
                err = self.assertJsonError(r, 502, "bad_gateway")
                self.assertIn("api_key", err["message"])
                self.assertNotIn(KEYS[kind], r.body.decode())

    def test_anthropic_without_key_is_502_naming_api_key(self):
        # A custom endpoint makes a keyless provider usable; the upstream's
        # 401 then says the gateway is misconfigured.
        mock = self.start_mock()
        srv = self.start_server(llm(provider("anthropic", mock, key="")))
        r = self.chat(srv)
        err = self.assertJsonError(r, 502, "bad_gateway")
        self.assertIn("api_key", err["message"])
        self.assertNotIn("x-api-key", mock.last()["headers"])

    def test_hang_first_byte_timeout_504(self):
        mock, srv = self.start_pair("openai", fault="hang", first_byte_timeout="1s")
        r = self.chat(srv)
        self.assertJsonError(r, 504, "gateway_timeout")
        st, ok = mock.wait_stats(lambda s: s["active"] == 0, timeout=5)
        self.assertTrue(ok, "the hung upstream call was not cancelled: %r" % st)

    def test_hang_then_backup_serves(self):
        mock, srv = self.start_pair("ollama", fault="hang", first_byte_timeout="1s",
                                    backups=lambda m: [provider("anthropic", m, name="backup")])
        for stream in (False, True):
            with self.subTest(stream=stream):
                r = self.chat(srv, stream=stream)
                self.assertOk(r, "backup", 2, stream=stream)

    def test_connection_refused_then_backup_serves(self):
        mock = self.start_mock()
        closed = free_port()
        srv = self.start_server(llm(
            provider("openai", endpoint="http://127.0.0.1:%d/v1" % closed),
            [provider("anthropic", mock, name="backup")]))
        for stream in (False, True):
            with self.subTest(stream=stream):
                r = self.chat(srv, stream=stream)
                self.assertOk(r, "backup", 2, stream=stream)

    def test_connection_refused_alone_is_503(self):
        closed = free_port()
        srv = self.start_server(llm(provider("ollama", endpoint="http://127.0.0.1:%d" % closed)))
        r = self.chat(srv)
        err = self.assertJsonError(r, 503, "service_unavailable")
        self.assertIn("ollama", err["message"])

    def test_malformed_json_fails_over_for_every_adapter(self):
        mock, srv = self.start_pair("openai", fault="malformed-json", backups=lambda m: [
            provider("anthropic", m, fault="malformed-json", name="a"),
            provider("ollama", m, fault="malformed-json", name="o"),
            provider("openai", m, name="good")])
        r = self.chat(srv)
        self.assertOk(r, "good", 4)
        self.assertEqual(r.json()["choices"][0]["message"]["content"], expected_text("openai", "hi"))

    def test_malformed_json_alone_is_502(self):
        mock, srv = self.start_pair("anthropic", fault="malformed-json")
        r = self.chat(srv)
        self.assertJsonError(r, 502, "bad_gateway")

    def test_reset_and_close_before_answer_fail_over(self):
        for fault in ("reset", "close"):
            with self.subTest(fault=fault):
                mock, srv = self.start_pair("openai", fault=fault,
                                            backups=lambda m: [provider("ollama", m, name="backup")])
                r = self.chat(srv)
                self.assertOk(r, "backup", 2)

    def test_upstream_404_fails_over(self):
        mock = self.start_mock()
        srv = self.start_server(llm(provider("openai", endpoint=mock.url + "/nowhere/v1"),
                                    [provider("ollama", mock, name="backup"),
                                     provider("anthropic", endpoint=mock.url + "/nowhere/v1",
                                              name="lost")]))
        r = self.chat(srv)
        self.assertOk(r, "backup", 2)
        r = self.chat(srv, model="lost")
        self.assertJsonError(r, 502, "bad_gateway")

    def test_upstream_400_no_failover(self):
        mock, srv = self.start_pair("openai", fault="400",
                                    backups=lambda m: [provider("ollama", m, name="backup")])
        for stream in (False, True):
            with self.subTest(stream=stream):
                mock.reset()
                r = self.chat(srv, stream=stream)
                err = self.assertJsonError(r, 400, "invalid_request")
                self.assertIn("Mock fault 400", err["message"], "the provider's message is kept")
                self.assertEqual(mock.stats()["requests"], 1, "a client error was retried elsewhere")
                self.assertEqual(r.header("X-Hapax-Attempts"), "1", r)

    def test_upstream_422_no_failover(self):
        mock = self.start_mock()
        srv = self.start_server(llm(
            provider("openai", mock),
            [provider("anthropic", mock, fault="422", model="shared", name="first"),
             provider("ollama", mock, model="shared", name="second")]))
        r = self.chat(srv, model="shared")
        self.assertJsonError(r, 400, "invalid_request")
        self.assertEqual(mock.stats()["requests"], 1)


# ---------------------------------------------------------------------------
# failures after the first byte

class StreamFaultTest(ProviderTestCase):

    def assertOpenAIStreamError(self, resp, family, said="hi", text_key="content"):
        """200 stream with some content, ended by data: {"error":...}."""
        self.assertOk(resp, stream=True)
        chunks = self.openai_chunks(resp, done=False)
        self.assertNotIn(b"data: [DONE]", resp.body, "a failed stream must not look complete")
        last = chunks[-1]
        self.assertIn("error", last, "stream does not end with an error event: %r" % resp.body[-400:])
        self.assertTrue(last["error"].get("message"), last)
        got = ""
        for c in chunks[:-1]:
            self.assertNotIn("error", c)
            if c.get("choices"):
                ch = c["choices"][0]
                got += (ch.get("delta") or {}).get(text_key) or ch.get(text_key) or ""
        full = expected_text(family, said)
        self.assertTrue(got, "no content reached the client before the failure")
        self.assertTrue(full.startswith(got) and got != full,
                        "content before the error is not a proper prefix: %r" % got)
        return last["error"]

    def test_reset_mid_stream_every_adapter(self):
        for kind in ADAPTERS:
            with self.subTest(kind=kind):
                mock, srv = self.start_pair(kind, fault="reset", mock_args=["--chunk-delay-ms", "20"],
                                            backups=lambda m: [provider("openai", m, name="backup")])
                r = self.post(srv, "/v1/chat/completions",
                              {"messages": [user("hi")], "stream": True})
                self.assertEqual(r.header("X-Hapax-Provider"), kind, r)
                self.assertOpenAIStreamError(r, kind)
                self.assertEqual(mock.stats()["requests"], 1,
                                 "the failed stream was retried after bytes went out")

    def test_reset_mid_stream_messages_api(self):
        mock, srv = self.start_pair("openai", fault="reset", mock_args=["--chunk-delay-ms", "20"],
                                    backups=lambda m: [provider("ollama", m, name="backup")])
        r = self.post(srv, "/v1/messages", {"model": "default", "max_tokens": 50, "stream": True,
                                            "messages": [user("hi")]})
        self.assertOk(r, "openai", stream=True)
        events = sse_events(r.body)
        names = [n for n, _ in events]
        self.assertEqual(names[0], "message_start", names)
        self.assertEqual(names[-1], "error", names)
        self.assertNotIn("message_stop", names)
        self.assertIn("content_block_delta", names, "no content before the failure")
        err = json.loads(events[-1][1])
        self.assertEqual(err["type"], "error", err)
        self.assertTrue(err["error"]["type"] and err["error"]["message"], err)
        self.assertEqual(mock.stats()["requests"], 1)

    def test_reset_mid_stream_legacy_completions(self):
        mock, srv = self.start_pair("anthropic", fault="reset", mock_args=["--chunk-delay-ms", "20"])
        r = self.post(srv, "/v1/completions", {"prompt": "hi", "stream": True})
        self.assertOpenAIStreamError(r, "anthropic", text_key="text")
        self.assertEqual(mock.stats()["requests"], 1)

    def test_malformed_stream_every_adapter(self):
        # The mock sends one good content event, then an event that is not
        # JSON (each in its own HTTP chunk, so the content has reached the
        # client first): the stream must end with an error event, and the
        # backup must not be asked (bytes already went out).
        for kind in ADAPTERS:
            with self.subTest(kind=kind):
                mock, srv = self.start_pair(kind, fault="malformed-sse",
                                            backups=lambda m: [provider("ollama", m, name="backup")])
                r = self.post(srv, "/v1/chat/completions",
                              {"messages": [user("hi")], "stream": True})
                self.assertEqual(r.header("X-Hapax-Provider"), kind, r)
                err = self.assertOpenAIStreamError(r, kind)
                self.assertIn("malformed", err["message"])
                self.assertEqual(mock.stats()["requests"], 1)

    def test_malformed_stream_messages_api(self):
        mock, srv = self.start_pair("anthropic", fault="malformed-sse")
        r = self.post(srv, "/v1/messages", {"model": "default", "max_tokens": 50, "stream": True,
                                            "messages": [user("hi")]})
        self.assertOk(r, "anthropic", stream=True)
        events = sse_events(r.body)
        names = [n for n, _ in events]
        self.assertEqual(names[0], "message_start", names)
        self.assertEqual(names[-1], "error", names)
        self.assertNotIn("message_stop", names)
        self.assertEqual(json.loads(events[-1][1])["type"], "error")


# ---------------------------------------------------------------------------
# client disconnects and backpressure

class DisconnectTest(ProviderTestCase):

    def test_client_disconnect_mid_stream_cancels_upstream(self):
        # 40 chunks, 250 ms apart: the upstream stream lasts ~10 s.
        mock, srv = self.start_pair("openai", mock_args=["--chunks", "40"])
        mock.arm("slow", count=1, delay_ms=250)
        c = self.conn(srv, timeout=REQ_TIMEOUT)
        body = json.dumps({"messages": [user("hi")], "stream": True})
        c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n%s" % (len(body), body))
        head = c.read_head(timeout=REQ_TIMEOUT)
        self.assertEqual(head.status, 200, head)
        c.read_until(b'"content":"Hello"', timeout=REQ_TIMEOUT)
        self.assertEqual(mock.stats()["active"], 1, "the upstream stream should still be running")
        c.close()
        st, ok = mock.wait_stats(lambda s: s["active"] == 0, timeout=4)
        self.assertTrue(ok, "upstream still streaming 4s after the client left: %r" % st)
        # hapax keeps serving
        r = self.post(srv, "/v1/chat/completions", {"messages": [user("again")]})
        self.assertOk(r, "openai", 1)
        self.assertTrue(srv.alive())

    def test_client_disconnect_while_waiting_cancels_upstream(self):
        mock, srv = self.start_pair("anthropic", fault="hang", first_byte_timeout="30s")
        c = self.conn(srv)
        body = json.dumps({"messages": [user("hi")]})
        c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n%s" % (len(body), body))
        st, ok = mock.wait_stats(lambda s: s["active"] == 1, timeout=5)
        self.assertTrue(ok, "the request never reached the upstream: %r" % st)
        c.close()
        st, ok = mock.wait_stats(lambda s: s["active"] == 0, timeout=4)
        self.assertTrue(ok, "upstream call still open 4s after the client left "
                            "(first_byte_timeout is 30s): %r" % st)
        self.assertEqual(srv.get("/health").status, 200)


class BackpressureTest(ProviderTestCase):

    @staticmethod
    def rss_kb(pid, field="VmRSS"):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise AssertionError("no %s in /proc/%d/status" % (field, pid))

    def test_slow_reader_huge_stream(self):
        # Under ASan, freed memory sits in a quarantine (256 MB by default);
        # keep it small so that RSS reflects what hapax actually holds.
        env = {"ASAN_OPTIONS": SANITIZER_ENV["ASAN_OPTIONS"] + ":quarantine_size_mb=8"}
        mock, srv = self.start_pair("openai", fault="huge", env=env, request_timeout="120s",
                                    extra={"server": {"write_timeout": "120s"}})
        pid = srv.proc.pid
        warm = self.post(srv, "/v1/chat/completions", {"model": "gpt-test",
                                                       "messages": [user("warm up")]},
                         timeout=60)
        self.assertOk(warm, "openai", 1)   # (a whole huge answer, not streamed)
        before = self.rss_kb(pid)
        try:    # reset the peak (VmHWM) so that it covers the stream only
            with open("/proc/%d/clear_refs" % pid, "w") as f:
                f.write("5")
            hwm_ok = True
        except OSError:
            hwm_ok = False
        c = RawConn(srv.port, timeout=DEFAULT_TIMEOUT, rcvbuf=4096)
        self._conns.append(c)
        body = json.dumps({"messages": [user("hi")], "stream": True})
        c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n%s" % (len(body), body))
        # Do not read for a while: hapax must stop reading the upstream
        # instead of buffering the 8 MiB answer.
        time.sleep(2.0)
        peak_while_stalled = self.rss_kb(pid)
        c.timeout = 60
        resp = c.read_response("POST", timeout=60)
        hwm = self.rss_kb(pid, "VmHWM") if hwm_ok else 0
        self.assertOk(resp, "openai", 1, stream=True)
        chunks = self.openai_chunks(resp)
        text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"])
        self.assertEqual(len(text), HUGE_BYTES,
                         "streamed content has %d bytes, the upstream sent %d" % (len(text), HUGE_BYTES))
        want = (HUGE_PATTERN * (HUGE_BYTES // len(HUGE_PATTERN) + 1))[:HUGE_BYTES]
        if text != want:
            i = next(i for i in range(len(text)) if text[i] != want[i])
            self.fail("streamed content differs from the upstream's at byte %d: %r vs %r"
                      % (i, text[i:i + 60], want[i:i + 60]))
        grown = (max(peak_while_stalled, hwm) - before) / 1024.0
        self.assertLess(grown, 200, "hapax RSS grew by %.0f MB for one slow reader" % grown)
        # and it still serves
        r = self.post(srv, "/v1/chat/completions", {"messages": [user("hi")]}, timeout=60)
        self.assertEqual(r.status, 200, r)


class ConcurrencyTest(ProviderTestCase):

    def test_concurrent_mixed_requests_do_not_cross(self):
        # 36 requests at once over the three adapters, streamed and not:
        # each answer must echo its own request.
        mock = self.start_mock()
        srv = self.start_server(llm(provider("openai", mock),
                                    [provider("anthropic", mock), provider("ollama", mock)]))
        results, errors = {}, []

        def one(i):
            kind = ADAPTERS[i % 3]
            stream = (i // 3) % 2 == 1
            said = "request number %d unique" % i
            try:
                r = self.post(srv, "/v1/chat/completions",
                              {"model": MODELS[kind], "messages": [user(said)], "stream": stream},
                              timeout=30)
                results[i] = (kind, stream, said, r)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append((i, repr(e)))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(36)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertFalse(any(t.is_alive() for t in threads), "requests still running after 60s")
        self.assertEqual(errors, [])
        for i, (kind, stream, said, r) in sorted(results.items()):
            with self.subTest(i=i, kind=kind, stream=stream):
                self.assertOk(r, kind, 1, stream=stream)
                if stream:
                    self.check_chat_stream(r, MODELS[kind], kind, said)
                else:
                    self.assertEqual(r.json()["choices"][0]["message"]["content"],
                                     expected_text(kind, said))
        self.assertEqual(mock.stats()["requests"], 36)


class KeepAliveTest(ProviderTestCase):

    def test_connection_reusable_after_streams_and_errors(self):
        mock = self.start_mock(args=["--chunk-delay-ms", "10"])
        srv = self.start_server(llm(provider("openai", mock),
                                    [provider("ollama", mock, fault="reset", name="broken")]))
        c = self.conn(srv, timeout=REQ_TIMEOUT)

        def send(body):
            data = json.dumps(body)
            c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                   % (len(data), data))
            return c.read_response("POST", timeout=REQ_TIMEOUT)

        r = send({"messages": [user("one")], "stream": True})
        self.check_chat_stream(r, MODELS["openai"], "openai", "one")
        r = send({"model": "broken", "messages": [user("two")], "stream": True})
        self.assertEqual(r.status, 200, r)
        self.assertIn(b'"error"', r.body)
        r = send({"model": "nope", "messages": [user("three")]})
        self.assertJsonError(r, 404, "model_not_found")
        r = send({"messages": [user("four")]})
        self.assertEqual(r.json()["choices"][0]["message"]["content"], expected_text("openai", "four"))
        self.assertFalse(c.closed_now(), "the connection was closed after a complete response")


class RequestTimeoutTest(ProviderTestCase):

    def test_request_timeout_non_streamed_504(self):
        # 40 chunks 250 ms apart: the answer would take 10 s.
        mock, srv = self.start_pair("openai", mock_args=["--chunks", "40"], request_timeout="2s")
        mock.arm("slow", count=-1, delay_ms=250)
        r = self.post(srv, "/v1/chat/completions", {"messages": [user("hi")]})
        self.assertJsonError(r, 504, "gateway_timeout")
        st, ok = mock.wait_stats(lambda s: s["active"] == 0, timeout=5)
        self.assertTrue(ok, "upstream call not cancelled at the deadline: %r" % st)

    def test_request_timeout_mid_stream_ends_with_error_event(self):
        mock, srv = self.start_pair("anthropic", mock_args=["--chunks", "40"], request_timeout="2s")
        mock.arm("slow", count=-1, delay_ms=250)
        r = self.post(srv, "/v1/chat/completions", {"messages": [user("hi")], "stream": True})
        self.assertOk(r, "anthropic", 1, stream=True)
        chunks = self.openai_chunks(r, done=False)
        self.assertIn("error", chunks[-1], r.body[-300:])
        self.assertNotIn(b"[DONE]", r.body)
        text = "".join((c["choices"][0]["delta"].get("content") or "")
                       for c in chunks[:-1] if c.get("choices"))
        self.assertTrue(text.startswith("Hello"), text)
        st, ok = mock.wait_stats(lambda s: s["active"] == 0, timeout=5)
        self.assertTrue(ok, "upstream stream not cancelled at the deadline: %r" % st)


class UnsupportedByAdapterTest(ProviderTestCase):

    def test_n_greater_than_one_to_anthropic_is_400(self):
        mock, srv = self.start_pair("anthropic")
        r = self.post(srv, "/v1/chat/completions", {"messages": [user("hi")], "n": 2})
        err = self.assertJsonError(r, 400, "invalid_request")
        self.assertIn("n", err["message"])
        self.assertEqual(mock.stats()["requests"], 0)


# ---------------------------------------------------------------------------
# missing keys, secrets

class MissingKeysTest(ProviderTestCase):

    def test_503_names_the_variables_to_set(self):
        closed = free_port()
        cfg = llm({"provider": "ollama", "model": "llama-test",
                   "endpoint": "http://127.0.0.1:%d" % closed},
                  [{"provider": "anthropic", "model": "claude-test"},
                   {"provider": "openai", "model": "gpt-test"}])
        srv = self.start_server(cfg, env={"ANTHROPIC_API_KEY": None, "OPENAI_API_KEY": None})
        for path, body in (("/v1/chat/completions", {"messages": [user("hi")]}),
                           ("/v1/messages", {"model": "default", "max_tokens": 5,
                                             "messages": [user("hi")]})):
            with self.subTest(path=path):
                r = self.post(srv, path, body)
                err = self.assertJsonError(r, 503, "service_unavailable")
                self.assertIn("ANTHROPIC_API_KEY", err["message"])
                self.assertIn("OPENAI_API_KEY", err["message"])
        recs, _ = srv.logs()
        warns = [x for x in recs if x.get("level") in ("warn", "warning")
                 and "unusable" in json.dumps(x)]
        self.assertEqual(len(warns), 2, "expected one start-up warning per unusable provider: %r"
                         % warns)
        text = json.dumps(warns)
        self.assertIn("ANTHROPIC_API_KEY", text)
        self.assertIn("OPENAI_API_KEY", text)
        self.assertEqual(sorted(w.get("provider") for w in warns), ["anthropic", "openai"], warns)
        # a pinned request for a keyless provider says the same
        r = self.post(srv, "/v1/chat/completions", {"model": "claude-test",
                                                    "messages": [user("hi")]})
        err = self.assertJsonError(r, 503, "service_unavailable")
        self.assertIn("ANTHROPIC_API_KEY", err["message"])


class SecretsTest(ProviderTestCase):

    SECRET = "sk-test-SECRET-PROVIDER-KEY"

    def test_keys_never_logged(self):
        mock = self.start_mock()
        cfg = llm(provider("openai", mock, key=self.SECRET + "-openai"),
                  [provider("anthropic", mock, key=self.SECRET + "-anthropic", name="claude"),
                   provider("ollama", mock, fault="401", key=self.SECRET + "-ollama",
                            name="oll")])
        cfg["logging"] = {"level": "debug"}
        srv = self.start_server(cfg)
        bodies = []
        for path, body in (("/v1/chat/completions", {"messages": [user("hi")]}),
                           ("/v1/chat/completions", {"messages": [user("hi")], "stream": True}),
                           ("/v1/chat/completions", {"model": "claude", "messages": [user("hi")]}),
                           ("/v1/messages", {"model": "claude", "max_tokens": 5,
                                             "messages": [user("hi")], "stream": True}),
                           ("/v1/chat/completions", {"model": "oll", "messages": [user("hi")]})):
            r = self.post(srv, path, body)
            bodies.append(r)
        self.assertEqual([r.status for r in bodies], [200, 200, 200, 200, 502], bodies)
        # the keys were really used
        self.assertEqual(mock.last()["headers"].get("authorization"), "Bearer %s-ollama" % self.SECRET)
        for r in bodies:
            self.assertNotIn(self.SECRET, r.body.decode("utf-8", "replace"))
            self.assertNotIn(self.SECRET, json.dumps(r.headers))
        res = self.cli(["--config", srv.config_path, "--print-config"])
        self.assertNotIn(self.SECRET, res.stdout + res.stderr)
        self.assertEqual(srv.stop(), 0)
        err = srv.stderr_text()
        self.assertTrue(err.strip(), "no log output at all")
        self.assertNotIn(self.SECRET, err)
        self.assertNotIn(self.SECRET, srv.stdout_text())
