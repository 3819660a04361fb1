/* libFuzzer entry point; HX_FUZZ_FN names the driver (tests/fuzz/meson.build). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return HX_FUZZ_FN(data, size);
}
