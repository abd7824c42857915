/*
 * dispatch.c - picks a forward-pass kernel by name. "auto" means the fastest
 * kernel the running CPU supports; the choice is made once at model load and
 * stored in the model (no global state).
 */
#include <string.h>

#include "tabm.h"

const opecom_kernel *opecom_kernel_find(const char *name)
{
    if (name == NULL || strcmp(name, "auto") == 0 || strcmp(name, "scalar") == 0)
        return &opecom_kernel_scalar;
    return NULL;
}
