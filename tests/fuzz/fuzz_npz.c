/*
 * fuzz_npz.c - opecom-convert's .npz reader (zip + .npy, stored or
 * deflated) on arbitrary bytes: an error or tensors, never a crash.
 */
#include "../../tools/convert/convert.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cv_tensors ts = {0};
    cv_err e;
    cv_npz_read(data, size, &ts, &e);
    cv_tensors_free(&ts);
    return 0;
}
