// The official SDKs against hapax with client API keys and rate limits on
// (auth.enabled, rate_limit.enabled): the SDK's own apiKey is the hapax
// key, and hapax's 401 / 403 / 429 reach the caller as the SDK's typed
// errors.
//
// Run by tests/integration/test_sdk.py (SdkAuthTest), which sets:
//   HAPAX_URL    hapax with auth and rate limits on
//   KEY_GOOD     a key that may use every model
//   KEY_NARROW   a key limited to gpt-4o-mini
//   KEY_TIGHT    a key with a bucket of one request
// Models: gpt-4o-mini (openai adapter), claude-3-5-haiku-latest (anthropic).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const { HAPAX_URL, KEY_GOOD, KEY_NARROW, KEY_TIGHT } = process.env;
if (!HAPAX_URL || !KEY_GOOD || !KEY_NARROW || !KEY_TIGHT) {
  throw new Error('HAPAX_URL, KEY_GOOD, KEY_NARROW and KEY_TIGHT must be set');
}
const base = HAPAX_URL.replace(/\/$/, '');
const T = { timeout: 20000 };
const openai = (apiKey) => new OpenAI({ baseURL: `${base}/v1`, apiKey, maxRetries: 0, timeout: 15000 });
const anthropic = (apiKey) => new Anthropic({ baseURL: base, apiKey, maxRetries: 0, timeout: 15000 });
const ask = { messages: [{ role: 'user', content: 'keys please' }] };

test('openai: the hapax key is the SDK apiKey', T, async () => {
  const r = await openai(KEY_GOOD).chat.completions.create({ model: 'gpt-4o-mini', ...ask });
  assert.match(r.choices[0].message.content, /^Hello from the mock openai provider/);
});

test('openai: a wrong key is an AuthenticationError (401)', T, async () => {
  await assert.rejects(openai('sk-not-a-hapax-key').chat.completions.create({ model: 'gpt-4o-mini', ...ask }),
    (err) => err instanceof OpenAI.AuthenticationError && err.status === 401 &&
      err.headers['www-authenticate']?.startsWith('Bearer'));
});

test('openai: a model outside the key\'s list is a PermissionDeniedError (403)', T, async () => {
  const r = await openai(KEY_NARROW).chat.completions.create({ model: 'gpt-4o-mini', ...ask });
  assert.equal(r.choices[0].finish_reason, 'stop');
  await assert.rejects(
    openai(KEY_NARROW).chat.completions.create({ model: 'claude-3-5-haiku-latest', ...ask }),
    (err) => err instanceof OpenAI.PermissionDeniedError && err.status === 403);
});

test('openai: an empty bucket is a RateLimitError (429) with Retry-After', T, async () => {
  await openai(KEY_TIGHT).chat.completions.create({ model: 'gpt-4o-mini', ...ask });
  await assert.rejects(openai(KEY_TIGHT).chat.completions.create({ model: 'gpt-4o-mini', ...ask }),
    (err) => err instanceof OpenAI.RateLimitError && err.status === 429 &&
      Number(err.headers['retry-after']) >= 1 && err.headers['ratelimit-remaining'] === '0');
});

test('openai: streaming with a key', T, async () => {
  const stream = await openai(KEY_GOOD).chat.completions.create({ model: 'gpt-4o-mini', stream: true, ...ask });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.match(text, /^Hello from the mock openai provider/);
});

test('anthropic: the key travels as x-api-key', T, async () => {
  const r = await anthropic(KEY_GOOD).messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 64, ...ask });
  assert.match(r.content[0].text, /^Hello from the mock anthropic provider/);
});

test('anthropic: a wrong key is an AuthenticationError (401)', T, async () => {
  await assert.rejects(
    anthropic('not-a-hapax-key').messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 64, ...ask }),
    (err) =>
      err instanceof Anthropic.AuthenticationError &&
      err.status === 401 &&
      err.type === 'authentication_error' &&
      err.requestID === err.headers.get('x-request-id'));
});
