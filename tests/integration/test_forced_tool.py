"""A forced tool call served by Ollama (issue 10, docs/providers.md
"Translation", tool_choice): Ollama has no tool_choice, so a forced tool
goes up as `format` (the tool's parameters schema, no `tools`) and the JSON
text Ollama answers comes back as a call of that tool, in the client's own
format, streamed or not. The mock answers `{"location":"Paris"}` as the
content of a request with `format` (tests/mock/README.md)."""

import json

import test_providers as tp  # its helpers (no test class is imported by name)

ARGS = {"location": "Paris"}
OTHER_OAI = {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}
OTHER_ANTH = {"name": "other", "input_schema": {"type": "object"}}
FORCE_OAI = {"type": "function", "function": {"name": "get_weather"}}
FORCE_ANTH = {"type": "tool", "name": "get_weather"}


class OllamaForcedToolTest(tp.ProviderTestCase):

    def setUp(self):
        super().setUp()
        self.mock, self.srv = self.start_pair("ollama")

    def check_upstream(self, stream):
        body = self.mock.last()["body"]
        self.assertNotIn("tools", body, body)
        self.assertNotIn("tool_choice", body, body)
        self.assertEqual(body["format"], tp.TOOL_PARAMS, body)
        self.assertIs(body["stream"], stream, body)

    def chat(self, tools, choice, stream=False):
        req = {"messages": [tp.user("weather in Paris?")], "tools": tools, "tool_choice": choice}
        if stream:
            req["stream"] = True
        r = self.post(self.srv, "/v1/chat/completions", req)
        self.assertOk(r, "ollama", 1, stream=stream)
        self.check_upstream(stream)
        return r

    def messages(self, tools, choice, stream=False):
        req = {"model": tp.MODELS["ollama"], "max_tokens": 100, "messages": [tp.user("weather in Paris?")],
               "tools": tools, "tool_choice": choice}
        if stream:
            req["stream"] = True
        r = self.post(self.srv, "/v1/messages", req, headers={"anthropic-version": "2023-06-01"})
        self.assertOk(r, "ollama", 1, stream=stream)
        self.check_upstream(stream)
        return r

    def test_chat_named_tool(self):
        r = self.chat([OTHER_OAI, tp.TOOL_OAI], FORCE_OAI)
        choice = r.json()["choices"][0]
        self.assertEqual(choice["finish_reason"], "tool_calls", choice)
        calls = choice["message"]["tool_calls"]
        self.assertEqual(len(calls), 1, calls)
        self.assertEqual(calls[0]["function"]["name"], "get_weather")
        self.assertTrue(calls[0]["id"].startswith("call_"), calls)
        self.assertEqual(json.loads(calls[0]["function"]["arguments"]), ARGS)
        self.assertIn(choice["message"].get("content"), (None, ""), choice)

    def test_chat_required_one_tool_streamed(self):
        r = self.chat([tp.TOOL_OAI], "required", stream=True)
        chunks = self.openai_chunks(r)
        calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
        self.assertGreaterEqual(len(calls), 2, "the arguments were not streamed: %r" % chunks)
        self.assertEqual(calls[0]["function"]["name"], "get_weather", calls)
        self.assertTrue(calls[0]["id"].startswith("call_"), calls)
        self.assertEqual({c["index"] for c in calls}, {0}, calls)
        args = "".join(c["function"].get("arguments", "") for c in calls)
        self.assertEqual(json.loads(args), ARGS)
        text = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
        self.assertEqual(text, [], "the JSON also came as text: %r" % chunks)
        fin = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0].get("finish_reason")]
        self.assertEqual(fin, ["tool_calls"], chunks)

    def test_messages_named_tool(self):
        r = self.messages([OTHER_ANTH, tp.TOOL_ANTH], FORCE_ANTH)
        d = r.json()
        self.assertEqual(d["stop_reason"], "tool_use", d)
        self.assertEqual([b["type"] for b in d["content"]], ["tool_use"], d)
        self.assertEqual(d["content"][0]["name"], "get_weather")
        self.assertEqual(d["content"][0]["input"], ARGS)

    def test_messages_any_streamed(self):
        r = self.messages([tp.TOOL_ANTH], {"type": "any"}, stream=True)
        blocks, _, delta = self.check_anthropic_stream(r)
        self.assertEqual([b["type"] for b in blocks], ["tool_use"], blocks)
        self.assertEqual(blocks[0]["name"], "get_weather")
        self.assertEqual(json.loads(blocks[0]["partial_json"]), ARGS)
        self.assertEqual(delta["delta"]["stop_reason"], "tool_use", delta)

    def test_required_among_several_tools_refused(self):
        r = self.post(self.srv, "/v1/chat/completions",
                      {"messages": [tp.user("hi")], "tools": [tp.TOOL_OAI, OTHER_OAI], "tool_choice": "required"})
        self.assertEqual(r.status, 400, r)
        msg = r.json()["error"]["message"]
        self.assertIn("tool_choice required", msg)
        self.assertIn("ollama", msg)
        self.assertIn("several tools", msg)

    def test_not_forced_keeps_tools(self):
        r = self.post(self.srv, "/v1/chat/completions",
                      {"messages": [tp.user("hi")], "tools": [tp.TOOL_OAI], "tool_choice": "auto"})
        self.assertOk(r, "ollama", 1)
        body = self.mock.last()["body"]
        self.assertEqual(body["tools"], [tp.TOOL_OAI], body)
        self.assertNotIn("format", body, body)
