/* Embeddings (OpenAI, Ollama) and Anthropic token counting of the mock. */
#ifndef MOCK_EMBED_H
#define MOCK_EMBED_H

#include <json-c/json.h>

#include "mock_formats.h"

/* The answer to an embeddings body: OpenAI's list (ollama = 0) or Ollama's
 * /api/embed object. Returns 200 with out filled, or 400 with *err set. */
int me_embeddings(int ollama, json_object *body, mbuf *out, const char **err);
/* {"input_tokens": N}: N = words of the messages' texts and the system. */
int me_count_tokens(json_object *body, mbuf *out, const char **err);

#endif
