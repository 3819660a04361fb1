// The official Anthropic TypeScript SDK against hapax's Messages API
// (POST /v1/messages), with node:test.
//
// Run by tests/integration/test_sdk.py, which starts the mock provider and
// hapax and sets HAPAX_URL (e.g. http://127.0.0.1:8080; the SDK appends
// /v1/messages). Models hapax must serve (all backed by tests/mock):
//   claude-3-5-haiku-latest  anthropic adapter
//   gpt-4o-mini              openai adapter (primary)
//   llama3.2                 ollama adapter
//   rl-model                 provider "ratelimited": endpoint /fault/429 (always 429, Retry-After)
//   bs-model                 provider "broken-stream": endpoint /fault/reset (streams break
//                            after two content chunks)
//   ant-400-model, ant-500-model, ant-529-model
//                            anthropic providers whose upstream always answers that status
// The mock answers "Hello from the mock <family> provider. You said: <the
// first 8 words of the last user message>" in 8 chunks; with tools it calls
// get_weather({"location":"Paris"}).
//
// By hand: HAPAX_URL=http://127.0.0.1:8080 node --test tests/sdk/anthropic.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';

const HAPAX_URL = process.env.HAPAX_URL;
if (!HAPAX_URL) {
  throw new Error('HAPAX_URL is not set (e.g. HAPAX_URL=http://127.0.0.1:8080)');
}

const client = new Anthropic({
  baseURL: HAPAX_URL.replace(/\/$/, ''),
  apiKey: 'any-key-hapax-does-not-check-it',
  maxRetries: 0,
  timeout: 15000,
});

const T = { timeout: 20000 };
const expected = (family, said) =>
  `Hello from the mock ${family} provider. You said: ${said.split(/\s+/).slice(0, 8).join(' ')}`;

const weatherTool = {
  name: 'get_weather',
  description: 'Weather for a city',
  input_schema: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
};

for (const [model, family] of [
  ['claude-3-5-haiku-latest', 'anthropic'],
  ['gpt-4o-mini', 'openai'],
  ['llama3.2', 'ollama'],
]) {
  test(`messages.create via ${family}`, T, async () => {
    const m = await client.messages.create({
      model,
      max_tokens: 256,
      system: 'You are terse.',
      messages: [{ role: 'user', content: 'hello from the anthropic sdk' }],
    });
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.model, model);
    assert.ok(m.id);
    assert.deepEqual(m.content, [{ type: 'text', text: expected(family, 'hello from the anthropic sdk') }]);
    assert.equal(m.stop_reason, 'end_turn');
    assert.equal(m.usage.input_tokens, 8);
    assert.equal(m.usage.output_tokens, 8);
  });

  test(`messages.stream -> finalMessage via ${family}`, T, async () => {
    const stream = client.messages.stream({
      model,
      max_tokens: 256,
      messages: [{ role: 'user', content: 'stream this one to me' }],
    });
    let text = '';
    let deltas = 0;
    stream.on('text', (t) => {
      text += t;
      deltas++;
    });
    const m = await stream.finalMessage();
    const want = expected(family, 'stream this one to me');
    assert.equal(text, want);
    assert.ok(deltas >= 2, `expected several text deltas, got ${deltas}`);
    assert.equal(m.content.length, 1);
    assert.equal(m.content[0].type, 'text');
    assert.equal(m.content[0].text, want);
    assert.equal(m.stop_reason, 'end_turn');
    assert.equal(m.usage.output_tokens, 8);
    assert.equal(m.usage.input_tokens, 5);
  });

  test(`tool_use round trip via ${family}`, T, async () => {
    const ask = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const m = await client.messages.create({ model, max_tokens: 256, tools: [weatherTool], messages: ask });
    assert.equal(m.stop_reason, 'tool_use');
    const uses = m.content.filter((b) => b.type === 'tool_use');
    assert.equal(uses.length, 1);
    assert.equal(uses[0].name, 'get_weather');
    assert.deepEqual(uses[0].input, { location: 'Paris' });
    assert.ok(uses[0].id);

    const m2 = await client.messages.create({
      model,
      max_tokens: 256,
      tools: [weatherTool],
      messages: [
        ...ask,
        { role: 'assistant', content: m.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: uses[0].id, content: 'sunny, 21C' }] },
      ],
    });
    assert.equal(m2.stop_reason, 'end_turn');
    assert.equal(m2.content[0].type, 'text');
    assert.ok(m2.content[0].text.startsWith(`Hello from the mock ${family} provider.`), m2.content[0].text);
  });

  test(`streamed tool_use via ${family}`, T, async () => {
    const stream = client.messages.stream({
      model,
      max_tokens: 256,
      tools: [weatherTool],
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
    });
    const m = await stream.finalMessage();
    assert.equal(m.stop_reason, 'tool_use');
    const uses = m.content.filter((b) => b.type === 'tool_use');
    assert.equal(uses.length, 1);
    assert.equal(uses[0].name, 'get_weather');
    assert.deepEqual(uses[0].input, { location: 'Paris' });
  });
}

test('unknown model -> NotFoundError (404)', T, async () => {
  await assert.rejects(
    client.messages.create({ model: 'no-such-model', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
    (err) => {
      assert.ok(err instanceof Anthropic.NotFoundError, `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 404);
      assert.match(err.message, /no-such-model/);
      return true;
    },
  );
});

test('a rate-limited provider -> RateLimitError (429)', T, async () => {
  await assert.rejects(
    client.messages.create({ model: 'rl-model', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
    (err) => {
      assert.ok(err instanceof Anthropic.RateLimitError, `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 429);
      assert.equal(err.type, 'rate_limit_error');
      return true;
    },
  );
});

test('an invalid request (no max_tokens) -> BadRequestError (400)', T, async () => {
  await assert.rejects(
    client.messages.create({ model: 'claude-3-5-haiku-latest', messages: [{ role: 'user', content: 'hi' }] }),
    (err) => {
      assert.ok(err instanceof Anthropic.BadRequestError, `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 400);
      return true;
    },
  );
});

test('a stream that breaks mid-way makes the SDK throw APIError', T, async () => {
  const stream = client.messages.stream({
    model: 'bs-model',
    max_tokens: 256,
    messages: [{ role: 'user', content: 'this stream will break' }],
  });
  let text = '';
  stream.on('text', (t) => {
    text += t;
  });
  // MessageStream also emits 'error'; without a listener it is re-thrown by finalMessage.
  stream.on('error', () => {});
  await assert.rejects(stream.finalMessage(), (err) => {
    assert.ok(err instanceof Anthropic.APIError, `got ${err?.constructor?.name}: ${err}`);
    return true;
  });
  const full = expected('openai', 'this stream will break');
  assert.ok(text.length > 0 && full.startsWith(text) && text !== full, `partial text: ${JSON.stringify(text)}`);
});

test('models.retrieve and models.list in the Anthropic shape', T, async () => {
  const m = await client.models.retrieve('claude-3-5-haiku-latest');
  assert.equal(m.type, 'model');
  assert.equal(m.id, 'claude-3-5-haiku-latest');
  assert.equal(m.display_name, 'claude-3-5-haiku-latest');
  assert.equal(typeof m.created_at, 'string');
  const ids = [];
  for await (const x of client.models.list()) ids.push(x.id);
  assert.ok(ids.includes('claude-3-5-haiku-latest') && ids.includes('llama3.2'), JSON.stringify(ids));
  await assert.rejects(client.models.retrieve('no-such-model'), (err) => {
    assert.ok(err instanceof Anthropic.NotFoundError, `got ${err?.constructor?.name}: ${err}`);
    return true;
  });
});

test('messages.countTokens via an anthropic provider (native)', T, async () => {
  const r = await client.messages.countTokens({
    model: 'claude-3-5-haiku-latest',
    system: 'be brief',
    messages: [{ role: 'user', content: 'count these four words' }],
  });
  assert.deepEqual(r, { input_tokens: 6 });
});

test('messages.countTokens via an ollama provider is an estimate', T, async () => {
  const { data, response } = await client.messages
    .countTokens({ model: 'llama3.2', messages: [{ role: 'user', content: 'abcdefgh' }] })
    .withResponse();
  assert.equal(response.headers.get('x-hapax-token-estimate'), 'true');
  assert.deepEqual(data, { input_tokens: 6 });
});

// Errors in Anthropic's own format (issue 10 item 5): the SDK's error class
// by status, its `type` from the body, `requestID` from the request-id header.
const hi = { max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] };
for (const [name, body, cls, status, type] of [
  ['an unknown model', { model: 'no-such-model', ...hi }, 'NotFoundError', 404, 'not_found_error'],
  ['no max_tokens', { model: 'claude-3-5-haiku-latest', messages: hi.messages }, 'BadRequestError', 400,
    'invalid_request_error'],
  ["the Anthropic upstream's own 400", { model: 'ant-400-model', ...hi }, 'BadRequestError', 400,
    'invalid_request_error'],
  ['an upstream 500', { model: 'ant-500-model', ...hi }, 'InternalServerError', 502, 'api_error'],
  ['an upstream 529 (overloaded)', { model: 'ant-529-model', ...hi }, 'InternalServerError', 502, 'api_error'],
]) {
  test(`${name} -> ${cls} with type ${type} and the request id`, T, async () => {
    await assert.rejects(client.messages.create(body), (err) => {
      assert.ok(err instanceof Anthropic[cls], `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, status);
      assert.equal(err.type, type);
      assert.equal(err.error.type, 'error');
      assert.equal(typeof err.error.error.message, 'string');
      assert.ok(!err.error.error.message.startsWith('{'), err.error.error.message); // readable, not escaped JSON
      assert.ok(err.requestID, 'no request-id header');
      assert.equal(err.requestID, err.headers.get('x-request-id'));
      assert.equal(err.error.request_id, err.requestID);
      return true;
    });
  });
}
