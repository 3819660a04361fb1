// LangChain JS (`@langchain/openai` ChatOpenAI, `@langchain/anthropic`
// ChatAnthropic) against hapax (node:test).
//
// Run by tests/integration/test_sdk.py, which starts the mock provider and
// hapax and sets HAPAX_URL (hapax) and MOCK_URL (the mock, for /_mock/last:
// what the upstream received). Models hapax must serve (all backed by
// tests/mock): gpt-4o-mini (openai adapter), claude-3-5-haiku-latest
// (anthropic adapter), llama3.2 (ollama adapter).
//
// ChatOpenAI calls POST /v1/chat/completions (with useResponsesApi POST
// /v1/responses), ChatAnthropic POST /v1/messages; each against each upstream: invoke, stream, bindTools (a
// tool call and its result, also streamed) and withStructuredOutput (the
// methods each class offers: ChatOpenAI a JSON schema and a forced tool,
// ChatAnthropic a forced tool).
// The mock answers "Hello from the mock <family> provider. You said: <the
// first 8 words of the last user message>" in 8 chunks; with tools it calls
// get_weather({"location":"Paris"}) (or the tool tool_choice names); asked
// for structured output it answers {"location":"Paris"}.
//
// By hand: HAPAX_URL=http://127.0.0.1:8080 MOCK_URL=http://127.0.0.1:9999 \
//          node --test tests/sdk/langchain.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatOpenAI } from '@langchain/openai';
import { ChatAnthropic } from '@langchain/anthropic';
import { HumanMessage, ToolMessage } from '@langchain/core/messages';
import { tool } from '@langchain/core/tools';
import { z } from 'zod';
import { upstreamLast, upstreamSchema } from './mock.mjs';

const HAPAX_URL = process.env.HAPAX_URL;
const MOCK_URL = process.env.MOCK_URL;
if (!HAPAX_URL || !MOCK_URL) {
  throw new Error('HAPAX_URL and MOCK_URL must be set (e.g. HAPAX_URL=http://127.0.0.1:8080)');
}
const root = HAPAX_URL.replace(/\/$/, '');

const CLIENTS = [
  // [label, model name -> chat model, withStructuredOutput methods]
  ['ChatOpenAI',
    (model) => new ChatOpenAI({ model, apiKey: 'sk-test-client-key', maxRetries: 0, timeout: 15000,
                                configuration: { baseURL: `${root}/v1` } }),
    ['jsonSchema', 'functionCalling']],
  // the same class on the Responses API (POST /v1/responses), as LangChain
  // switches to for built-in tools and some models
  ['ChatOpenAI (Responses API)',
    (model) => new ChatOpenAI({ model, apiKey: 'sk-test-client-key', maxRetries: 0, timeout: 15000,
                                useResponsesApi: true, configuration: { baseURL: `${root}/v1` } }),
    ['jsonSchema', 'functionCalling']],
  ['ChatAnthropic',
    (model) => new ChatAnthropic({ model, apiKey: 'any-key-hapax-does-not-check-it', maxRetries: 0,
                                   anthropicApiUrl: root, clientOptions: { timeout: 15000 } }),
    // @langchain/anthropic 0.3.x (the line that runs on Node 18) has no native
    // JSON-schema output: method 'jsonSchema' silently sends the same forced
    // tool, so testing it would prove nothing; ai-sdk.test.mjs covers Anthropic
    // output_config.format
    ['functionCalling']],
];
const UPSTREAMS = [
  ['gpt-4o-mini', 'openai'],
  ['claude-3-5-haiku-latest', 'anthropic'],
  ['llama3.2', 'ollama'],
];

const T = { timeout: 20000 };
const expected = (family, said) =>
  `Hello from the mock ${family} provider. You said: ${said.split(/\s+/).slice(0, 8).join(' ')}`;
const words = (s) => s.split(/\s+/).filter(Boolean).length;

const weatherSchema = z.object({ location: z.string().describe('a city') });
const weatherTool = tool(async ({ location }) => `sunny in ${location}`, {
  name: 'get_weather',
  description: 'Weather for a city',
  schema: weatherSchema,
});

const text = (content) =>
  typeof content === 'string' ? content : content.filter((p) => p.type === 'text').map((p) => p.text).join('');

for (const [label, make, methods] of CLIENTS) {
  for (const [model, family] of UPSTREAMS) {
    const tag = `${label} -> ${family}`;

    test(`invoke, ${tag}`, T, async () => {
      const said = 'hello from langchain js';
      const m = await make(model).invoke([['system', 'Be brief.'], ['human', said]]);
      assert.equal(text(m.content), expected(family, said));
      assert.equal(m.usage_metadata.input_tokens, words(said) + 2);
      assert.equal(m.usage_metadata.output_tokens, 8);
      assert.equal(m.usage_metadata.total_tokens, words(said) + 2 + 8);
      assert.equal((await upstreamLast()).body.model, model);
    });

    test(`stream, ${tag}`, T, async () => {
      const said = 'stream this to me please';
      let acc;
      let pieces = 0;
      for await (const chunk of await make(model).stream(said)) {
        if (text(chunk.content)) pieces++;
        acc = acc ? acc.concat(chunk) : chunk;
      }
      assert.equal(text(acc.content), expected(family, said));
      assert.ok(pieces >= 2, `expected several chunks, got ${pieces}`);
      // ChatAnthropic takes input_tokens from message_start only; an OpenAI or
      // Ollama upstream tells them at the end of its stream, so hapax can put
      // them in the final message_delta only (which the AI SDK reads: see
      // ai-sdk.test.mjs "streamText, anthropic -> openai")
      if (!label.startsWith('ChatAnthropic') || family === 'anthropic') {
        assert.equal(acc.usage_metadata?.input_tokens, words(said), JSON.stringify(acc.usage_metadata));
      }
      // An Anthropic upstream's stream is relayed as it is: its message_start
      // already counts 1 output token and ChatAnthropic adds it to the 8 of
      // message_delta (the same against Anthropic itself).
      const relayed = label.startsWith('ChatAnthropic') && family === 'anthropic';
      assert.equal(acc.usage_metadata?.output_tokens, relayed ? 9 : 8);
    });

    test(`bindTools: a tool call and its result, ${tag}`, T, async () => {
      const llm = make(model).bindTools([weatherTool]);
      const question = new HumanMessage('What is the weather in Paris?');
      const ai = await llm.invoke([question]);
      assert.equal(ai.tool_calls.length, 1);
      const call = ai.tool_calls[0];
      assert.equal(call.name, 'get_weather');
      assert.deepEqual(call.args, { location: 'Paris' });
      assert.ok(call.id);
      const result = await weatherTool.invoke(call);
      assert.ok(result instanceof ToolMessage);
      const answer = await llm.invoke([question, ai, result]);
      assert.ok(text(answer.content).startsWith(`Hello from the mock ${family} provider.`), text(answer.content));
      assert.deepEqual(answer.tool_calls, []);
      // the tool result reached the upstream with the call's id and content
      const msgs = (await upstreamLast()).body.messages;
      assert.ok(JSON.stringify(msgs).includes('sunny in Paris'), JSON.stringify(msgs));
    });

    test(`bindTools, streamed tool call, ${tag}`, T, async () => {
      const llm = make(model).bindTools([weatherTool]);
      let acc;
      for await (const chunk of await llm.stream('What is the weather in Paris?')) {
        acc = acc ? acc.concat(chunk) : chunk;
      }
      assert.equal(acc.tool_calls.length, 1, JSON.stringify(acc.tool_call_chunks));
      assert.equal(acc.tool_calls[0].name, 'get_weather');
      assert.deepEqual(acc.tool_calls[0].args, { location: 'Paris' });
      assert.ok(acc.tool_calls[0].id);
    });

    for (const method of methods) {
      test(`withStructuredOutput (${method}), ${tag}`, T, async () => {
        const llm = make(model).withStructuredOutput(weatherSchema, { method, name: 'weather' });
        const r = await llm.invoke('Which city should I visit?');
        assert.deepEqual(r, { location: 'Paris' });
        const schema = upstreamSchema(await upstreamLast());
        assert.ok(schema?.properties?.location, `the upstream got no schema: ${JSON.stringify(schema)}`);
      });
    }
  }
}

// Errors in the client's own format, so LangChain (and the SDK under it)
// shows what went wrong: a 404 naming the model; the Anthropic client gets
// Anthropic's error envelope and a request-id header.
test('unknown model, ChatOpenAI: NotFoundError naming the model', T, async () => {
  await assert.rejects(CLIENTS[0][1]('no-such-model').invoke('hi'), (err) => {
    assert.equal(err.status, 404, `${err}`);
    assert.equal(err.lc_error_code, 'MODEL_NOT_FOUND');
    assert.match(err.message, /no-such-model/);
    return true;
  });
});

test('unknown model, ChatAnthropic: Anthropic error envelope and request-id', T, async () => {
  await assert.rejects(CLIENTS[2][1]('no-such-model').invoke('hi'), (err) => {
    assert.equal(err.status, 404, `${err}`);
    assert.equal(err.lc_error_code, 'MODEL_NOT_FOUND');
    assert.equal(err.error?.type, 'error', JSON.stringify(err.error));
    assert.equal(err.error?.error?.type, 'not_found_error', JSON.stringify(err.error));
    assert.match(err.error.error.message, /no-such-model/);
    assert.ok(err.requestID, 'no request-id header');
    return true;
  });
});
