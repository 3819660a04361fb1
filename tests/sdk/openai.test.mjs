// The official OpenAI Node SDK against hapax (node:test).
//
// Run by tests/integration/test_sdk.py, which starts the mock provider and
// hapax and sets HAPAX_URL (e.g. http://127.0.0.1:8080). Models hapax must
// serve (all backed by tests/mock):
//   gpt-4o-mini              openai adapter (primary)
//   claude-3-5-haiku-latest  anthropic adapter
//   llama3.2                 ollama adapter
//   rl-model                 provider "ratelimited": endpoint /fault/429 (always 429, Retry-After)
//   bs-model                 provider "broken-stream": endpoint /fault/reset (streams break
//                            after two content chunks)
// The mock answers "Hello from the mock <family> provider. You said: <the
// first 8 words of the last user message>" in 8 chunks; with tools it calls
// get_weather({"location":"Paris"}).
//
// By hand: HAPAX_URL=http://127.0.0.1:8080 node --test tests/sdk/openai.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const HAPAX_URL = process.env.HAPAX_URL;
if (!HAPAX_URL) {
  throw new Error('HAPAX_URL is not set (e.g. HAPAX_URL=http://127.0.0.1:8080)');
}

const client = new OpenAI({
  baseURL: `${HAPAX_URL.replace(/\/$/, '')}/v1`,
  apiKey: 'sk-test-client-key',
  maxRetries: 0,
  timeout: 15000,
});

const T = { timeout: 20000 };
const expected = (family, said) =>
  `Hello from the mock ${family} provider. You said: ${said.split(/\s+/).slice(0, 8).join(' ')}`;

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
  },
};

test('chat.completions.create, non-streamed', T, async () => {
  const r = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hello from the sdk' }],
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'gpt-4o-mini');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, expected('openai', 'hello from the sdk'));
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.deepEqual(r.usage, { prompt_tokens: 4, completion_tokens: 8, total_tokens: 12 });
});

test('chat.completions.create with withResponse shows the serving provider', T, async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] })
    .withResponse();
  assert.equal(response.headers.get('x-hapax-provider'), 'ollama');
  assert.equal(response.headers.get('x-hapax-attempts'), '1');
  assert.equal(data.choices[0].message.content, expected('ollama', 'hi'));
});

for (const [model, family] of [
  ['gpt-4o-mini', 'openai'],
  ['claude-3-5-haiku-latest', 'anthropic'],
  ['llama3.2', 'ollama'],
]) {
  test(`chat.completions.create stream via ${family}`, T, async () => {
    const stream = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'stream this to me please' }],
      stream: true,
    });
    let text = '';
    let pieces = 0;
    let finish = null;
    let usageChunks = 0;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.usage) usageChunks++;
      const c = chunk.choices[0];
      if (!c) continue;
      if (c.delta?.content) {
        text += c.delta.content;
        pieces++;
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
    assert.equal(text, expected(family, 'stream this to me please'));
    assert.ok(pieces >= 2, `expected several deltas, got ${pieces}`);
    assert.equal(finish, 'stop');
    assert.equal(usageChunks, 0, 'no usage chunk unless asked for');
  });
}

test('stream with stream_options.include_usage ends with a usage chunk', T, async () => {
  const stream = await client.chat.completions.create({
    model: 'claude-3-5-haiku-latest',
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'count my words' },
    ],
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const last = chunks[chunks.length - 1];
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, { prompt_tokens: 5, completion_tokens: 8, total_tokens: 13 });
  assert.equal(chunks.filter((c) => c.usage).length, 1);
});

for (const [model, family] of [
  ['gpt-4o-mini', 'openai'],
  ['claude-3-5-haiku-latest', 'anthropic'],
  ['llama3.2', 'ollama'],
]) {
  test(`tool calls, non-streamed, via ${family}`, T, async () => {
    const r = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
      tools: [weatherTool],
    });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls');
    assert.equal(c.message.tool_calls.length, 1);
    const call = c.message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.ok(call.id);
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { location: 'Paris' });

    // and back: the tool result gets a text answer
    const r2 = await client.chat.completions.create({
      model,
      messages: [
        { role: 'user', content: 'What is the weather in Paris?' },
        c.message,
        { role: 'tool', tool_call_id: call.id, content: 'sunny, 21C' },
      ],
      tools: [weatherTool],
    });
    assert.equal(r2.choices[0].finish_reason, 'stop');
    assert.ok(r2.choices[0].message.content.startsWith(`Hello from the mock ${family} provider.`));
  });

  test(`tool calls, streamed deltas reassembled, via ${family}`, T, async () => {
    const stream = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
      tools: [weatherTool],
      stream: true,
    });
    const calls = new Map();
    let finish = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (!c) continue;
      for (const tc of c.delta?.tool_calls ?? []) {
        const acc = calls.get(tc.index) ?? { id: '', name: '', args: '' };
        if (tc.id) acc.id = tc.id;
        if (tc.function?.name) acc.name = tc.function.name;
        acc.args += tc.function?.arguments ?? '';
        calls.set(tc.index, acc);
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
    assert.deepEqual([...calls.keys()], [0]);
    const call = calls.get(0);
    assert.ok(call.id);
    assert.equal(call.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.args), { location: 'Paris' });
    assert.equal(finish, 'tool_calls');
  });
}

test('the stream helper (.stream / finalChatCompletion) works', T, async () => {
  const runner = client.beta.chat.completions.stream({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'use the helper' }],
  });
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].message.content, expected('openai', 'use the helper'));
  assert.equal(final.choices[0].finish_reason, 'stop');
});

test('unknown model -> NotFoundError (404, model_not_found)', T, async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
    (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 404);
      assert.equal(err.code, 'model_not_found');
      assert.match(err.message, /no-such-model/);
      return true;
    },
  );
});

test('a rate-limited provider -> RateLimitError (429) with Retry-After', T, async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'rl-model', messages: [{ role: 'user', content: 'hi' }] }),
    (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 429);
      assert.ok(err.headers['retry-after'], 'Retry-After is kept');
      return true;
    },
  );
});

test('an invalid request -> BadRequestError (400)', T, async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'gpt-4o-mini', messages: [] }),
    (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 400);
      return true;
    },
  );
});

test('a stream that breaks mid-way makes the SDK throw APIError', T, async () => {
  const stream = await client.chat.completions.create({
    model: 'bs-model',
    messages: [{ role: 'user', content: 'this stream will break' }],
    stream: true,
  });
  let text = '';
  await assert.rejects(
    (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    })(),
    (err) => {
      assert.ok(err instanceof OpenAI.APIError, `got ${err?.constructor?.name}: ${err}`);
      assert.ok(err.message, 'the error carries a message');
      return true;
    },
  );
  const full = expected('openai', 'this stream will break');
  assert.ok(text.length > 0 && full.startsWith(text) && text !== full, `partial text: ${JSON.stringify(text)}`);
});

test('legacy completions.create (prompt)', T, async () => {
  const r = await client.completions.create({ model: 'gpt-4o-mini', prompt: 'say this please', max_tokens: 20 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, expected('openai', 'say this please'));
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.usage.completion_tokens, 8);
});

test('legacy completions.create stream', T, async () => {
  const stream = await client.completions.create({ model: 'llama3.2', prompt: 'say this please', stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, expected('ollama', 'say this please'));
});

test('models.list', T, async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  for (const want of ['gpt-4o-mini', 'claude-3-5-haiku-latest', 'llama3.2', 'rl-model', 'bs-model']) {
    assert.ok(ids.includes(want), `${want} missing from ${JSON.stringify(ids)}`);
  }
});

test('models.retrieve (an Ollama model with its implied :latest tag too)', T, async () => {
  const m = await client.models.retrieve('gpt-4o-mini');
  assert.equal(m.id, 'gpt-4o-mini');
  assert.equal(m.object, 'model');
  assert.equal(typeof m.created, 'number');
  assert.equal(typeof m.owned_by, 'string');
  const tagged = await client.models.retrieve('llama3.2:latest');
  assert.equal(tagged.id, 'llama3.2:latest');
  await assert.rejects(client.models.retrieve('no-such-model'), (err) => {
    assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, 404);
    return true;
  });
});

// The mock's deterministic vector (tests/mock/README.md, "Deterministic embeddings").
const mockVector = (text, dims = 8) => {
  let h = 2166136261;
  for (const b of Buffer.from(text, 'utf8')) h = Math.imul(h ^ b, 16777619) >>> 0;
  return Array.from({ length: dims }, (_, j) => Number(((((h + 7919 * j) >>> 0) % 2001 - 1000) / 1000).toFixed(3)));
};

for (const [model, family] of [
  ['gpt-4o-mini', 'openai'],
  ['llama3.2', 'ollama'],
]) {
  // The SDK asks for base64 by default and decodes it: through Ollama the
  // gateway does the encoding.
  test(`embeddings.create via ${family} (SDK default: base64)`, T, async () => {
    const r = await client.embeddings.create({ model, input: ['first text', 'second'] });
    assert.equal(r.object, 'list');
    assert.equal(r.data.length, 2);
    assert.equal(r.data[1].index, 1);
    assert.deepEqual(Array.from(r.data[0].embedding), mockVector('first text').map(Math.fround));
    assert.deepEqual(Array.from(r.data[1].embedding), mockVector('second').map(Math.fround));
    assert.equal(r.usage.prompt_tokens, 3);
  });
}

test('embeddings.create with encoding_format float via ollama', T, async () => {
  const r = await client.embeddings.create({ model: 'llama3.2', input: 'plain floats', encoding_format: 'float' });
  assert.deepEqual(r.data[0].embedding, mockVector('plain floats'));
});

test('embeddings.create via an anthropic-only model is a BadRequestError naming why', T, async () => {
  await assert.rejects(
    client.embeddings.create({ model: 'claude-3-5-haiku-latest', input: 'x' }),
    (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err}`);
      assert.match(err.message, /has no embeddings API/);
      return true;
    },
  );
});

// ---- the Responses API (POST /v1/responses, GET/DELETE /v1/responses/{id}) ----

const responsesTool = {
  type: 'function',
  name: 'get_weather',
  description: 'Weather for a city',
  parameters: weatherTool.function.parameters,
  strict: false,
};

for (const [model, family] of [
  ['gpt-4o-mini', 'openai'],
  ['claude-3-5-haiku-latest', 'anthropic'],
  ['llama3.2', 'ollama'],
]) {
  test(`responses.create via ${family}`, T, async () => {
    const r = await client.responses.create({ model, instructions: 'Be brief.', input: 'hello from the responses api' });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.ok(r.id.startsWith('resp_'));
    assert.equal(r.output_text, expected(family, 'hello from the responses api'));
    assert.equal(r.usage.output_tokens, 8);
    assert.equal(r.usage.total_tokens, r.usage.input_tokens + 8);
  });

  test(`responses.stream via ${family}`, T, async () => {
    const stream = client.responses.stream({ model, input: 'stream the responses api' });
    const deltas = [];
    stream.on('response.output_text.delta', (e) => deltas.push(e.delta));
    const final = await stream.finalResponse();
    assert.equal(final.status, 'completed');
    assert.equal(deltas.join(''), expected(family, 'stream the responses api'));
    // (the SDK's stream helper adds no output_text: read the message)
    assert.equal(final.output[0].content[0].text, deltas.join(''));
  });
}

test('responses: a tool call, then its result through previous_response_id', T, async () => {
  const first = await client.responses.create({ model: 'claude-3-5-haiku-latest', input: 'weather in Paris?', tools: [responsesTool] });
  const call = first.output.find((o) => o.type === 'function_call');
  assert.ok(call, JSON.stringify(first.output));
  assert.equal(call.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.arguments), { location: 'Paris' });
  const second = await client.responses.create({
    model: 'llama3.2',
    previous_response_id: first.id,
    input: [{ type: 'function_call_output', call_id: call.call_id, output: 'sunny' }],
  });
  assert.equal(second.previous_response_id, first.id);
  assert.equal(second.status, 'completed');
});

test('responses: streamed tool call arguments', T, async () => {
  const stream = client.responses.stream({ model: 'gpt-4o-mini', input: 'weather?', tools: [responsesTool] });
  let args = '';
  stream.on('response.function_call_arguments.delta', (e) => (args += e.delta));
  const final = await stream.finalResponse();
  assert.deepEqual(JSON.parse(args), { location: 'Paris' });
  assert.equal(final.output.find((o) => o.type === 'function_call').arguments, args);
});

test('responses.retrieve and responses.del', T, async () => {
  const r = await client.responses.create({ model: 'gpt-4o-mini', input: 'keep this one' });
  const got = await client.responses.retrieve(r.id);
  assert.equal(got.id, r.id);
  assert.deepEqual(got.output, r.output);
  await client.responses.del(r.id);
  await assert.rejects(client.responses.retrieve(r.id), (err) => {
    assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name}: ${err}`);
    return true;
  });
});

test('responses: an unknown previous_response_id is a 404', T, async () => {
  await assert.rejects(
    client.responses.create({ model: 'gpt-4o-mini', input: 'x', previous_response_id: 'resp_unknown' }),
    (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name}: ${err}`);
      assert.match(err.message, /previous_response_id/);
      return true;
    },
  );
});

test('responses: a built-in tool is refused by name', T, async () => {
  await assert.rejects(
    client.responses.create({ model: 'llama3.2', input: 'x', tools: [{ type: 'web_search_preview' }] }),
    (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err}`);
      assert.match(err.message, /web_search_preview/);
      return true;
    },
  );
});

test('responses: a stream that breaks raises an APIError', T, async () => {
  const stream = await client.responses.create({ model: 'bs-model', input: 'this stream will break', stream: true });
  let text = '';
  await assert.rejects(
    (async () => {
      for await (const ev of stream) if (ev.type === 'response.output_text.delta') text += ev.delta;
    })(),
    (err) => {
      assert.ok(err instanceof OpenAI.APIError, `got ${err?.constructor?.name}: ${err}`);
      assert.match(err.message, /mid-stream/);
      return true;
    },
  );
  assert.ok(text.length > 0, 'some text arrived before the break');
});
