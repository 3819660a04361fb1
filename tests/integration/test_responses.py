"""POST /v1/responses (the OpenAI Responses API) over every provider, and
the responses store (previous_response_id, GET and DELETE
/v1/responses/{id}).

The canonical path: each adapter (openai, anthropic, ollama on the mock)
serves a Responses request translated into a chat request; the answer comes
back as a Response object or its stream of events. What the upstream
received is checked through the mock's /_mock/last. A scripted upstream
answers what the mock cannot (a max-tokens cut).
"""

import json

from fidelity import ScriptedUpstream
from harness import HapaxTestCase
from test_providers import ADAPTERS, MODELS, expected_text, llm, provider, sse_events

REQ_TIMEOUT = 15.0
TOOL = {"type": "function", "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                       "required": ["location"]}}


def events(resp):
    """[(name, data)] of a Responses stream; every data's type is its name
    and sequence numbers count from 0."""
    out = []
    for i, (name, data) in enumerate(sse_events(resp.body)):
        d = json.loads(data)
        assert d["type"] == name, (name, d)
        assert d["sequence_number"] == i, (i, d)
        out.append((name, d))
    return out


class ResponsesBase(HapaxTestCase):

    def start(self, primary="openai", backups=(), extra=None, **kw):
        self.mock = self.start_mock()
        cfg = llm(provider(primary, self.mock), [provider(b, self.mock) for b in backups], **kw)
        if extra:
            cfg.update(extra)
        return self.start_server(cfg)

    def post(self, srv, body, headers=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return srv.request("POST", "/v1/responses", headers=h, body=json.dumps(body), timeout=REQ_TIMEOUT)

    def assertResponsesError(self, resp, status, text):
        self.assertEqual(resp.status, status, resp)
        err = resp.json()["error"]
        self.assertIn(text, err["message"], err)
        self.assertIn("type", err)
        return err

    def upstream(self):
        return self.mock.last()["body"]


class ResponsesMatrixTest(ResponsesBase):
    """Every adapter serves /v1/responses, streamed and not."""

    def test_text_every_provider(self):
        srv = self.start("openai", backups=("anthropic", "ollama"))
        for kind in ADAPTERS:
            with self.subTest(provider=kind):
                r = self.post(srv, {"model": MODELS[kind], "instructions": "Be brief.",
                                    "input": "tell me a story please", "max_output_tokens": 50,
                                    "temperature": 0.5})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("X-Hapax-Provider"), kind)
                d = r.json()
                self.assertTrue(d["id"].startswith("resp_"), d)
                self.assertEqual(d["object"], "response")
                self.assertEqual(d["status"], "completed")
                self.assertEqual(d["model"], MODELS[kind])
                self.assertEqual(d["instructions"], "Be brief.")
                self.assertEqual(d["max_output_tokens"], 50)
                self.assertEqual(len(d["output"]), 1, d)
                msg = d["output"][0]
                self.assertEqual((msg["type"], msg["role"], msg["status"]), ("message", "assistant", "completed"))
                self.assertEqual(msg["content"], [{"type": "output_text", "annotations": [],
                                                   "text": expected_text(kind, "tell me a story please")}])
                u = d["usage"]
                self.assertEqual(u["output_tokens"], 8)
                self.assertEqual(u["total_tokens"], u["input_tokens"] + 8)
                self.assertEqual(u["input_tokens_details"], {"cached_tokens": 0})
                self.assertEqual(u["output_tokens_details"], {"reasoning_tokens": 0})
                up = self.upstream()
                if kind == "anthropic":
                    self.assertEqual(up["system"], "Be brief.")
                    self.assertEqual(up["max_tokens"], 50)
                    self.assertEqual(up["messages"], [{"role": "user", "content": "tell me a story please"}])
                elif kind == "openai":
                    self.assertEqual(up["messages"][0], {"role": "system", "content": "Be brief."})
                    self.assertEqual(up["max_completion_tokens"], 50)
                    self.assertEqual(up["temperature"], 0.5)
                else:
                    self.assertEqual(up["options"]["num_predict"], 50)

    def test_stream_every_provider(self):
        srv = self.start("openai", backups=("anthropic", "ollama"))
        for kind in ADAPTERS:
            with self.subTest(provider=kind):
                r = self.post(srv, {"model": MODELS[kind], "input": "stream this to me", "stream": True})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("Content-Type").split(";")[0], "text/event-stream")
                evs = events(r)
                names = [n for n, _ in evs]
                self.assertEqual(names[:4], ["response.created", "response.in_progress",
                                             "response.output_item.added", "response.content_part.added"])
                self.assertEqual(names[-4:], ["response.output_text.done", "response.content_part.done",
                                              "response.output_item.done", "response.completed"])
                deltas = [d["delta"] for n, d in evs if n == "response.output_text.delta"]
                self.assertEqual(len(deltas), 8)
                self.assertEqual("".join(deltas), expected_text(kind, "stream this to me"))
                created, done = evs[0][1]["response"], evs[-1][1]["response"]
                self.assertEqual(created["status"], "in_progress")
                self.assertEqual(created["id"], done["id"])
                self.assertEqual(done["status"], "completed")
                self.assertEqual(done["output"][0]["content"][0]["text"], "".join(deltas))
                self.assertEqual(done["usage"]["output_tokens"], 8)
                self.assertTrue(self.upstream()["stream"])

    def test_tools_every_provider(self):
        srv = self.start("openai", backups=("anthropic", "ollama"))
        for kind in ADAPTERS:
            for stream in (False, True):
                with self.subTest(provider=kind, stream=stream):
                    r = self.post(srv, {"model": MODELS[kind], "input": "weather in Paris?", "tools": [TOOL],
                                        "tool_choice": "required", "stream": stream})
                    self.assertEqual(r.status, 200, r)
                    if stream:
                        evs = events(r)
                        args = "".join(d["delta"] for n, d in evs
                                       if n == "response.function_call_arguments.delta")
                        self.assertEqual(json.loads(args), {"location": "Paris"})
                        done = [d for n, d in evs if n == "response.function_call_arguments.done"]
                        self.assertEqual(json.loads(done[0]["arguments"]), {"location": "Paris"})
                        out = evs[-1][1]["response"]["output"]
                    else:
                        out = r.json()["output"]
                    calls = [o for o in out if o["type"] == "function_call"]
                    self.assertEqual(len(calls), 1, out)
                    self.assertEqual(calls[0]["name"], "get_weather")
                    self.assertEqual(json.loads(calls[0]["arguments"]), {"location": "Paris"})
                    self.assertTrue(calls[0]["call_id"])
                    up = self.upstream()
                    if kind == "anthropic":
                        self.assertEqual(up["tools"][0]["name"], "get_weather")
                        self.assertEqual(up["tool_choice"], {"type": "any"})
                    elif kind == "ollama":
                        # one tool, forced: Ollama's format carries its schema
                        # and the JSON answer comes back as the call
                        self.assertNotIn("tools", up)
                        self.assertEqual(up["format"], TOOL["parameters"])
                    else:
                        self.assertEqual(up["tools"][0]["function"]["name"], "get_weather")
                        self.assertEqual(up["tools"][0]["function"]["parameters"], TOOL["parameters"])

    def test_input_items(self):
        """Messages with parts, function calls and their outputs become one
        chat conversation; reasoning items are not sent."""
        srv = self.start("openai")
        r = self.post(srv, {"model": MODELS["openai"], "tools": [TOOL], "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "look"},
                                         {"type": "input_image", "image_url": "data:image/png;base64,iVBOR"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "call_9", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_9", "output": "sunny"},
        ]})
        self.assertEqual(r.status, 200, r)
        msgs = self.upstream()["messages"]
        self.assertEqual(msgs[0]["content"][1], {"type": "image_url",
                                                 "image_url": {"url": "data:image/png;base64,iVBOR"}})
        self.assertEqual(msgs[1]["tool_calls"][0]["id"], "call_9")
        self.assertEqual(msgs[2], {"role": "tool", "content": "sunny", "tool_call_id": "call_9"})
        self.assertEqual(len(msgs), 3)

    def test_refused_by_name(self):
        srv = self.start("anthropic")
        cases = [
            ({"input": "x", "frobnicate": 1}, "frobnicate"),
            ({"input": "x", "tools": [{"type": "web_search_preview"}]}, "tools[0].type: web_search_preview"),
            ({"input": "x", "background": True}, "background"),
            ({"input": [{"type": "computer_call", "id": "c"}]}, "input[0].type: computer_call"),
            ({"input": "x", "truncation": "auto"}, "truncation"),
            ({"model": 7, "input": "x"}, "model"),
        ]
        for body, name in cases:
            with self.subTest(body=body):
                err = self.assertResponsesError(self.post(srv, body), 400, name)
                self.assertEqual(err["type"], "invalid_request_error")
        self.assertIsNone(self.mock.last(), "a refused request reached the provider")


class ResponsesStoreTest(ResponsesBase):

    def test_previous_response_id_over_providers(self):
        """A conversation stored by one provider's answer goes on with another."""
        srv = self.start("ollama", backups=("anthropic",))
        r1 = self.post(srv, {"model": MODELS["ollama"], "input": "weather in Paris?", "tools": [TOOL]})
        self.assertEqual(r1.status, 200, r1)
        first = r1.json()
        call = first["output"][0]
        self.assertEqual(call["type"], "function_call")
        r2 = self.post(srv, {"model": MODELS["anthropic"], "previous_response_id": first["id"],
                             "instructions": "Be brief.", "tools": [TOOL],
                             "input": [{"type": "function_call_output", "call_id": call["call_id"],
                                        "output": "sunny"}]})
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r2.json()["previous_response_id"], first["id"])
        up = self.upstream()
        self.assertEqual(up["system"], "Be brief.")
        self.assertEqual(up["messages"][0], {"role": "user", "content": "weather in Paris?"})
        self.assertEqual(up["messages"][1]["content"][0]["type"], "tool_use")
        self.assertEqual(up["messages"][1]["content"][0]["id"], call["call_id"])
        self.assertEqual(up["messages"][2]["content"][0]["type"], "tool_result")
        # a third turn carries both earlier ones
        r3 = self.post(srv, {"model": MODELS["anthropic"], "previous_response_id": r2.json()["id"],
                             "input": "thanks", "stream": True})
        self.assertEqual(r3.status, 200, r3)
        self.assertEqual(events(r3)[-1][0], "response.completed")
        msgs = self.upstream()["messages"]
        self.assertEqual(len(msgs), 5, msgs)
        self.assertEqual(msgs[3]["role"], "assistant")
        self.assertEqual(msgs[4], {"role": "user", "content": "thanks"})

    def test_item_reference_to_a_stored_message(self):
        """Clients that store (the Vercel AI SDK) send the assistant's
        earlier text as an item_reference to its message id."""
        srv = self.start("openai", backups=("anthropic",))
        first = self.post(srv, {"model": MODELS["openai"], "input": "say something"}).json()
        msg = first["output"][0]
        r = self.post(srv, {"model": MODELS["anthropic"], "input": [
            {"role": "user", "content": "say something"},
            {"type": "item_reference", "id": "rs_" + first["id"][5:]},
            {"type": "item_reference", "id": msg["id"]},
            {"role": "user", "content": "and again"}]})
        self.assertEqual(r.status, 200, r)
        msgs = self.upstream()["messages"]
        self.assertEqual(msgs[1], {"role": "assistant", "content": msg["content"][0]["text"]})
        self.assertEqual(len(msgs), 3)
        # the stored conversation of the second response has the text, not the reference
        third = self.post(srv, {"model": MODELS["anthropic"], "previous_response_id": r.json()["id"], "input": "x"})
        self.assertEqual(third.status, 200, third)
        self.assertEqual(self.upstream()["messages"][1]["content"], msg["content"][0]["text"])
        # a message this gateway never made (or another key's): 404 naming the item
        err = self.assertResponsesError(self.post(srv, {"model": MODELS["anthropic"], "input": [
            {"type": "item_reference", "id": "msg_unknown"}]}), 404, "msg_unknown")
        self.assertEqual(err["param"], "input[0].id")

    def test_get_and_delete(self):
        srv = self.start("openai")
        r = self.post(srv, {"model": MODELS["openai"], "input": "remember me", "metadata": {"k": "v"}})
        d = r.json()
        g = srv.get("/v1/responses/" + d["id"])
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.json(), d)
        x = srv.request("DELETE", "/v1/responses/" + d["id"])
        self.assertEqual(x.status, 200, x)
        self.assertEqual(x.json(), {"id": d["id"], "object": "response", "deleted": True})
        self.assertResponsesError(srv.get("/v1/responses/" + d["id"]), 404, d["id"])
        self.assertResponsesError(srv.request("DELETE", "/v1/responses/" + d["id"]), 404, d["id"])
        err = self.assertResponsesError(self.post(srv, {"input": "x", "previous_response_id": d["id"]}), 404,
                                        "previous_response_id")
        self.assertEqual(err["type"], "invalid_request_error")

    def test_streamed_response_is_stored(self):
        srv = self.start("anthropic")
        r = self.post(srv, {"model": MODELS["anthropic"], "input": "stream and keep", "stream": True})
        done = events(r)[-1][1]["response"]
        g = srv.get("/v1/responses/" + done["id"])
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.json()["output"], done["output"])

    def test_store_false_and_unknown_ids(self):
        srv = self.start("openai")
        d = self.post(srv, {"model": MODELS["openai"], "input": "forget me", "store": False}).json()
        self.assertFalse(d["store"])
        self.assertResponsesError(srv.get("/v1/responses/" + d["id"]), 404, d["id"])
        before = self.mock.stats()["requests"]
        self.assertResponsesError(self.post(srv, {"input": "x", "previous_response_id": "resp_nope"}), 404,
                                  "resp_nope")
        self.assertEqual(self.mock.stats()["requests"], before, "an unknown id reached the provider")
        self.assertResponsesError(srv.request("GET", "/v1/responses/resp_x?stream=true"), 400, "stream")

    def test_store_bounds(self):
        srv = self.start("openai", responses={"max_stored": 2})
        ids = [self.post(srv, {"model": MODELS["openai"], "input": "n%d" % i}).json()["id"] for i in range(3)]
        self.assertEqual(srv.get("/v1/responses/" + ids[0]).status, 404)
        self.assertEqual(srv.get("/v1/responses/" + ids[1]).status, 200)
        self.assertEqual(srv.get("/v1/responses/" + ids[2]).status, 200)
        metrics = srv.get("/metrics").body.decode()
        self.assertRegex(metrics, r"(?m)^hapax_responses_stored 2$")
        self.assertRegex(metrics, r"(?m)^hapax_responses_stored_bytes [1-9][0-9]*$")

    def test_store_byte_bound(self):
        """A response larger than max_bytes is answered but not kept."""
        srv = self.start("openai", responses={"max_bytes": "4KB"})
        d = self.post(srv, {"model": MODELS["openai"], "input": "big " * 1500}).json()
        self.assertEqual(d["status"], "completed")
        self.assertEqual(srv.get("/v1/responses/" + d["id"]).status, 404)
        small = self.post(srv, {"model": MODELS["openai"], "input": "small"}).json()
        self.assertEqual(srv.get("/v1/responses/" + small["id"]).status, 200)

    def test_a_response_belongs_to_its_key(self):
        keys = {"auth": {"enabled": True, "keys": [{"name": "a", "key": "sk-client-a-0001"},
                                                   {"name": "b", "key": "sk-client-b-0002"}]}}
        srv = self.start("openai", extra=keys)
        ha, hb = {"Authorization": "Bearer sk-client-a-0001"}, {"Authorization": "Bearer sk-client-b-0002"}
        d = self.post(srv, {"model": MODELS["openai"], "input": "mine"}, headers=ha).json()
        self.assertEqual(srv.get("/v1/responses/" + d["id"], headers=ha).status, 200)
        self.assertResponsesError(srv.get("/v1/responses/" + d["id"], headers=hb), 404, d["id"])
        self.assertResponsesError(srv.request("DELETE", "/v1/responses/" + d["id"], headers=hb), 404, d["id"])
        self.assertResponsesError(self.post(srv, {"input": "x", "previous_response_id": d["id"]}, headers=hb),
                                  404, "previous_response_id")
        self.assertEqual(srv.get("/v1/responses/" + d["id"], headers=ha).status, 200)
        # the route's error dialect also for the middleware's answers
        err = self.assertResponsesError(srv.get("/v1/responses/" + d["id"]), 401, "")
        self.assertIn("param", err)
        self.assertIsNone(err["param"])


# ---------------------------------------------------------------------------
# a scripted upstream: an answer cut by max tokens

def length_reply(rec):
    """An answer cut by max tokens (streamed when asked)."""
    head = '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-test","choices":'
    if (rec["body"] or {}).get("stream"):
        data = "".join("data: %s\n\n" % e for e in (
            head + '[{"index":0,"delta":{"content":"cut sh"},"finish_reason":null}]}',
            head + '[{"index":0,"delta":{},"finish_reason":"length"}]}',
            head + '[],"usage":{"prompt_tokens":3,"completion_tokens":2,'
                   '"prompt_tokens_details":{"cached_tokens":1}}}')) + "data: [DONE]\n\n"
        ctype = "text/event-stream"
    else:
        data = ('{"id":"c1","object":"chat.completion","created":1,"model":"gpt-test","choices":'
                '[{"index":0,"message":{"role":"assistant","content":"cut sh"},"finish_reason":"length"}],'
                '"usage":{"prompt_tokens":3,"completion_tokens":2}}')
        ctype = "application/json"
    return {"raw": data, "content_type": ctype}


class ResponsesIncompleteTest(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.up = ScriptedUpstream()
        self.up.script(length_reply)
        self.addCleanup(self.up.close)

    def test_max_output_tokens_is_incomplete(self):
        srv = self.start_server({"llm": {"provider": "openai", "model": "gpt-test", "api_key": "sk-resp-test",
                                         "endpoint": self.up.url + "/v1",
                                         "retry": {"max_retries": 0}}})
        h = {"Content-Type": "application/json"}
        body = {"model": "gpt-test", "input": "long story", "max_output_tokens": 2}
        d = srv.request("POST", "/v1/responses", headers=h, body=json.dumps(body), timeout=REQ_TIMEOUT).json()
        self.assertEqual(d["status"], "incomplete")
        self.assertEqual(d["incomplete_details"], {"reason": "max_output_tokens"})
        self.assertEqual(d["output"][0]["status"], "incomplete")
        self.assertEqual(d["output"][0]["content"][0]["text"], "cut sh")
        body["stream"] = True
        r = srv.request("POST", "/v1/responses", headers=h, body=json.dumps(body), timeout=REQ_TIMEOUT)
        evs = events(r)
        self.assertEqual(evs[-1][0], "response.incomplete")
        last = evs[-1][1]["response"]
        self.assertEqual(last["status"], "incomplete")
        self.assertEqual(last["incomplete_details"], {"reason": "max_output_tokens"})
        self.assertEqual(last["usage"]["input_tokens"], 3)
        self.assertNotIn("response.completed", [n for n, _ in evs])


class ResponsesMidStreamTest(ResponsesBase):

    def test_broken_stream_ends_with_error_and_failed(self):
        self.mock = self.start_mock()
        cfg = llm(provider("openai", self.mock, fault="reset"))
        srv = self.start_server(cfg)
        r = self.post(srv, {"model": MODELS["openai"], "input": "break please", "stream": True})
        self.assertEqual(r.status, 200, r)
        evs = events(r)
        names = [n for n, _ in evs]
        self.assertIn("response.output_text.delta", names)
        self.assertEqual(names[-2:], ["error", "response.failed"])
        err = evs[-2][1]
        self.assertEqual(err["code"], "server_error")
        self.assertIn("mid-stream", err["message"])
        self.assertIsNone(err["param"])
        failed = evs[-1][1]["response"]
        self.assertEqual(failed["status"], "failed")
        self.assertEqual(failed["error"]["code"], "server_error")
        self.assertNotIn("response.completed", names)


# ---------------------------------------------------------------------------
# the native path: an OpenAI-compatible upstream with /responses

NATIVE_RESPONSE = ('{"id":"resp_upstream1","object":"response","created_at":1,"status":"completed",'
                   '"model":"gpt-native","output":[{"type":"message","id":"msg_u","status":"completed",'
                   '"role":"assistant","content":[{"type":"output_text","text":"native hi","annotations":[]}]}],'
                   '"usage":{"input_tokens":11,"output_tokens":3,"total_tokens":14},"x_vendor":1.50}')
NATIVE_EVENTS = [
    ("response.created", '{"type":"response.created","sequence_number":0,"response":{"id":"resp_upstream1",'
                         '"object":"response","status":"in_progress","output":[]}}'),
    ("response.web_search_call.searching", '{"type":"response.web_search_call.searching","sequence_number":1,'
                                           '"output_index":0,"item_id":"ws_1"}'),
    ("response.output_text.delta", '{"type":"response.output_text.delta","sequence_number":2,"item_id":"msg_u",'
                                   '"output_index":1,"content_index":0,"delta":"native hi"}'),
    ("response.completed", '{"type":"response.completed","sequence_number":3,"response":' + NATIVE_RESPONSE + '}'),
]


def native_reply(rec):
    """The Responses API on /responses (streamed or not; input "break" cuts
    the stream short), Chat Completions elsewhere."""
    req = rec["body"] if isinstance(rec["body"], dict) else {}
    if rec["path"].endswith("/responses"):
        if req.get("stream") and req.get("input") == "break":
            # ends before its final event
            data = "".join("event: %s\ndata: %s\n\n" % e for e in NATIVE_EVENTS[:3])
            ctype = "text/event-stream"
        elif req.get("stream"):
            data = "".join("event: %s\ndata: %s\n\n" % e for e in NATIVE_EVENTS)
            ctype = "text/event-stream"
        else:
            data, ctype = NATIVE_RESPONSE, "application/json"
    else:
        data = ('{"id":"c1","object":"chat.completion","created":1,"model":"gpt-native","choices":'
                '[{"index":0,"message":{"role":"assistant","content":"chat hi"},"finish_reason":"stop"}],'
                '"usage":{"prompt_tokens":2,"completion_tokens":2}}')
        ctype = "application/json"
        if req.get("stream"):
            head = '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-native","choices":'
            data = "".join("data: %s\n\n" % e for e in (
                head + '[{"index":0,"delta":{"content":"chat hi"},"finish_reason":null}]}',
                head + '[{"index":0,"delta":{},"finish_reason":"stop"}]}',
                head + '[],"usage":{"prompt_tokens":2,"completion_tokens":2}}')) + "data: [DONE]\n\n"
            ctype = "text/event-stream"
    return {"raw": data, "content_type": ctype}


class ResponsesNativeTest(ResponsesBase):

    def setUp(self):
        super().setUp()
        self.up = ScriptedUpstream()
        self.up.script(native_reply)
        self.addCleanup(self.up.close)

    def last(self):
        """(path, body text) of the last request the upstream received
        (the health probes, GETs, left out)."""
        rec = [r for r in self.up.received() if r["method"] == "POST"][-1]
        return rec["path"], rec["raw"]

    def start_native(self, mode="native", backups=()):
        self.mock = self.start_mock()
        prim = {"provider": "openai", "model": "gpt-native", "api_key": "sk-native-test",
                "endpoint": self.up.url + "/v1", "responses_api": mode}
        return self.start_server(llm(prim, [provider(b, self.mock) for b in backups]))

    def test_body_and_answer_go_as_they_are(self):
        srv = self.start_native()
        sent = ('{"model":"gpt-native","input":"hi","tools":[{"type":"web_search_preview"}],'
                '"temperature":0.70,"x_unknown":{"a":[1,2]}}')
        r = srv.request("POST", "/v1/responses", headers={"Content-Type": "application/json"}, body=sent,
                        timeout=REQ_TIMEOUT)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body.decode(), NATIVE_RESPONSE)
        path, body = self.last()
        self.assertEqual(path, "/v1/responses")
        self.assertEqual(body, sent)

    def test_stream_is_relayed_with_its_event_names(self):
        srv = self.start_native()
        r = self.post(srv, {"model": "gpt-native", "input": "hi", "stream": True,
                            "tools": [{"type": "web_search_preview"}]})
        self.assertEqual(r.status, 200, r)
        want = "".join("event: %s\ndata: %s\n\n" % e for e in NATIVE_EVENTS)
        self.assertEqual(r.body.decode(), want)  # nothing added (no [DONE])
        self.assertEqual(self.last()[0], "/v1/responses")

    def test_native_stream_cut_short(self):
        """A relayed stream that ends before its final event: the events
        that came, then an `error` event (no response of the gateway's own)."""
        srv = self.start_native()
        r = self.post(srv, {"model": "gpt-native", "input": "break", "stream": True})
        self.assertEqual(r.status, 200, r)
        evs = sse_events(r.body)
        self.assertEqual([n for n, _ in evs], [n for n, _ in NATIVE_EVENTS[:3]] + ["error"])
        err = json.loads(evs[-1][1])
        self.assertEqual(err["type"], "error")
        self.assertIn("ended early", err["message"])

    def test_translate_mode_uses_chat_completions(self):
        srv = self.start_native(mode="translate")
        d = self.post(srv, {"model": "gpt-native", "input": "hi"}).json()
        self.assertEqual(d["output"][0]["content"][0]["text"], "chat hi")
        self.assertEqual(self.last()[0], "/v1/chat/completions")
        self.assertResponsesError(self.post(srv, {"model": "gpt-native", "input": "hi",
                                                  "tools": [{"type": "web_search_preview"}]}), 400,
                                  "tools[0].type: web_search_preview")

    def test_auto_is_translate_for_another_endpoint(self):
        srv = self.start_native(mode="auto")
        self.post(srv, {"model": "gpt-native", "input": "hi", "stream": True})
        self.assertEqual(self.last()[0], "/v1/chat/completions")

    def test_previous_response_id(self):
        """Ours: the canonical path with the stored conversation; not ours:
        the provider's own store may know it."""
        srv = self.start_native(backups=("anthropic",))
        first = self.post(srv, {"model": MODELS["anthropic"], "input": "first turn"}).json()
        r = self.post(srv, {"model": "gpt-native", "input": "second", "previous_response_id": first["id"]})
        self.assertEqual(r.status, 200, r)
        path, body = self.last()
        self.assertEqual(path, "/v1/chat/completions")
        msgs = json.loads(body)["messages"]
        self.assertEqual(msgs[0], {"role": "user", "content": "first turn"})
        self.assertEqual(msgs[-1], {"role": "user", "content": "second"})
        self.assertEqual(r.json()["output"][0]["content"][0]["text"], "chat hi")
        r = self.post(srv, {"model": "gpt-native", "input": "x", "previous_response_id": "resp_upstream1"})
        self.assertEqual(r.status, 200, r)
        path, body = self.last()
        self.assertEqual(path, "/v1/responses")
        self.assertEqual(json.loads(body)["previous_response_id"], "resp_upstream1")
        # the same unknown id for the model only the anthropic provider serves: 404
        self.assertResponsesError(self.post(srv, {"model": MODELS["anthropic"], "input": "x",
                                                  "previous_response_id": "resp_upstream1"}), 404,
                                  "previous_response_id")

    def test_built_in_tool_refused_by_the_other_providers(self):
        """A chain of a native and a translating provider: the native one
        serves the built-in tool; alone, the other refuses it by name."""
        srv = self.start_native(backups=("ollama",))
        r = self.post(srv, {"input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["v"]}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Hapax-Provider"), "openai")
        err = self.assertResponsesError(self.post(srv, {"model": MODELS["ollama"], "input": "x",
                                                        "tools": [{"type": "file_search"}]}), 400,
                                        "tools[0].type: file_search")
        self.assertEqual(err["param"], "tools[0].type")

    def test_errors_carry_param(self):
        srv = self.start_native(mode="translate")
        err = self.assertResponsesError(self.post(srv, {"input": "x", "truncation": "auto"}), 400, "truncation")
        self.assertEqual(err["param"], "truncation")
        self.assertEqual(err["code"], "invalid_request")
        err = self.assertResponsesError(srv.get("/v1/responses/resp_none"), 404, "resp_none")
        self.assertEqual(err["param"], "response_id")
        bad = srv.request("POST", "/v1/responses", headers={"Content-Type": "application/json"}, body="{not json",
                          timeout=REQ_TIMEOUT)
        err = self.assertResponsesError(bad, 400, "Invalid JSON")
        self.assertIsNone(err["param"])
