"""A slow client pauses the upstream (docs/internals/backpressure.md):
libcurl hands a paused chunk over again after the resume, and the chunk
was already rendered before the pause. With small events (what LLM streams
are) a chunk holds whole events, so a second delivery would repeat them to
the client. Every event must arrive exactly once."""

import json
import time

from fidelity import ScriptedUpstream
from harness import DEFAULT_TIMEOUT, HapaxTestCase, RawConn
from test_providers import sse_events

EVENTS = 60000  # ~7 MB rendered: more than the kernel buffers and the high water mark


def chunk(i):
    return {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up",
            "choices": [{"index": 0, "delta": {"content": "%d," % i}, "finish_reason": None}]}


class SlowClientSmallEventsTest(HapaxTestCase):

    def test_every_event_once(self):
        up = ScriptedUpstream()
        self.addCleanup(up.close)
        stop = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        up.script({"sse": [chunk(i) for i in range(EVENTS)] + [stop, "[DONE]"]})
        srv = self.start_server({"llm": {"provider": "openai", "model": "gpt-up", "api_key": "sk-pause-test",
                                         "endpoint": up.url + "/v1", "request_timeout": "120s",
                                         "retry": {"max_retries": 0}},
                                 "server": {"write_timeout": "120s"}})
        c = RawConn(srv.port, timeout=DEFAULT_TIMEOUT, rcvbuf=4096)
        self.addCleanup(c.close)
        body = json.dumps({"model": "gpt-up", "messages": [{"role": "user", "content": "count"}],
                           "stream": True})
        c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(2.0)  # not reading: hapax pauses the upstream
        c.timeout = 60
        resp = c.read_response("POST", timeout=60)
        self.assertEqual(resp.status, 200, resp)
        events = [json.loads(d) for _, d in sse_events(resp.body) if d != "[DONE]"]
        errors = [e for e in events if "choices" not in e]
        self.assertEqual(errors, [], "the stream broke (a chunk delivered twice garbles an event)")
        text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
        got = text.split(",")[:-1]
        want = [str(i) for i in range(EVENTS)]
        if got != want:
            i = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
            self.fail("%d pieces for %d events; first difference at %d: %r vs %r"
                      % (len(got), EVENTS, i, got[i:i + 5], want[i:i + 5]))
