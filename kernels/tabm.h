/*
 * tabm.h - the TabM network as the kernels see it, and the kernel table.
 *
 * The loader (src/model_load.c) fills an opecom_tabm with pointers into the
 * mapped model file; a kernel runs the forward pass of n rows through all k
 * members and writes one logit per (row, member). Preprocessing, sigmoid and
 * averaging stay in src/: kernels only do the network.
 *
 * Shapes follow TABM.md: block l maps d_in_l -> d_block with one shared W_l
 * and per-member vectors r_l (input multiplier), s_l (output multiplier) and
 * bias c_l; member i computes relu(s_i * (W (r_i * h_i)) + c_i).
 */
#ifndef OPECOM_TABM_H
#define OPECOM_TABM_H

#include <stddef.h>
#include <stdint.h>

typedef struct opecom_tabm_layer {
    uint32_t d_in;
    uint32_t d_out;
    const float *w; /* [d_out, d_in], shared by all members */
    const float *r; /* [k, d_in], or NULL meaning all ones */
    const float *s; /* [k, d_out], or NULL meaning all ones */
    const float *b; /* [k, d_out] */
} opecom_tabm_layer;

typedef struct opecom_tabm {
    uint32_t k;
    uint32_t n_blocks;
    uint32_t d_in;
    uint32_t d_block;
    const opecom_tabm_layer *layers; /* [n_blocks] */
    const float *head_w;             /* [k, d_block] */
    const float *head_b;             /* [k] */
} opecom_tabm;

typedef struct opecom_kernel {
    const char *name;
    /* 1 when the running CPU can execute this kernel. */
    int (*supported)(void);
    /* Repacks the weights once at load into *packed (one block for free()),
     * or sets it to NULL when the kernel reads the weights in place.
     * @return 0, or -1 when out of memory. */
    int (*prepare)(const opecom_tabm *net, void **packed);
    /* Scratch floats forward() needs for n_rows rows. */
    size_t (*scratch_floats)(const opecom_tabm *net, size_t n_rows);
    /* x: [n_rows, d_in] encoded inputs; logits: [n_rows, k] out;
     * scratch: scratch_floats(net, n_rows) floats, 64-byte aligned. */
    void (*forward)(const opecom_tabm *net, const void *packed, const float *x, size_t n_rows,
                    float *logits, float *scratch);
} opecom_kernel;

/* Kernel by name: "scalar", "avx2", "avx512", or "auto" for the fastest one
 * this CPU runs.
 * @return NULL when the name is unknown or the CPU lacks what it needs. */
const opecom_kernel *opecom_kernel_find(const char *name);

/* CPU probes (dispatch.c, built without ISA flags). */
int opecom_cpu_has_avx2(void);
int opecom_cpu_has_avx512(void);

extern const opecom_kernel opecom_kernel_scalar;
extern const opecom_kernel opecom_kernel_avx2;
extern const opecom_kernel opecom_kernel_avx512;

#endif
