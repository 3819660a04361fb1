-- wrk script: POST an OpenAI chat completion (streaming when STREAM=1).
local stream = os.getenv("STREAM") == "1"
wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark"}]'
  .. (stream and ',"stream":true' or '') .. '}'

-- Print machine-readable percentiles for run.sh.
done = function(summary, latency, requests)
  io.write(string.format("RESULT reqs=%d secs=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
