/* Shared by the Ollama adapter's files: ollama.c (chat) and
 * ollama_embed.c (OpenAI embeddings through /api/embed). */
#ifndef HX_PROVIDER_OLLAMA_INT_H
#define HX_PROVIDER_OLLAMA_INT_H

#include "provider/adapter.h"

/* URL (base + path), method and the optional Bearer key of a request. */
int hx_oll_start_request(const hx_provider *p, const char *path, const char *method, hx_up_request *out);

extern const hx_translated hx_oll_embeddings;

#endif
