"""Anthropic client → Anthropic provider (issue 10 items 3 and 5): the
client's body goes up unchanged except `model` (cache_control, thinking,
server tools, documents, container, unknown members...), with the client's
anthropic-version / anthropic-beta and the provider's own key; the answer
comes back as the upstream wrote it (thinking, signature_delta, server-tool
events, cache usage, stop_sequence); errors are in Anthropic's format with
a request-id header, an upstream's 4xx keeps its type and message; what
only Anthropic can carry is refused by name for the other providers, so
failover picks the Anthropic one.

The upstreams are scripted here (http.server): they record what they
receive and answer what the mock cannot produce."""

import http.server
import json
import threading

import harness
from harness import HOST, HapaxTestCase

KEY = "sk-ant-native-provider-key"
CLIENT_KEY = "sk-client-key-must-not-travel"

MESSAGE = {
    "id": "msg_up_1", "type": "message", "role": "assistant", "model": "claude-up",
    "content": [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig-abc"},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
        {"type": "text", "text": "Answer END"},
    ],
    "stop_reason": "stop_sequence", "stop_sequence": "END",
    "usage": {"input_tokens": 10, "cache_creation_input_tokens": 20, "cache_read_input_tokens": 30,
              "output_tokens": 7, "service_tier": "standard"},
}

STREAM = [
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_up_2", "type": "message", "role": "assistant", "model": "claude-up", "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 11, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 40,
                  "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "thinking_delta", "thinking": "Hmm."}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "signature_delta", "signature": "sig-xyz"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("ping", {"type": "ping"}),
    ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
        "type": "server_tool_use", "id": "srvtoolu_2", "name": "web_search", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "input_json_delta", "partial_json": "{\"query\":\"y\"}"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
        "type": "web_search_tool_result", "tool_use_id": "srvtoolu_2", "content": []}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 2}),
    ("content_block_start", {"type": "content_block_start", "index": 3,
                             "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 3,
                             "delta": {"type": "text_delta", "text": "Done STOP"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 3}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "stop_sequence", "stop_sequence": "STOP"},
                       "usage": {"output_tokens": 9}}),
    ("message_stop", {"type": "message_stop"}),
]

BAD_BUDGET = {"type": "error", "error": {"type": "invalid_request_error",
                                         "message": "thinking.budget_tokens: Input should be >= 1024"},
              "request_id": "req_upstream_1"}
TOO_LARGE = {"type": "error", "error": {"type": "request_too_large", "message": "Request exceeds the maximum size"}}


class _Upstream(http.server.BaseHTTPRequestHandler):
    """An Anthropic (POST .../messages) or OpenAI (POST .../chat/completions)
    upstream; the server's `seen` list records (path, headers, raw body)."""

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        self.server.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, raw))
        req = json.loads(raw or b"{}")
        text = raw.decode("utf-8", "replace")
        if self.path.endswith("/chat/completions"):
            return self.answer(200, {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-up",
                                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "openai"},
                                                  "finish_reason": "stop"}],
                                     "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
        if "want-400" in text:
            return self.answer(400, BAD_BUDGET)
        if "want-413" in text:
            return self.answer(413, TOO_LARGE)
        if req.get("stream") and "want-midstream" in text:
            return self.midstream()
        if req.get("stream"):
            data = "".join("event: %s\ndata: %s\n\n" % (e, json.dumps(d)) for e, d in STREAM).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.answer(200, MESSAGE)

    def midstream(self):
        """Three events, then (once the test saw them reach the client) an
        error event."""
        sse = lambda evs: "".join("event: %s\ndata: %s\n\n" % (e, json.dumps(d)) for e, d in evs).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(sse(STREAM[:3]))
        self.wfile.flush()
        self.server.go.wait(10)
        self.wfile.write(sse([("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                    "message": "Overloaded"}})]))
        self.wfile.flush()
        self.close_connection = True

    def answer(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def sse_events(body):
    """(event name, parsed data) of each SSE event of a response body."""
    out = []
    for block in body.decode().split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            out.append((name, json.loads("\n".join(data))))
    return out


# A client body with what only Anthropic has (numbers written oddly on
# purpose: they must reach the upstream as written).
CLIENT_BODY = (
    '{"model":"default","max_tokens":2048,"temperature":0.50,'
    '"thinking":{"type":"enabled","budget_tokens":1024},"service_tier":"auto",'
    '"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral","ttl":"1h"}}],'
    '"metadata":{"user_id":"u-1"},"container":"container_1","unknown_future_member":{"a":[1,2.0e0]},'
    '"mcp_servers":[{"type":"url","url":"https://mcp.example/sse","name":"ex"}],'
    '"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":2},'
    '{"name":"get_weather","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}],'
    '"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64",'
    '"media_type":"application/pdf","data":"JVBERi0xLjQK"},"title":"a.pdf"},'
    '{"type":"text","text":"Summarise","cache_control":{"type":"ephemeral"}}]},'
    '{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},'
    '{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"location":"Paris"}}]},'
    '{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","is_error":true,'
    '"content":"failed"}]}]}'
)


class _Scripted(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.up = http.server.ThreadingHTTPServer((HOST, 0), _Upstream)
        self.up.daemon_threads = True
        self.up.seen = []
        self.up.go = threading.Event()
        threading.Thread(target=self.up.serve_forever, daemon=True).start()
        self.addCleanup(self.up.server_close)
        self.addCleanup(self.up.shutdown)

    def endpoint(self):
        return "http://%s:%d/v1" % (HOST, self.up.server_address[1])

    def server(self, extra_llm=None):
        llm = {"provider": "anthropic", "model": "claude-up", "api_key": KEY, "endpoint": self.endpoint(),
               "retry": {"max_retries": 0}}
        llm.update(extra_llm or {})
        return self.start_server({"llm": llm})

    def post(self, srv, body, headers=None):
        h = {"Content-Type": "application/json", "x-api-key": CLIENT_KEY}
        h.update(headers or {})
        return srv.request("POST", "/v1/messages", headers=h, body=body, timeout=15)



class AnthropicNativeTest(_Scripted):

    def test_body_goes_up_unchanged_but_model(self):
        srv = self.server()
        r = self.post(srv, CLIENT_BODY, {"anthropic-version": "2023-06-01",
                                         "anthropic-beta": "mcp-client-2025-04-04,extended-cache-ttl-2025-04-11"})
        self.assertEqual(r.status, 200, r)
        path, headers, raw = self.up.seen[-1]
        self.assertEqual(path, "/v1/messages")
        self.assertEqual(raw.decode(), CLIENT_BODY.replace('"model":"default"', '"model":"claude-up"'))
        self.assertEqual(headers.get("x-api-key"), KEY)  # the provider's key, never the client's
        self.assertNotIn(CLIENT_KEY, json.dumps(headers))
        self.assertEqual(headers.get("anthropic-version"), "2023-06-01")
        self.assertEqual(headers.get("anthropic-beta"), "mcp-client-2025-04-04,extended-cache-ttl-2025-04-11")

    def test_default_version_and_no_beta(self):
        srv = self.server()
        body = '{"model":"default","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
        self.assertEqual(self.post(srv, body).status, 200)
        headers = self.up.seen[-1][1]
        self.assertEqual(headers.get("anthropic-version"), "2023-06-01")
        self.assertNotIn("anthropic-beta", headers)
        r = self.post(srv, body, {"anthropic-version": "2099-01-01"})
        self.assertEqual(r.status, 200)
        self.assertEqual(self.up.seen[-1][1].get("anthropic-version"), "2099-01-01")

    def test_answer_relayed_as_is(self):
        srv = self.server()
        r = self.post(srv, CLIENT_BODY)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), MESSAGE)  # thinking, server tools, stop_sequence, cache usage
        self.assertEqual(r.header("x-hapax-provider"), "anthropic")
        self.assertEqual(r.header("request-id"), r.header("x-request-id"))
        rec = srv.wait_log(lambda x: x.get("path") == "/v1/messages" and "prompt_tokens" in x)
        self.assertIsNotNone(rec)
        self.assertEqual((rec["prompt_tokens"], rec["completion_tokens"]), (60, 7))

    def test_stream_relayed_event_by_event(self):
        srv = self.server()
        body = json.loads(CLIENT_BODY)
        body["stream"] = True
        r = self.post(srv, json.dumps(body))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("content-type"), "text/event-stream")
        self.assertEqual(sse_events(r.body), [(e, d) for e, d in STREAM])
        rec = srv.wait_log(lambda x: x.get("path") == "/v1/messages" and "prompt_tokens" in x)
        self.assertEqual((rec["prompt_tokens"], rec["completion_tokens"]), (51, 9))

    def test_stream_error_event(self):
        srv = self.server()
        body = '{"model":"default","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"want-midstream"}]}'
        with srv.conn(timeout=15) as c:
            c.send(harness.build_request("POST", "/v1/messages", {"Content-Type": "application/json"}, body.encode()))
            c.read_until(b"content_block_delta")
            self.up.go.set()
            r = c.read_response(method="POST")
        self.assertEqual(r.status, 200, r)
        ev = sse_events(r.body)
        self.assertEqual([e for e, _ in ev[:3]], ["message_start", "content_block_start", "content_block_delta"])
        self.assertEqual(ev[-1][0], "error")
        self.assertEqual(ev[-1][1]["type"], "error")
        self.assertIn("Overloaded", ev[-1][1]["error"]["message"])

    def test_upstream_4xx_keeps_type_and_message(self):
        srv = self.server()
        body = '{"model":"default","max_tokens":5,"messages":[{"role":"user","content":"want-400"}]}'
        r = self.post(srv, body)
        self.assertEqual(r.status, 400, r)
        e = r.json()
        self.assertEqual(e["type"], "error")
        self.assertEqual(e["error"], BAD_BUDGET["error"])
        self.assertEqual(e["request_id"], r.header("request-id"))
        body = body.replace("want-400", "want-413")
        r = self.post(srv, body)
        self.assertEqual(r.status, 413, r)
        self.assertEqual(r.json()["error"], TOO_LARGE["error"])

    def test_gateway_errors_in_anthropic_format(self):
        srv = self.server()
        cases = [
            ('{"model":"no-such-model","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}', 404,
             "not_found_error", "no-such-model"),
            ('{"model":"default","messages":[{"role":"user","content":"hi"}]}', 400,
             "invalid_request_error", "max_tokens"),
            ('{"model":', 400, "invalid_request_error", "Invalid JSON"),
        ]
        for body, status, etype, words in cases:
            with self.subTest(body=body):
                r = self.post(srv, body)
                self.assertEqual(r.status, status, r)
                e = r.json()
                self.assertEqual(set(e), {"type", "error", "request_id"})
                self.assertEqual(e["type"], "error")
                self.assertEqual(e["error"]["type"], etype)
                self.assertIn(words, e["error"]["message"])
                self.assertEqual(e["request_id"], r.header("request-id"))
                self.assertEqual(r.header("request-id"), r.header("x-request-id"))
        r = srv.request("GET", "/v1/messages", timeout=5)
        self.assertEqual(r.status, 405)
        self.assertEqual(r.json()["error"]["type"], "invalid_request_error")
        # other routes keep OpenAI's envelope
        r = srv.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"}, body="{")
        self.assertEqual(r.status, 400)
        self.assertIn("message", r.json()["error"])
        self.assertIsNone(r.header("request-id"))


class AnthropicOnlyFailoverTest(_Scripted):
    """What only Anthropic can carry: refused by name for an OpenAI
    provider, served by the Anthropic one behind it."""

    def chain(self, with_anthropic):
        llm = {"provider": "openai", "model": "gpt-up", "api_key": "sk-openai-native-test",
               "endpoint": self.endpoint(), "retry": {"max_retries": 0}}
        if with_anthropic:
            llm["backup_providers"] = [{"provider": "anthropic", "model": "claude-up", "api_key": KEY,
                                        "endpoint": self.endpoint(), "name": "claude"}]
        return self.start_server({"llm": llm})

    def test_failover_to_anthropic(self):
        srv = self.chain(True)
        r = self.post(srv, CLIENT_BODY)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("x-hapax-provider"), "claude")
        self.assertEqual([p for p, _, _ in self.up.seen], ["/v1/messages"])  # OpenAI was never asked

    def test_refused_by_name(self):
        srv = self.chain(False)
        for extra, field in [
            ('"tools":[{"type":"web_search_20250305","name":"web_search"}]', "tools.0"),
            ('"container":"c1"', "container"),
            ('"mcp_servers":[{"type":"url","url":"https://mcp.example/sse","name":"ex"}]', "mcp_servers"),
        ]:
            with self.subTest(field=field):
                body = ('{"model":"default","max_tokens":5,%s,"messages":[{"role":"user","content":"hi"}]}'
                        % extra)
                r = self.post(srv, body)
                self.assertEqual(r.status, 400, r)
                e = r.json()
                self.assertEqual(e["error"]["type"], "invalid_request_error")
                self.assertIn(field, e["error"]["message"])
                self.assertIn("openai", e["error"]["message"])
        self.assertEqual(self.up.seen, [])

    def test_plain_body_still_translated(self):
        srv = self.chain(False)
        body = '{"model":"default","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
        r = self.post(srv, body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["content"], [{"type": "text", "text": "openai"}])

    def test_translated_for_openai(self):
        """A PDF document becomes an OpenAI file part, output_config.format
        response_format, a cached system block a part with its marker."""
        srv = self.chain(False)
        body = {"model": "default", "max_tokens": 5,
                "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
                "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
                "messages": [{"role": "user", "content": [
                    {"type": "document", "title": "r.pdf",
                     "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0K"}},
                    {"type": "text", "text": "Summarise"}]}]}
        r = self.post(srv, json.dumps(body))
        self.assertEqual(r.status, 200, r)
        path, _, raw = self.up.seen[-1]
        self.assertEqual(path, "/v1/chat/completions")
        up = json.loads(raw)
        self.assertEqual(up["messages"][0]["content"], [{"type": "text", "text": "S",
                                                         "cache_control": {"type": "ephemeral"}}])
        self.assertEqual(up["messages"][1]["content"][0],
                         {"type": "file", "file": {"filename": "r.pdf",
                                                   "file_data": "data:application/pdf;base64,JVBERi0K"}})
        self.assertEqual(up["response_format"], {"type": "json_schema",
                                                 "json_schema": {"name": "response", "schema": {"type": "object"}}})
