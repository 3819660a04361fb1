"""The response cache (llm.cache, docs/cache.md), for each type: memory,
file and redis (a real redis-server on a private port, as in
test_scaleout.py).

A hit is proven by the mock provider's request count: the second
identical request does not reach it. Each type runs the same cases: hit
(members in another order hit too), miss on a different parameter or
message, TTL expiry, Cache-Control no-store / no-cache, a stream replayed
as a stream with the same bytes, max_size eviction, the entry size bound,
errors and cut streams not stored, scope key (two keys never share).
Redis down is a miss and the request still succeeds.
"""

import json
import os
import re
import shutil
import signal
import time
import unittest

from harness import HapaxTestCase, base_config, deep_merge, render_yaml
from redis_server import REDIS, Redis
from test_providers import MODELS, provider, user
KEY1 = "hx-cache-key-one"
KEY2 = "hx-cache-key-two"


def chat(said="hello", stream=False, **params):
    b = {"model": MODELS["openai"], "messages": [user(said)]}
    if stream:
        b["stream"] = True
    b.update(params)
    return b


class CacheCases:
    """The cases every cache type runs; subclasses give cache_section()."""

    TYPE = None
    SERVER = {}

    def cache_section(self):
        return {"type": self.TYPE}

    def start(self, scope=None, auth=True, **cache):
        self.mock = self.start_mock()
        p = provider("openai", self.mock)
        sec = {"enable": True, "ttl": "10m"}
        sec.update(self.cache_section())
        if scope:
            sec["scope"] = scope
        sec.update(cache)
        p.update({"retry": {"max_retries": 0}, "health_check": {"enabled": False},
                  "first_byte_timeout": "5s", "request_timeout": "20s", "cache": sec})
        cfg = {"llm": p, "server": dict(self.SERVER)}
        if auth:
            cfg["auth"] = {"enabled": True, "keys": [{"name": "one", "key": KEY1, "metrics": True},
                                                     {"name": "two", "key": KEY2}]}
        else:
            cfg["server"]["allow_unauthenticated"] = True
        self.cfg = cfg
        self.srv = self.start_server(cfg)
        return self.srv

    def post(self, body, key=KEY1, headers=None, path="/v1/chat/completions"):
        h = {"Content-Type": "application/json"}
        if key:
            h["Authorization"] = "Bearer " + key
        h.update(headers or {})
        text = body if isinstance(body, str) else json.dumps(body)
        return self.srv.request("POST", path, headers=h, body=text, timeout=30)

    def upstream(self):
        return self.mock.stats()["requests"]

    def expect(self, r, result, status=200):
        self.assertEqual(r.status, status, r.body[:300])
        self.assertEqual(r.header("X-Hapax-Cache"), result, r.headers)

    def settle(self):
        """An answer is stored before its last byte goes out: memory and
        file entries are found at once (a file is served from memory
        until written); the Redis cases run one worker, whose one
        connection sends the SET before the next request's GET."""

    def test_hit_then_key_order_hits(self):
        self.start()
        first = self.post(chat(temperature=0.5, max_tokens=20))
        self.expect(first, "miss")
        self.assertEqual(self.upstream(), 1)
        self.settle()
        again = self.post(chat(temperature=0.5, max_tokens=20))
        self.expect(again, "hit")
        self.assertEqual(again.body, first.body)
        self.assertEqual(again.header("Content-Type"), first.header("Content-Type"))
        # the same request, members in another order and other spacing
        text = '{ "max_tokens": 20, "temperature": 0.5, "messages": [{"content": "hello", "role": "user"}],' \
               ' "model": "%s" }' % MODELS["openai"]
        self.expect(self.post(text), "hit")
        self.assertEqual(self.upstream(), 1, "a hit reached the provider")

    def test_miss_on_other_parameter_or_message(self):
        self.start()
        self.expect(self.post(chat(temperature=0.5)), "miss")
        self.settle()
        self.expect(self.post(chat(temperature=0.7)), "miss")
        self.expect(self.post(chat("other", temperature=0.5)), "miss")
        self.expect(self.post(chat(temperature=0.5, stream=True)), "miss")
        self.assertEqual(self.upstream(), 4)
        self.expect(self.post(chat(temperature=0.5)), "hit")
        self.assertEqual(self.upstream(), 4)

    def test_ttl_expiry_is_a_miss(self):
        self.start(ttl="1s")
        self.expect(self.post(chat()), "miss")
        self.settle()
        self.expect(self.post(chat()), "hit")
        time.sleep(1.3)
        self.expect(self.post(chat()), "miss")
        self.assertEqual(self.upstream(), 2)

    def test_no_store_and_no_cache(self):
        self.start()
        self.expect(self.post(chat(), headers={"Cache-Control": "no-store"}), "bypass")
        self.settle()
        self.expect(self.post(chat()), "miss")  # no-store kept nothing
        self.settle()
        self.expect(self.post(chat(), headers={"Cache-Control": "max-age=0, No-Store"}), "bypass")
        self.expect(self.post(chat(), headers={"Cache-Control": "no-cache"}), "bypass")
        self.assertEqual(self.upstream(), 4)  # both went up despite the stored entry
        self.expect(self.post(chat("fresh"), headers={"Cache-Control": "no-cache"}), "bypass")
        self.settle()
        self.expect(self.post(chat("fresh")), "hit")  # no-cache stored the fresh answer
        self.assertEqual(self.upstream(), 5)

    def test_stream_replayed_as_stream(self):
        self.start()
        first = self.post(chat(stream=True))
        self.expect(first, "miss")
        self.settle()
        again = self.post(chat(stream=True))
        self.expect(again, "hit")
        self.assertEqual(self.upstream(), 1)
        self.assertTrue(again.header("Content-Type").startswith("text/event-stream"), again.headers)
        self.assertIn("chunked", (again.header("Transfer-Encoding") or "").lower())
        self.assertEqual(again.body, first.body)
        self.assertIn(b"data: [DONE]", again.body)
        # the non-streamed form of the same request is another entry
        self.expect(self.post(chat()), "miss")

    def test_anthropic_messages_hit(self):
        self.start()
        body = {"model": MODELS["openai"], "max_tokens": 50, "messages": [user("hi")]}
        first = self.post(body, path="/v1/messages")
        self.expect(first, "miss")
        self.settle()
        again = self.post(body, path="/v1/messages")
        self.expect(again, "hit")
        self.assertEqual(again.body, first.body)
        self.assertEqual(json.loads(again.body)["type"], "message")
        # an answer-changing header is part of the key
        self.expect(self.post(body, path="/v1/messages", headers={"anthropic-beta": "x-2025"}), "miss")
        # the same body on chat completions is another API: another entry
        self.expect(self.post(body), "miss")
        self.assertEqual(self.upstream(), 3)

    def test_max_size_evicts_oldest(self):
        if self.TYPE == "redis":
            self.skipTest("Redis bounds entries by TTL and its own maxmemory")
        self.start(max_size=2)
        for said in ("a", "b"):
            self.expect(self.post(chat(said)), "miss")
            self.settle()
        self.expect(self.post(chat("a")), "hit")  # a is now the most recent
        self.expect(self.post(chat("c")), "miss")  # pushes out b
        self.settle()
        self.expect(self.post(chat("a")), "hit")
        self.expect(self.post(chat("c")), "hit")
        self.expect(self.post(chat("b")), "miss")
        self.assertEqual(self.upstream(), 4)
        m = self.srv.get("/metrics", headers={"Authorization": "Bearer " + KEY1}).body.decode()
        self.assertIn("hapax_cache_entries 2", m)
        self.assertIn('hapax_cache_requests_total{result="hit"} 3', m)

    def test_entry_above_bound_not_stored(self):
        self.start()
        self.mock.arm("huge", count=2)  # 8 MiB of content: above the 4 MiB bound
        big = self.post(chat("big"))
        self.expect(big, "miss")
        self.assertGreater(len(big.body), 4 << 20)
        self.settle()
        self.expect(self.post(chat("big")), "miss")
        self.assertEqual(self.upstream(), 2)

    def test_errors_not_stored(self):
        self.start()
        self.mock.arm("500", count=1)
        self.expect(self.post(chat()), "miss", status=502)
        self.settle()
        ok = self.post(chat())
        self.expect(ok, "miss")
        self.settle()
        self.expect(self.post(chat()), "hit")
        self.assertEqual(self.upstream(), 2)

    def test_cut_stream_not_stored(self):
        self.start()
        self.mock.arm("reset", count=1)  # two chunks, then a reset
        cut = self.post(chat(stream=True))
        self.expect(cut, "miss")
        self.assertIn(b"error", cut.body)
        self.settle()
        whole = self.post(chat(stream=True))
        self.expect(whole, "miss")
        self.assertNotEqual(whole.body, cut.body)
        self.assertEqual(self.upstream(), 2)

    def test_scope_key_never_shares(self):
        self.start()
        self.expect(self.post(chat(), key=KEY1), "miss")
        self.settle()
        self.expect(self.post(chat(), key=KEY2), "miss")
        self.settle()
        self.expect(self.post(chat(), key=KEY1), "hit")
        self.expect(self.post(chat(), key=KEY2), "hit")
        self.assertEqual(self.upstream(), 2)


class MemoryCacheTest(CacheCases, HapaxTestCase):
    TYPE = "memory"

    def test_scope_global_shares_and_anonymous_key_scope_bypasses(self):
        self.start(scope="global")
        self.expect(self.post(chat(), key=KEY1), "miss")
        self.expect(self.post(chat(), key=KEY2), "hit")
        self.assertEqual(self.upstream(), 1)

    def test_scope_key_without_auth_bypasses(self):
        self.start(auth=False)
        self.expect(self.post(chat(), key=None), "bypass")
        self.expect(self.post(chat(), key=None), "bypass")
        self.assertEqual(self.upstream(), 2)
        line = self.srv.wait_log(lambda l: l.get("msg") == "request" and l.get("cache") == "bypass")
        self.assertEqual(line["cache"], "bypass")

    def test_scope_route_shares_between_keys(self):
        self.start(scope="route")
        self.expect(self.post(chat(), key=KEY1), "miss")
        self.expect(self.post(chat(), key=KEY2), "hit")
        self.assertEqual(self.upstream(), 1)

    def test_hit_spends_no_tokens(self):
        """With a tokens-per-minute limit a miss reserves and spends
        tokens; hits neither reserve nor charge, so many hits in a row
        leave the bucket as the miss left it."""
        self.start()
        self.srv.stop()
        self._servers.remove(self.srv)
        p = provider("openai", self.mock)
        p.update({"retry": {"max_retries": 0}, "health_check": {"enabled": False},
                  "cache": {"enable": True, "type": "memory"}})
        self.srv = self.start_server({
            "llm": p,
            "auth": {"enabled": True, "keys": [{"name": "one", "key": KEY1}]},
            "rate_limit": {"enabled": True, "requests_per_minute": 100000, "burst": 1000,
                           "tokens_per_minute": 600}})
        self.expect(self.post(chat(max_tokens=100)), "miss")
        for _ in range(30):  # each would reserve 100+ tokens if it reached the chain
            self.expect(self.post(chat(max_tokens=100)), "hit")
        self.expect(self.post(chat("another", max_tokens=100)), "miss")
        self.assertEqual(self.upstream(), 2)
        line = self.srv.wait_log(lambda l: l.get("msg") == "request" and l.get("cache") == "hit")
        self.assertNotIn("provider", line)
        self.assertNotIn("attempts", line)


    def test_anthropic_stream_replayed_with_its_events(self):
        self.start()
        body = {"model": MODELS["openai"], "max_tokens": 50, "stream": True, "messages": [user("hi")]}
        first = self.post(body, path="/v1/messages")
        self.expect(first, "miss")
        again = self.post(body, path="/v1/messages")
        self.expect(again, "hit")
        self.assertEqual(again.body, first.body)
        self.assertIn(b"event: message_stop", again.body)
        self.assertEqual(self.upstream(), 1)

    def test_embeddings_hit(self):
        self.start()
        body = {"model": MODELS["openai"], "input": ["a", "b"]}
        first = self.post(body, path="/v1/embeddings")
        self.expect(first, "miss")
        self.expect(self.post(body, path="/v1/embeddings"), "hit")
        self.assertEqual(self.upstream(), 1)

    def test_reload_applies_enable_and_warns_on_type(self):
        self.start()
        self.expect(self.post(chat()), "miss")
        self.expect(self.post(chat()), "hit")
        cfg = json.loads(json.dumps(self.cfg))
        cfg["llm"]["cache"].update({"enable": False, "type": "file", "dir": os.path.join(self.workdir, "c")})
        with open(self.srv.config_path, "w") as f:
            f.write(render_yaml(deep_merge(base_config(self.srv.port), cfg)) + "\n")
        self.srv.signal(signal.SIGHUP)
        warn = self.srv.wait_log(lambda l: "need a restart" in l.get("msg", "") and l.get("setting") == "llm.cache")
        self.assertIsNotNone(warn, self.srv.stderr_text()[-2000:])
        deadline = time.monotonic() + 10
        while True:  # the workers take the new config with their next request
            r = self.post(chat())
            self.assertEqual(r.status, 200)
            if r.header("X-Hapax-Cache") is None:
                break
            self.assertLess(time.monotonic(), deadline, "enable: false never applied")
            time.sleep(0.05)
        before = self.upstream()
        self.assertIsNone(self.post(chat()).header("X-Hapax-Cache"))
        self.assertEqual(self.upstream(), before + 1)


class FileCacheTest(CacheCases, HapaxTestCase):
    TYPE = "file"

    def cache_section(self):
        self.dir = os.path.join(self.workdir, "cache")
        return {"type": "file", "dir": self.dir}

    def test_entries_are_files_named_by_hash_and_survive_restart(self):
        srv = self.start()
        first = self.post(chat())
        self.expect(first, "miss")
        deadline = time.monotonic() + 10  # written off the request path
        while time.monotonic() < deadline:
            names = os.listdir(self.dir)
            if names and all(re.match(r"^[0-9a-f]{64}$", n) for n in names):
                break
            time.sleep(0.02)
        self.assertEqual(len(names), 1, names)
        self.assertRegex(names[0], r"^[0-9a-f]{64}$")
        srv.stop()
        self._servers.remove(srv)
        p = provider("openai", self.mock)
        p.update({"retry": {"max_retries": 0}, "health_check": {"enabled": False},
                  "cache": {"enable": True, "type": "file", "dir": self.dir}})
        self.srv = self.start_server({"llm": p, "auth": {"enabled": True, "keys": [{"name": "one", "key": KEY1}]}})
        again = self.post(chat())
        self.expect(again, "hit")
        self.assertEqual(again.body, first.body)
        self.assertEqual(self.upstream(), 1)


@unittest.skipUnless(REDIS and shutil.which("redis-cli"), "redis-server is not installed")
class RedisCacheTest(CacheCases, HapaxTestCase):
    TYPE = "redis"
    SERVER = {"workers": 1}

    def setUp(self):
        super().setUp()
        self.redis = Redis(self.workdir).start()
        self.addCleanup(self.redis.stop)

    def cache_section(self):
        return {"type": "redis", "redis": {"address": "127.0.0.1:%d" % self.redis.port, "prefix": "hc:",
                                           "command_timeout": "300ms", "connect_timeout": "300ms"}}

    def test_keys_carry_a_ttl_under_the_prefix(self):
        self.start(ttl="5m")
        self.expect(self.post(chat()), "miss")
        self.settle()
        keys = self.redis.cli("KEYS", "*").split()
        self.assertEqual(len(keys), 1, keys)
        self.assertRegex(keys[0], r"^hc:cache:[0-9a-f]{64}$")
        ttl = int(self.redis.cli("PTTL", keys[0]).strip())
        self.assertGreater(ttl, 0)
        self.assertLessEqual(ttl, 300000)

    def test_workers_share_entries(self):
        self.SERVER = {"workers": 2}
        self.start()
        self.expect(self.post(chat()), "miss")
        deadline = time.monotonic() + 10
        while self.redis.cli("DBSIZE").strip() != "1" and time.monotonic() < deadline:
            time.sleep(0.02)
        for _ in range(6):  # new connections: both workers answer some
            self.expect(self.post(chat()), "hit")
        self.assertEqual(self.upstream(), 1)

    def test_redis_down_is_a_miss(self):
        self.start()
        self.expect(self.post(chat()), "miss")
        self.settle()
        self.expect(self.post(chat()), "hit")
        self.redis.stop()
        for _ in range(2):
            self.expect(self.post(chat()), "miss")
        self.assertEqual(self.upstream(), 3)


if __name__ == "__main__":
    unittest.main()
