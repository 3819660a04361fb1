"""Regressions for what the fuzz targets (tests/fuzz) found that shows at
the HTTP surface: json-c alone accepts non-standard JSON (1., NaN,
comments, single quotes, trailing commas) and would forward it; every
inbound API answers 400 instead, and the provider sees nothing."""

from test_providers import ProviderTestCase

LENIENT = [
    '{"messages":[{"role":"user","content":"x"}],"temperature":1.}',
    '{"messages":[{"role":"user","content":"x"}],"temperature":NaN}',
    '{"messages":[{"role":"user","content":"x"}] /* c */}',
    '{"messages":[{"role":"user","content":"x"}],}',
    "{'messages':[{'role':'user','content':'x'}]}",
]


class LenientJsonTest(ProviderTestCase):

    def test_non_standard_json_is_400_on_every_api(self):
        mock, srv = self.start_pair("openai")
        for path, extra in (("/v1/chat/completions", ""), ("/v1/completions", ""),
                            ("/v1/messages", ',"max_tokens":5,"model":"m"')):
            for body in LENIENT:
                b = body[:-1] + extra + "}" if body.endswith("}") else body
                r = self.post(srv, path, b)
                err = self.assertJsonError(r, 400, "invalid_request")
                self.assertEqual(err["type"], "invalid_request_error", (path, b, r))
        self.assertIsNone(mock.last(), "a non-standard body reached the provider")

    def test_backslash_nul_is_not_an_escape(self):
        # The scanner took "\\<NUL>" for an escape (strchr finds the
        # terminator) and relayed the body as it was.
        mock, srv = self.start_pair("openai")
        body = b'{"model":"gpt-test","messages":[{"role":"user","content":"a\\\x00b"}]}'
        self.assertIn(b"\\\x00", body)
        r = self.post(srv, "/v1/chat/completions", body)
        self.assertJsonError(r, 400, "invalid_request")
        self.assertIsNone(mock.last(), "invalid JSON reached the provider")


class ExpandedValueNotQuotedTest(ProviderTestCase):
    """The config target found an invalid enum value quoted in --validate's
    error even when it came from ${VAR}: a key put in the wrong variable
    was printed."""

    def test_validate_names_the_variable_not_its_value(self):
        secret = "sk-live-0123456789abcdef"
        path = self.write_file("env.yaml", "llm:\n  provider: ${HX_TEST_PROVIDER}\n"
                                           "logging:\n  level: ${HX_TEST_PROVIDER}\n"
                                           "routes:\n  - path: x${HX_TEST_PROVIDER}\n"
                                           "    handler: chat\n"
                                           "server:\n  host: ${HX_TEST_PROVIDER}\n")
        r = self.cli(["--config", path, "--validate"], env={"HX_TEST_PROVIDER": secret})
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("llm.provider", r.stderr)
        self.assertIn("logging.level", r.stderr)
        self.assertIn("routes[0].path", r.stderr)
        self.assertIn("server.host", r.stderr)  # not loopback, no auth (found again by the config target)
        self.assertNotIn(secret, r.stderr + r.stdout)
        self.assertNotIn(secret[:12], r.stderr + r.stdout)
