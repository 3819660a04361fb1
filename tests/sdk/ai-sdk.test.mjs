// The Vercel AI SDK (`ai` + `@ai-sdk/openai` + `@ai-sdk/anthropic`) against
// hapax (node:test).
//
// Run by tests/integration/test_sdk.py, which starts the mock provider and
// hapax and sets HAPAX_URL (hapax) and MOCK_URL (the mock, for /_mock/last:
// what the upstream received). Models hapax must serve (all backed by
// tests/mock): gpt-4o-mini (openai adapter), claude-3-5-haiku-latest
// (anthropic adapter), llama3.2 (ollama adapter).
//
// Three ways the AI SDK reaches hapax, each against each upstream:
//   openai(model)       the default OpenAI provider: POST /v1/responses
//   openai.chat(model)  POST /v1/chat/completions
//   anthropic(model)    POST /v1/messages
// The mock answers "Hello from the mock <family> provider. You said: <the
// first 8 words of the last user message>" in 8 chunks; with tools it calls
// get_weather({"location":"Paris"}) (or the tool tool_choice names); asked
// for structured output it answers {"location":"Paris"}.
//
// By hand: HAPAX_URL=http://127.0.0.1:8080 MOCK_URL=http://127.0.0.1:9999 \
//          node --test tests/sdk/ai-sdk.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateText, streamText, generateObject, tool, stepCountIs } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { createAnthropic } from '@ai-sdk/anthropic';
import { z } from 'zod';
import { upstreamLast, upstreamSchema } from './mock.mjs';

const HAPAX_URL = process.env.HAPAX_URL;
const MOCK_URL = process.env.MOCK_URL;
if (!HAPAX_URL || !MOCK_URL) {
  throw new Error('HAPAX_URL and MOCK_URL must be set (e.g. HAPAX_URL=http://127.0.0.1:8080)');
}
globalThis.AI_SDK_LOG_WARNINGS = false; // the unknown-model notices are noise here
const base = `${HAPAX_URL.replace(/\/$/, '')}/v1`;

const openai = createOpenAI({ baseURL: base, apiKey: 'sk-test-client-key' });
const anthropic = createAnthropic({ baseURL: base, apiKey: 'any-key-hapax-does-not-check-it' });

const CLIENTS = [
  // [label, the model object for a model name]
  ['openai responses', (m) => openai(m)],
  ['openai.chat', (m) => openai.chat(m)],
  ['anthropic', (m) => anthropic(m)],
];
const UPSTREAMS = [
  ['gpt-4o-mini', 'openai'],
  ['claude-3-5-haiku-latest', 'anthropic'],
  ['llama3.2', 'ollama'],
];

const T = { timeout: 20000 };
const COMMON = { maxRetries: 0 };
const expected = (family, said) =>
  `Hello from the mock ${family} provider. You said: ${said.split(/\s+/).slice(0, 8).join(' ')}`;
const words = (s) => s.split(/\s+/).filter(Boolean).length;

const weatherSchema = z.object({ location: z.string() });

for (const [label, make] of CLIENTS) {
  for (const [model, family] of UPSTREAMS) {
    const tag = `${label} -> ${family}`;

    test(`generateText, ${tag}`, T, async () => {
      const prompt = 'hello from the vercel ai sdk';
      const r = await generateText({ ...COMMON, model: make(model), system: 'Be brief.', prompt });
      assert.equal(r.text, expected(family, prompt));
      assert.equal(r.finishReason, 'stop');
      assert.equal(r.usage.inputTokens, words(prompt) + 2);
      assert.equal(r.usage.outputTokens, 8);
      const last = await upstreamLast();
      assert.equal(last.body.model, model);
    });

    test(`sampling settings reach the upstream, ${tag}`, T, async () => {
      // the Responses API has no stop sequences (the SDK itself drops them)
      const stop = label === 'openai responses' ? undefined : ['END'];
      await generateText({
        ...COMMON, model: make(model), prompt: 'be precise',
        temperature: 0.25, maxOutputTokens: 77, stopSequences: stop,
      });
      const { body } = await upstreamLast();
      if (family === 'ollama') {
        assert.equal(body.options?.temperature, 0.25, JSON.stringify(body));
        assert.equal(body.options?.num_predict, 77, JSON.stringify(body));
        assert.deepEqual(body.options?.stop, stop, JSON.stringify(body));
      } else if (family === 'anthropic') {
        assert.equal(body.temperature, 0.25, JSON.stringify(body));
        assert.equal(body.max_tokens, 77, JSON.stringify(body));
        assert.deepEqual(body.stop_sequences, stop, JSON.stringify(body));
      } else {
        assert.equal(body.temperature, 0.25, JSON.stringify(body));
        assert.equal(body.max_tokens ?? body.max_completion_tokens ?? body.max_output_tokens, 77,
                     JSON.stringify(body));
        assert.deepEqual(typeof body.stop === 'string' ? [body.stop] : body.stop, stop, JSON.stringify(body));
      }
    });

    test(`streamText, ${tag}`, T, async () => {
      const prompt = 'stream this to me please';
      const r = streamText({ ...COMMON, model: make(model), prompt, onError: () => {} });
      const parts = [];
      for await (const piece of r.textStream) parts.push(piece);
      assert.equal(parts.join(''), expected(family, prompt));
      assert.ok(parts.length >= 2, `expected several deltas, got ${parts.length}`);
      assert.equal(await r.finishReason, 'stop');
      const usage = await r.usage;
      assert.equal(usage.inputTokens, words(prompt));
      assert.equal(usage.outputTokens, 8);
    });

    test(`generateObject (zod schema), ${tag}`, T, async () => {
      const r = await generateObject({
        ...COMMON,
        model: make(model),
        schema: weatherSchema,
        prompt: 'Which city should I visit? Answer as JSON.',
      });
      assert.deepEqual(r.object, { location: 'Paris' });
      const schema = upstreamSchema(await upstreamLast());
      assert.ok(schema?.properties?.location, `the upstream got no schema: ${JSON.stringify(schema)}`);
    });

    test(`tool call and its result, ${tag}`, T, async () => {
      const seen = [];
      const r = await generateText({
        ...COMMON,
        model: make(model),
        prompt: 'What is the weather in Paris?',
        tools: {
          get_weather: tool({
            description: 'Weather for a city',
            inputSchema: weatherSchema,
            execute: async ({ location }) => {
              seen.push(location);
              return `sunny in ${location}`;
            },
          }),
        },
        stopWhen: stepCountIs(2),
      });
      assert.equal(r.steps.length, 2);
      const [call] = r.steps[0].toolCalls;
      assert.equal(call.toolName, 'get_weather');
      assert.deepEqual(call.input, { location: 'Paris' });
      assert.ok(call.toolCallId);
      assert.equal(r.steps[0].finishReason, 'tool-calls');
      assert.deepEqual(seen, ['Paris']);
      // the second step sent the tool result; the mock then answers in text
      assert.ok(r.text.startsWith(`Hello from the mock ${family} provider.`), r.text);
      assert.equal(r.finishReason, 'stop');
    });

    test(`streamed tool call, ${tag}`, T, async () => {
      const r = streamText({
        ...COMMON,
        model: make(model),
        prompt: 'What is the weather in Paris?',
        tools: { get_weather: tool({ description: 'Weather for a city', inputSchema: weatherSchema }) },
        onError: () => {},
      });
      const calls = [];
      for await (const part of r.fullStream) {
        if (part.type === 'error') throw part.error;
        if (part.type === 'tool-call') calls.push(part);
      }
      assert.equal(calls.length, 1);
      assert.equal(calls[0].toolName, 'get_weather');
      assert.deepEqual(calls[0].input, { location: 'Paris' });
      assert.equal(await r.finishReason, 'tool-calls');
    });
  }
}

// Anthropic structured outputs proper (output_config.format), which the AI
// SDK uses for the newer Claude models; forced here for every upstream.
for (const [model, family] of UPSTREAMS) {
  test(`generateObject with output_config.format, anthropic -> ${family}`, T, async () => {
    const r = await generateObject({
      ...COMMON,
      model: anthropic(model),
      schema: weatherSchema,
      prompt: 'Which city should I visit? Answer as JSON.',
      providerOptions: { anthropic: { structuredOutputMode: 'outputFormat' } },
    });
    assert.deepEqual(r.object, { location: 'Paris' });
    const schema = upstreamSchema(await upstreamLast());
    assert.ok(schema?.properties?.location, `the upstream got no schema: ${JSON.stringify(schema)}`);
  });
}

// Reasoning asked for through the Anthropic provider (thinking with a
// budget) reaches every upstream in its own form: Anthropic thinking,
// OpenAI reasoning_effort, Ollama think.
for (const [model, family] of UPSTREAMS) {
  test(`thinking budget reaches the upstream, anthropic -> ${family}`, T, async () => {
    await generateText({
      ...COMMON,
      model: anthropic(model),
      prompt: 'think about it',
      maxOutputTokens: 3000,
      providerOptions: { anthropic: { thinking: { type: 'enabled', budgetTokens: 1024 } } },
    });
    const { body } = await upstreamLast();
    if (family === 'anthropic') assert.deepEqual(body.thinking, { type: 'enabled', budget_tokens: 1024 });
    else if (family === 'openai') assert.ok(body.reasoning_effort, JSON.stringify(body));
    else assert.ok(body.think, JSON.stringify(body));
  });
}

// Prompt caching: the AI SDK's cacheControl marks reach an Anthropic
// upstream (Anthropic -> Anthropic keeps the client's body).
test('cache_control on system and user blocks reaches an Anthropic upstream', T, async () => {
  const cache = { anthropic: { cacheControl: { type: 'ephemeral' } } };
  const r = await generateText({
    ...COMMON,
    model: anthropic('claude-3-5-haiku-latest'),
    messages: [
      { role: 'system', content: 'A long and stable system prompt.', providerOptions: cache },
      { role: 'user', content: [{ type: 'text', text: 'cache me', providerOptions: cache }] },
    ],
  });
  assert.equal(r.text, expected('anthropic', 'cache me'));
  const { body } = await upstreamLast();
  const system = Array.isArray(body.system) ? body.system : [];
  assert.deepEqual(system.map((b) => b.cache_control), [{ type: 'ephemeral' }], JSON.stringify(body.system));
  const parts = body.messages[0].content;
  assert.deepEqual(parts[parts.length - 1].cache_control, { type: 'ephemeral' }, JSON.stringify(parts));
});

// Errors in the client's own format: the AI SDK reads the message from the
// error body of the API it called (a 404 naming the model).
for (const [label, make] of CLIENTS) {
  test(`an unknown model is an APICallError 404 naming the model, ${label}`, T, async () => {
    await assert.rejects(
      generateText({ ...COMMON, model: make('no-such-model'), prompt: 'hi' }),
      (err) => {
        assert.equal(err.statusCode, 404, `${err}`);
        assert.match(err.message, /no-such-model/);
        return true;
      },
    );
  });
}
