/* The model endpoints (models.c). */
#ifndef HX_GATEWAY_MODELS_H
#define HX_GATEWAY_MODELS_H

#include "http/request.h"

/* GET /v1/models: every name a request may use (handler "models"). */
void hx_handle_models(hx_req *r);
/* GET /v1/models/{id...}: one of them, 404 model_not_found otherwise
 * (handler "model"). */
void hx_handle_model(hx_req *r);

#endif
