/*
 * fuzz_safetensors.c - opecom-convert's .safetensors reader on arbitrary
 * bytes: an error or tensors, never a crash.
 */
#include "../../tools/convert/convert.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cv_tensors ts = {0};
    cv_err e;
    cv_safetensors_read(data, size, &ts, &e);
    cv_tensors_free(&ts);
    return 0;
}
