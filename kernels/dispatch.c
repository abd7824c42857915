/*
 * dispatch.c - picks a forward-pass kernel by name. "auto" means the fastest
 * kernel the running CPU supports. The choice is made once, at model load,
 * and stored in the model: there is no global state.
 *
 * The CPU probes live here, in a file built without -mavx2, so that nothing
 * compiled for AVX2 runs before the probe said it may.
 */
#include <string.h>

#include "tabm.h"

static const opecom_kernel *const kernels[] = {
    /* fastest first: "auto" takes the first one the CPU supports */
    &opecom_kernel_avx512,
    &opecom_kernel_avx2,
    &opecom_kernel_scalar,
};

const opecom_kernel *opecom_kernel_find(const char *name)
{
    const size_t n = sizeof kernels / sizeof kernels[0];
    int any = name == NULL || strcmp(name, "auto") == 0;
    for (size_t i = 0; i < n; i++) {
        if (any || strcmp(name, kernels[i]->name) == 0)
            if (kernels[i]->supported())
                return kernels[i];
        if (!any && strcmp(name, kernels[i]->name) == 0)
            return NULL;
    }
    return NULL;
}

int opecom_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int opecom_cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && opecom_cpu_has_avx2();
}
