/*
 * fuzz_spec.c - opecom-convert's JSON spec parser on arbitrary text: an
 * error naming the key, or a spec, never a crash.
 */
#include <stdlib.h>
#include <string.h>

#include "../../tools/convert/convert.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    cv_spec spec;
    cv_err e;
    if (cv_spec_parse(text, size, &spec, &e) == 0)
        cv_spec_free(&spec);
    free(text);
    return 0;
}
