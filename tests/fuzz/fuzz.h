/*
 * fuzz.h - the libFuzzer entry point every target in tests/fuzz defines.
 * `make fuzz` links each target with libFuzzer (clang); `make test` links it
 * with replay.c instead, which feeds it the committed corpus.
 */
#ifndef OPECOM_FUZZ_H
#define OPECOM_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
