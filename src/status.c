/*
 * status.c - status text, detailed error records and the version functions.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *opecom_strerror(int status)
{
    switch (status) {
#define OPECOM_STATUS_TEXT_(name, value, text) \
    case value:                                \
        return text;
        OPECOM_STATUS_LIST(OPECOM_STATUS_TEXT_)
#undef OPECOM_STATUS_TEXT_
    default:
        return "unknown status";
    }
}

opecom_status opecom_fail(opecom_error *err, opecom_status status, int32_t feature,
                          int64_t row, int64_t offset, const char *fmt, ...)
{
    if (err == NULL)
        return status;
    err->status = status;
    err->feature = feature;
    err->row = row;
    err->offset = offset;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return status;
}

unsigned opecom_version(void) { return OPECOM_VERSION_NUMBER; }

const char *opecom_version_string(void) { return OPECOM_VERSION_STRING; }
