/*
 * explain.c - Shapley explanations of one prediction (opecom_explain) and
 * the global importance over many (opecom_explain_importance).
 *
 * The game: players are the raw features (a categorical feature's whole
 * one-hot block is one player), and for baseline row b (encoded z_b, weight
 * w_b) the value of a coalition S is f(x on S, z_b elsewhere), f the model's
 * probability. The explanation is sum_b w_b * phi(game b). A feature whose
 * encoded columns equal z_b's is a null player of game b (it gets exactly 0
 * there), so game b is played by the m_b features that differ only.
 *
 * Every network row goes through one queue: a row is built in ws->ex_row,
 * copied into ws->x with a record of what it is (ws->ex_rec), and when
 * max_rows rows are queued the kernel runs them at once and a consumer folds
 * each probability into the contributions, in queue order. The queue starts
 * with x itself and the baseline rows, so f(x) and f(z_b) are known before
 * any coalition that needs them is consumed.
 *
 *   exact        per baseline row, the coalitions of its m_b players in Gray
 *                code order (each differs from the last by one feature, so a
 *                row is one feature's columns patched), every v(S) added to
 *                each player with its Shapley weight: no storage of v.
 *   permutation  per baseline row, n_b random orderings, each walked
 *                forwards and backwards (antithetic pairs), each step's
 *                marginal v(S + j) - v(S) credited to j with weight
 *                w_b / (2 n_b). A walk telescopes to f(x) - f(z_b), so the
 *                contributions add up to f(x) - f(baseline) by construction.
 *
 * The endpoints v(empty) = f(z_b) and v(all) = f(x) are added last, per
 * baseline row; a final adjustment spreads whatever rounding left of
 * f(x) - f(baseline) - sum(phi) (of order 1e-16) over the contributions.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

#define ALIGN 64
#define NONE UINT32_MAX

/* opecom_explain_rec.flags */
#define REC_X 1u     /* the row is x itself */
#define REC_BASE 2u  /* the row is baseline row `base` */
#define REC_START 4u /* permutation: first step of a walk (previous value f(z_base)) */
#define REC_EXACT 8u /* exact: `who` is a coalition mask over the row's players */

typedef struct ex_ctx {
    const opecom_model *m;
    opecom_workspace *ws;
    double *phi;        /* [n_features], the caller's, accumulating */
    size_t queued;      /* rows waiting in ws->x */
    uint64_t evals;
    double fx;          /* f(x) */
    double prev;        /* permutation: value before the current step */
    uint32_t cur_base;  /* exact: baseline row whose players are in ws->ex_perm */
    uint32_t cur_m;
    int overflow;       /* a network output was not finite */
    uint64_t rng;
} ex_ctx;

/* ========================================================================= *
 * Helpers
 * ========================================================================= */

static uint32_t width_of(const opecom_feature *F)
{
    return F->type == OPECOM_FEATURE_NUMERIC ? 1 : F->n_items;
}

/* The features whose encoded columns differ between x and z, into players.
 * @return their number. */
static uint32_t differing(const opecom_model *m, const float *x, const float *z,
                          uint32_t *players)
{
    uint32_t n = 0;
    for (uint32_t f = 0; f < m->n_features; f++) {
        const opecom_feature *F = &m->features[f];
        if (memcmp(x + F->col, z + F->col, sizeof(float) * width_of(F)) != 0)
            players[n++] = f;
    }
    return n;
}

/* Copies feature f's columns from src into row. */
static void put_feature(const opecom_model *m, float *row, const float *src, uint32_t f)
{
    const opecom_feature *F = &m->features[f];
    memcpy(row + F->col, src + F->col, sizeof(float) * width_of(F));
}

/* Baseline row b's weight, normalised: the file's weights sum to 1 only
 * within 1e-6, and efficiency must hold to rounding. */
static double weight(const opecom_model *m, uint32_t b)
{
    return m->baseline_w[b] / m->baseline_wsum;
}

static const float *base_row(const opecom_model *m, uint32_t b)
{
    return m->baseline_x + (size_t)b * m->d_in;
}

/* splitmix64: small, fast, and the same sequence everywhere for a seed. */
static uint64_t next_random(ex_ctx *c)
{
    uint64_t z = (c->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Shapley weights of an m-player game: coef[s] = s! (m-s-1)! / m!
 * = 1 / (m * C(m-1, s)), for s = 0 .. m-1. */
static void shapley_weights(uint32_t m, double *coef)
{
    double binom = 1.0; /* C(m-1, s) */
    for (uint32_t s = 0; s < m; s++) {
        coef[s] = 1.0 / ((double)m * binom);
        binom = binom * (double)(m - 1 - s) / (double)(s + 1);
    }
}

/* ========================================================================= *
 * The queue
 * ========================================================================= */

static void consume(ex_ctx *c, const opecom_explain_rec *r, double p)
{
    const opecom_model *m = c->m;
    opecom_workspace *ws = c->ws;
    if (r->flags & REC_X) {
        c->fx = p;
        return;
    }
    if (r->flags & REC_BASE) {
        ws->ex_fb[r->base] = p;
        return;
    }
    if (r->flags & REC_EXACT) {
        if (r->base != c->cur_base) {
            c->cur_base = r->base;
            c->cur_m = differing(m, ws->ex_x, base_row(m, r->base), ws->ex_perm);
            shapley_weights(c->cur_m, ws->ex_coef);
        }
        double wv = weight(m, r->base) * p;
        uint32_t s = (uint32_t)__builtin_popcount(r->who);
        double in = wv * ws->ex_coef[s - 1], out = -wv * ws->ex_coef[s];
        for (uint32_t i = 0; i < c->cur_m; i++)
            c->phi[ws->ex_perm[i]] += (r->who >> i & 1u) ? in : out;
        return;
    }
    double wf = ws->ex_wf[r->base];
    if (r->flags & REC_START)
        c->prev = ws->ex_fb[r->base];
    c->phi[r->who] += wf * (p - c->prev);
    c->prev = p;
    if (r->tail != NONE)
        c->phi[r->tail] += wf * (c->fx - p);
}

/* Runs the queued rows through the network and consumes them in order. */
static void flush(ex_ctx *c)
{
    const opecom_model *m = c->m;
    opecom_workspace *ws = c->ws;
    if (c->queued == 0)
        return;
    m->kernel->forward(&m->net, m->packed, ws->x, c->queued, ws->logits, ws->scratch);
    for (size_t i = 0; i < c->queued; i++) {
        const float *l = ws->logits + i * m->k;
        double sum = 0.0;
        for (uint32_t j = 0; j < m->k; j++) {
            if (!isfinite(l[j]))
                c->overflow = 1;
            sum += 1.0 / (1.0 + exp(-(double)l[j]));
        }
        consume(c, &ws->ex_rec[i], sum / m->k);
    }
    c->evals += c->queued;
    c->queued = 0;
}

/* Queues ws->ex_row. */
static void emit(ex_ctx *c, uint32_t who, uint32_t base, uint32_t tail, uint32_t flags)
{
    opecom_workspace *ws = c->ws;
    memcpy(ws->x + c->queued * c->m->d_in, ws->ex_row, sizeof(float) * c->m->d_in);
    ws->ex_rec[c->queued] = (opecom_explain_rec){who, base, tail, flags};
    if (++c->queued == ws->max_rows)
        flush(c);
}

/* ========================================================================= *
 * Estimators
 * ========================================================================= */

/* Every coalition strictly between none and all of baseline row b's players. */
static void run_exact(ex_ctx *c, uint32_t b)
{
    const opecom_model *m = c->m;
    opecom_workspace *ws = c->ws;
    const float *z = base_row(m, b);
    uint32_t n = differing(m, ws->ex_x, z, ws->ex_players);
    if (n < 2)
        return;
    uint32_t full = (uint32_t)((1ull << n) - 1), mask = 0;
    memcpy(ws->ex_row, z, sizeof(float) * m->d_in);
    for (uint64_t i = 1; i <= full; i++) {
        uint32_t bit = (uint32_t)__builtin_ctzll(i);
        uint32_t f = ws->ex_players[bit];
        mask ^= 1u << bit;
        put_feature(m, ws->ex_row, (mask >> bit & 1u) ? ws->ex_x : z, f);
        if (mask != full)
            emit(c, mask, b, NONE, REC_EXACT);
    }
}

/* n_pairs antithetic pairs of walks over baseline row b's players: a random
 * ordering walked forwards, then the same ordering backwards. */
static void run_walks(ex_ctx *c, uint32_t b, uint64_t n_pairs)
{
    const opecom_model *m = c->m;
    opecom_workspace *ws = c->ws;
    const float *z = base_row(m, b);
    uint32_t *p = ws->ex_players;
    uint32_t n = differing(m, ws->ex_x, z, p);
    if (n < 2)
        return;
    for (uint64_t walk = 0; walk < 2 * n_pairs; walk++) {
        int backwards = walk % 2 == 1;
        if (!backwards) {
            for (uint32_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
                uint32_t j = (uint32_t)(next_random(c) % (i + 1));
                uint32_t t = p[i];
                p[i] = p[j];
                p[j] = t;
            }
        }
        memcpy(ws->ex_row, z, sizeof(float) * m->d_in);
        for (uint32_t t = 0; t + 1 < n; t++) {
            uint32_t f = backwards ? p[n - 1 - t] : p[t];
            uint32_t last = backwards ? p[0] : p[n - 1];
            put_feature(m, ws->ex_row, ws->ex_x, f);
            emit(c, f, b, t + 2 == n ? last : NONE, t == 0 ? REC_START : 0);
        }
    }
}

/* The default budget: OPECOM_EXPLAIN_DEFAULT_FLOPS of network work. */
static uint64_t default_evals(const opecom_model *m)
{
    double d = m->d_block;
    double flops = 2.0 * m->k * ((double)m->d_in * d + (double)(m->n_blocks - 1) * d * d + d);
    double n = OPECOM_EXPLAIN_DEFAULT_FLOPS / flops;
    return n >= OPECOM_EXPLAIN_MAX_DEFAULT_EVALS ? OPECOM_EXPLAIN_MAX_DEFAULT_EVALS
           : n < 1.0                             ? 1
                                                 : (uint64_t)n;
}

/* ========================================================================= *
 * Entry points
 * ========================================================================= */

static opecom_status explain_one(const opecom_model *m, opecom_workspace *ws,
                                 const opecom_value *row, int64_t row_index,
                                 const opecom_explain_options *opts, opecom_explanation *out,
                                 double *phi, opecom_error *err)
{
    opecom_explain_options o = {OPECOM_ESTIMATOR_AUTO, 0, 0};
    if (opts != NULL)
        o = *opts;
    if (o.estimator != OPECOM_ESTIMATOR_AUTO && o.estimator != OPECOM_ESTIMATOR_EXACT &&
        o.estimator != OPECOM_ESTIMATOR_PERMUTATION)
        return opecom_fail(err, OPECOM_EINVAL, -1, row_index, -1, "unknown estimator %d",
                           (int)o.estimator);
    uint64_t budget = o.max_evals ? o.max_evals : default_evals(m);

    opecom_result res;
    opecom_status st = opecom_encode_row(m, row, row_index, ws->ex_x, &res, err);
    if (st != OPECOM_OK)
        return st;
    memset(out, 0, sizeof *out);
    out->n_unknown = res.n_unknown;
    out->unknown_mask = res.unknown_mask;

    /* Cost of each estimator, from the players of every baseline row. */
    uint32_t nb = m->n_baseline, max_m = 0;
    uint64_t exact_cost = 1 + (uint64_t)nb;
    double eligible_w = 0.0;
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t n = differing(m, ws->ex_x, base_row(m, b), ws->ex_players);
        max_m = n > max_m ? n : max_m;
        if (n >= 2) {
            eligible_w += weight(m, b);
            if (n <= OPECOM_EXPLAIN_MAX_EXACT)
                exact_cost += (1ull << n) - 2;
        }
    }
    int exact = o.estimator == OPECOM_ESTIMATOR_EXACT ||
                (o.estimator == OPECOM_ESTIMATOR_AUTO && max_m <= OPECOM_EXPLAIN_MAX_EXACT &&
                 exact_cost <= budget);
    if (exact && max_m > OPECOM_EXPLAIN_MAX_EXACT)
        return opecom_fail(err, OPECOM_EINVAL, -1, row_index, -1,
                           "exact explanation of %u differing features needs 2^%u coalitions "
                           "per baseline row; at most %d features: use permutation sampling",
                           max_m, max_m, OPECOM_EXPLAIN_MAX_EXACT);

    ex_ctx c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.ws = ws;
    c.phi = phi;
    c.cur_base = NONE;
    c.rng = o.seed;
    memset(phi, 0, sizeof(double) * m->n_features);

    /* Share the sampling budget out by weight: n_b antithetic pairs for row
     * b, each costing 2 (m_b - 1) network rows, at least one pair. */
    double spare = (double)budget - 1.0 - (double)nb;
    for (uint32_t b = 0; b < nb && !exact; b++) {
        uint32_t n = differing(m, ws->ex_x, base_row(m, b), ws->ex_players);
        ws->ex_wf[b] = 0.0;
        if (n < 2)
            continue;
        double share = spare * weight(m, b) / eligible_w / (2.0 * (n - 1));
        ws->ex_wf[b] = share < 1.0 ? 1.0 : floor(share + 0.5); /* pairs; weight below */
    }

    memcpy(ws->ex_row, ws->ex_x, sizeof(float) * m->d_in);
    emit(&c, NONE, nb, NONE, REC_X);
    for (uint32_t b = 0; b < nb; b++) {
        memcpy(ws->ex_row, base_row(m, b), sizeof(float) * m->d_in);
        emit(&c, NONE, b, NONE, REC_BASE);
    }
    for (uint32_t b = 0; b < nb; b++) {
        if (exact) {
            run_exact(&c, b);
        } else if (ws->ex_wf[b] > 0.0) {
            uint64_t pairs = (uint64_t)ws->ex_wf[b];
            ws->ex_wf[b] = weight(m, b) / (2.0 * (double)pairs);
            run_walks(&c, b, pairs);
        }
    }
    flush(&c);
    if (c.overflow)
        return opecom_fail(err, OPECOM_EVALUE, -1, row_index, -1,
                           "the network's output is not finite on a coalition of this row "
                           "(the model's weights overflow float32)");

    /* Endpoints: v(all) = f(x) and v(none) = f(z_b), each 1/m_b to every
     * player of row b; for m_b = 1 that is the whole difference. */
    double base = 0.0;
    for (uint32_t b = 0; b < nb; b++) {
        double w = weight(m, b), fb = ws->ex_fb[b];
        uint32_t n = differing(m, ws->ex_x, base_row(m, b), ws->ex_players);
        base += w * fb;
        if (n == 0 || (!exact && n >= 2))
            continue; /* walks already telescope to f(x) - f(z_b) */
        for (uint32_t i = 0; i < n; i++)
            phi[ws->ex_players[i]] += w * (c.fx - fb) / n;
    }

    /* Efficiency to the last bit: spread the rounding left over. */
    double sum = 0.0, mass = 0.0;
    for (uint32_t f = 0; f < m->n_features; f++) {
        sum += phi[f];
        mass += fabs(phi[f]);
    }
    double gap = (c.fx - base) - sum;
    if (gap != 0.0 && mass > 0.0)
        for (uint32_t f = 0; f < m->n_features; f++)
            phi[f] += gap * fabs(phi[f]) / mass;

    out->status = OPECOM_OK;
    out->probability = c.fx;
    out->baseline = base;
    out->estimator = exact ? OPECOM_ESTIMATOR_EXACT : OPECOM_ESTIMATOR_PERMUTATION;
    out->evaluations = c.evals;
    return OPECOM_OK;
}

/* Checks the common arguments and finds a workspace (the caller's, or one in
 * `stack`). */
static opecom_status prepare(const opecom_model *m, opecom_workspace **ws, void *stack,
                             size_t stack_size, opecom_error *err)
{
    if (m->n_baseline == 0)
        return opecom_fail(err, OPECOM_ENOBASELINE, -1, -1, -1,
                           "the model has no explanation baseline: convert it from a spec "
                           "with a \"baseline\" (tools/baseline.py adds one)");
    if (*ws == NULL)
        return opecom_workspace_fit(m, stack, stack_size, ws, err);
    if ((*ws)->model != m)
        return opecom_fail(err, OPECOM_EWORKSPACE, -1, -1, -1,
                           "workspace was made for another model");
    return OPECOM_OK;
}

opecom_status opecom_explain(const opecom_model *m, opecom_workspace *ws, const opecom_value *row,
                             const opecom_explain_options *opts, opecom_explanation *out,
                             double *contribution, opecom_error *err)
{
    if (m == NULL || row == NULL || out == NULL || contribution == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                           "model, row, out and contribution must not be NULL");
    _Alignas(ALIGN) unsigned char stack[OPECOM_STACK_WORKSPACE];
    opecom_status s = prepare(m, &ws, stack, sizeof stack, err);
    if (s == OPECOM_OK)
        s = explain_one(m, ws, row, -1, opts, out, contribution, err);
    if (s != OPECOM_OK)
        out->status = s;
    return s;
}

opecom_status opecom_explain_importance(const opecom_model *m, opecom_workspace *ws,
                                        const opecom_value *rows, size_t n_rows,
                                        const opecom_explain_options *opts, double *importance,
                                        opecom_error *err)
{
    if (m == NULL || (rows == NULL && n_rows > 0) || importance == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                           "model, rows and importance must not be NULL");
    _Alignas(ALIGN) unsigned char stack[OPECOM_STACK_WORKSPACE];
    opecom_status s = prepare(m, &ws, stack, sizeof stack, err);
    if (s != OPECOM_OK)
        return s;
    memset(importance, 0, sizeof(double) * m->n_features);
    for (size_t r = 0; r < n_rows; r++) {
        opecom_explanation e;
        s = explain_one(m, ws, rows + r * m->n_features, (int64_t)r, opts, &e, ws->ex_phi, err);
        if (s != OPECOM_OK)
            return s;
        for (uint32_t f = 0; f < m->n_features; f++)
            importance[f] += fabs(ws->ex_phi[f]);
    }
    for (uint32_t f = 0; f < m->n_features && n_rows > 0; f++)
        importance[f] /= (double)n_rows;
    return OPECOM_OK;
}
