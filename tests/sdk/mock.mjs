// What the upstream (tests/mock) received, for the SDK tests: MOCK_URL is
// the mock's base URL (set by tests/integration/test_sdk.py).
import assert from 'node:assert/strict';

const MOCK_URL = process.env.MOCK_URL;

// The last provider request: {method, path, query, headers, body}.
export async function upstreamLast() {
  assert.ok(MOCK_URL, 'MOCK_URL is not set');
  const r = await fetch(`${MOCK_URL}/_mock/last`);
  assert.equal(r.status, 200);
  const last = await r.json();
  // a health probe (GET /v1/models) in between would hide the SDK's request
  assert.equal(last?.method, 'POST', `the last upstream request is not an API call: ${JSON.stringify(last)}`);
  return last;
}

// The one tool a request forces: named by tool_choice, or the only tool when
// tool_choice demands some tool (Anthropic "any", OpenAI "required").
function forcedTool(b) {
  const tc = b.tool_choice;
  const tools = Array.isArray(b.tools) ? b.tools : [];
  const name = tc?.name ?? tc?.function?.name;
  if (name) return tools.find((t) => (t.name ?? t.function?.name) === name);
  if ((tc?.type === 'any' || tc === 'required') && tools.length === 1) return tools[0];
  return undefined;
}

// The JSON schema the upstream was asked to answer with, in whichever form
// its wire format carries structured output: OpenAI response_format or a
// forced function; Anthropic output_config.format (or the beta
// output_format) or a forced tool; Ollama format, or the only tool (Ollama
// has no tool_choice). undefined when the request carries none.
export function upstreamSchema(last) {
  const b = last.body ?? {};
  if (last.path.endsWith('/api/chat')) {
    if (b.format && typeof b.format === 'object') return b.format;
    return b.tools?.length === 1 ? b.tools[0].function?.parameters : undefined;
  }
  if (last.path.endsWith('/v1/messages')) {
    const fmt = b.output_config?.format ?? b.output_format;
    if (fmt) return fmt.schema;
    return forcedTool(b)?.input_schema;
  }
  if (b.response_format) return b.response_format.json_schema?.schema;
  return forcedTool(b)?.function?.parameters;
}
