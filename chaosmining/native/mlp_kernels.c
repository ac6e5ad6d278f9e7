/* The training step of the symbolic MLP (float32, row-major, 1-4 threads), called by chaosmining.native.
 *
 * The trainer keeps activations feature-major: a (rows x cols) block holds one hidden unit per row and
 * one sample per column. cm_mlp_step takes the samples a cache-sized block at a time through the whole
 * forward and backward pass. Elementwise work is fused into single passes, and the activation's
 * derivative is computed during the forward pass, from the same exponential.
 *
 * The GELU follows PyTorch's CPU kernel: erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7) with a
 * polynomial exp, so the trained network is the one nn.GELU evaluates (chaosmining.native checks it
 * against float64 before use); with AVX-512 it is written with intrinsics, elsewhere as a portable loop.
 * Otherwise plain C and GCC vector extensions, written so that gcc -O3 -march=native vectorizes them for
 * the machine that compiles them.
 */
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { ACT_GELU = 0, ACT_RELU = 1, ACT_TANH = 2, ACT_ELU = 3 };

/* exp(x) for float32, Cephes' polynomial on [-ln2/2, ln2/2], about 1 ulp; x clamped to [-87, 88]. */
static inline float cm_exp(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* n = round(x / ln 2) by the 1.5 * 2^23 trick (floorf would stop gcc from vectorizing). */
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    float y = fmaf(p, r * r, r) + 1.0f;
    union { int32_t i; float f; } scale = {((int32_t)n + 127) << 23};
    return y * scale.f;
}

#if defined(__AVX512F__)
#include <immintrin.h>
#define S1 _mm512_set1_ps
/* GELU and its derivative on 16 lanes in about 29 vector operations (the portable loop below takes about
 * 36 and measured 1.5x slower). The same A&S 7.1.26 erfc as PyTorch, its 0.5 folded into the coefficients:
 * q = P(N(0,1) > |z|) = 0.5 t poly(t) exp(-z^2/2), cdf = 1 - q or q by the sign of z. exp(-z^2/2) = 2^a
 * with a = -z^2/2 log2(e), by a degree-6 fit of 2^f on [-1/2, 1/2] (8e-8 relative) and vscalefps, which
 * underflows to 0 for very negative a (clamped at -150 so that an infinite z^2 gives 0, not NaN). */
static inline void gelu16(__m512 z, __m512 *y, __m512 *d) {
    const __m512 one = S1(1.0f);
    const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(S1(0.3275911f * 0.70710678118654752f), _mm512_abs_ps(z), one));
    __m512 r = _mm512_fmadd_ps(S1(0.5f * 1.061405429f), t, S1(0.5f * -1.453152027f));
    r = _mm512_fmadd_ps(r, t, S1(0.5f * 1.421413741f));
    r = _mm512_fmadd_ps(r, t, S1(0.5f * -0.284496736f));
    r = _mm512_fmadd_ps(r, t, S1(0.5f * 0.254829592f));
    const __m512 a = _mm512_max_ps(_mm512_mul_ps(_mm512_mul_ps(z, z), S1(-0.72134752044448170f)), S1(-150.0f));
    const __m512 n = _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(a, n);
    __m512 p = S1(1.5469732170458883e-4f);
    p = _mm512_fmadd_ps(p, f, S1(1.3400432653725147e-3f));
    p = _mm512_fmadd_ps(p, f, S1(9.61802527308464e-3f));
    p = _mm512_fmadd_ps(p, f, S1(5.550327152013779e-2f));
    p = _mm512_fmadd_ps(p, f, S1(2.4022650718688965e-1f));
    p = _mm512_fmadd_ps(p, f, S1(6.931471824645996e-1f));
    p = _mm512_fmadd_ps(p, f, one);
    const __m512 e = _mm512_scalef_ps(p, n);
    const __m512 q = _mm512_mul_ps(_mm512_mul_ps(r, t), e);
    const __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 cdf = _mm512_mask_blend_ps(neg, _mm512_sub_ps(one, q), q);
    *y = _mm512_mul_ps(z, cdf);
    *d = _mm512_fmadd_ps(_mm512_mul_ps(z, S1(0.39894228040143268f)), e, cdf);
}

static void gelu_row(float *restrict yr, float *restrict dr, int64_t cols, float bias) {
    const __m512 b = S1(bias);
    int64_t j = 0;
    __m512 y, d;
    for (; j + 16 <= cols; j += 16) {
        gelu16(_mm512_add_ps(_mm512_loadu_ps(yr + j), b), &y, &d);
        _mm512_storeu_ps(yr + j, y);
        _mm512_storeu_ps(dr + j, d);
    }
    if (j < cols) {
        const __mmask16 m = (__mmask16)((1u << (cols - j)) - 1u);
        gelu16(_mm512_add_ps(_mm512_maskz_loadu_ps(m, yr + j), b), &y, &d);
        _mm512_mask_storeu_ps(yr + j, m, y);
        _mm512_mask_storeu_ps(dr + j, m, d);
    }
}
#endif

/* y = act(y + b[row]) in place, d = act'(y + b[row]); both (rows x cols) with row stride ld. */
static void bias_act(float *restrict y, const float *restrict b, float *restrict d, int64_t rows, int64_t cols,
                     int64_t ld, int act) {
    for (int64_t i = 0; i < rows; i++) {
        float *restrict yr = y + i * ld;
        float *restrict dr = d + i * ld;
        const float bi = b[i];
        switch (act) {
        case ACT_GELU:
#if defined(__AVX512F__)
            gelu_row(yr, dr, cols, bi);
            break;
#endif
            for (int64_t j = 0; j < cols; j++) {
                const float z = yr[j] + bi;
                const float x = z * 0.70710678118654752f;
                const float ax = fabsf(x);
                const float t = 1.0f / fmaf(0.3275911f, ax, 1.0f);
                float r = fmaf(1.061405429f, t, -1.453152027f);
                r = fmaf(r, t, 1.421413741f);
                r = fmaf(r, t, -0.284496736f);
                r = fmaf(r, t, 0.254829592f);
                const float e = cm_exp(-x * x);
                const float erf_abs = 1.0f - r * t * e;
                const float erf = copysignf(erf_abs, x);
                const float cdf = 0.5f * (1.0f + erf);
                yr[j] = z * cdf;
                dr[j] = fmaf(z * 0.39894228040143268f, e, cdf);
            }
            break;
        case ACT_RELU:
            for (int64_t j = 0; j < cols; j++) {
                const float z = yr[j] + bi;
                yr[j] = z > 0.0f ? z : 0.0f;
                dr[j] = z > 0.0f ? 1.0f : 0.0f;
            }
            break;
        case ACT_TANH:
            for (int64_t j = 0; j < cols; j++) {
                const float z = yr[j] + bi;
                const float e = cm_exp(-2.0f * fabsf(z));
                const float ta = (1.0f - e) / (1.0f + e);
                const float th = z < 0.0f ? -ta : ta;
                yr[j] = th;
                dr[j] = 1.0f - th * th;
            }
            break;
        case ACT_ELU:
            for (int64_t j = 0; j < cols; j++) {
                const float z = yr[j] + bi;
                const float em1 = cm_exp(z < 0.0f ? z : 0.0f) - 1.0f;
                yr[j] = z > 0.0f ? z : em1;
                dr[j] = z > 0.0f ? 1.0f : em1 + 1.0f;
            }
            break;
        }
    }
}

/* Backward through an activation: gz = ga * d, gb[row] += sum of gz over the row.
 * With w and g given (the scalar output layer), ga[i, j] = w[i] * g[j] * (mask ? mask[i, j] : 1) is
 * formed on the fly instead of read: the first hidden gradient never exists as a separate block. */
static void grad_act(const float *restrict ga, const float *restrict w, const float *restrict g,
                     const float *restrict mask, int64_t ld_mask, const float *restrict d, float *restrict gz,
                     float *restrict gb, int64_t rows, int64_t cols, int64_t ld) {
    for (int64_t i = 0; i < rows; i++) {
        const float *restrict dr = d + i * ld;
        float *restrict gr = gz + i * ld;
        float acc = 0.0f;
        if (ga != NULL) {
            const float *restrict ar = ga + i * ld;
#pragma omp simd reduction(+ : acc)
            for (int64_t j = 0; j < cols; j++) {
                const float v = ar[j] * dr[j];
                gr[j] = v;
                acc += v;
            }
        } else if (mask != NULL) {
            const float *restrict mr = mask + i * ld_mask;
            const float wi = w[i];
#pragma omp simd reduction(+ : acc)
            for (int64_t j = 0; j < cols; j++) {
                const float v = wi * g[j] * mr[j] * dr[j];
                gr[j] = v;
                acc += v;
            }
        } else {
            const float wi = w[i];
#pragma omp simd reduction(+ : acc)
            for (int64_t j = 0; j < cols; j++) {
                const float v = wi * g[j] * dr[j];
                gr[j] = v;
                acc += v;
            }
        }
        gb[i] += acc;
    }
}

void cm_bias_act(float *y, const float *b, float *d, int64_t rows, int64_t cols, int act) {
    bias_act(y, b, d, rows, cols, cols, act);
}

/* ---- Small matrix products with the layer's shapes ------------------------------------------------
 * The MLP's products are thin: a 100 x 100 weight against a block of a few hundred samples. A general
 * BLAS packs both operands on every call; these kernels keep a register tile of the output and read one
 * operand as scalars broadcast against rows of the other, which stay in the L1 cache. GCC's vector
 * extensions give 16-lane (AVX-512) or 8-lane registers, whichever the compiling machine has. The
 * number of output columns must be a multiple of VL (the step pads).
 */
#if defined(__AVX512F__)
#define VL 16
#define NV 4 /* vectors of output columns per tile */
#elif defined(__AVX__)
#define VL 8
#define NV 2
#else /* SSE, NEON: 128-bit registers */
#define VL 4
#define NV 2
#endif
#define NR 6 /* output rows per tile (6 x 4 AVX-512 accumulators measured fastest at width 100) */
typedef float vf __attribute__((vector_size(VL * 4), aligned(4), may_alias));
#define INLINE static inline __attribute__((always_inline))

/* C[0:nr, 0:nv*VL] (+)= A[0:nr, 0:k] B[0:k, 0:nv*VL]; A read as A[r * sar + p * sap] (a transposed view is free). */
INLINE void tile_nn(const int nr, const int nv, int64_t k, const float *A, int64_t sar, int64_t sap, const float *B,
                    int64_t ldb, float *C, int64_t ldc, int add) {
    vf acc[NR][NV];
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++)
            acc[r][v] = (vf){0};
    for (int64_t p = 0; p < k; p++) {
        vf bv[NV];
        for (int v = 0; v < nv; v++)
            bv[v] = *(const vf *)(B + p * ldb + v * VL);
        for (int r = 0; r < nr; r++) {
            const float a = A[r * sar + p * sap];
            for (int v = 0; v < nv; v++)
                acc[r][v] += a * bv[v];
        }
    }
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++) {
            vf *out = (vf *)(C + r * ldc + v * VL);
            if (add)
                *out += acc[r][v];
            else
                *out = acc[r][v];
        }
}

#define NN_CASE(R, V)                                                                                        \
    case (R) * 16 + (V):                                                                                      \
        tile_nn(R, V, k, A + i * sar, sar, sap, B + j, ldb, C + i * ldc + j, ldc, add);                     \
        break;
#if NV == 4
#define NN_ROW(R) NN_CASE(R, 1) NN_CASE(R, 2) NN_CASE(R, 3) NN_CASE(R, 4)
#else /* NV == 2 */
#define NN_ROW(R) NN_CASE(R, 1) NN_CASE(R, 2)
#endif

/* Row-major C (m x c) = A (m x k, strides sar, sap) B (k x c, row stride ldb), or C += that when add. */
static void mm_nn(int64_t m, int64_t k, int64_t c, const float *A, int64_t sar, int64_t sap, const float *B,
                  int64_t ldb, float *C, int64_t ldc, int add) {
    for (int64_t j = 0; j < c; j += NV * VL) {
        const int nv = (int)((c - j) / VL < NV ? (c - j) / VL : NV);
        for (int64_t i = 0; i < m; i += NR) {
            const int nr = (int)(m - i < NR ? m - i : NR);
            switch (nr * 16 + nv) {
                NN_ROW(1)
                NN_ROW(2)
                NN_ROW(3)
                NN_ROW(4)
                NN_ROW(5)
                NN_ROW(6)
            }
        }
    }
}

typedef int vi __attribute__((vector_size(VL * 4)));
#define PAD(x) (((x) + 15) / 16 * 16) /* widths and blocks are padded to 16 columns: any VL divides it */

/* T (cols x PAD(rows), row stride ldt) = S^T for S (rows x cols, row stride lds); cols is a multiple of VL.
 * VL x VL tiles are transposed in registers by log2(VL) perfect shuffles: row 2i becomes the interleaved
 * low halves of rows i and i + VL/2, row 2i + 1 their high halves. Rows of S past `rows` read as zeros,
 * so T's padding up to the next multiple of 16 is written as zeros on every vector width. */
static void transpose(const float *restrict S, int64_t lds, int64_t rows, int64_t cols, float *restrict T,
                      int64_t ldt) {
    vi lo, hi;
    for (int l = 0; l < VL / 2; l++) {
        lo[2 * l] = l;
        lo[2 * l + 1] = l + VL;
        hi[2 * l] = l + VL / 2;
        hi[2 * l + 1] = l + VL / 2 + VL;
    }
    for (int64_t i0 = 0; i0 < PAD(rows); i0 += VL)
        for (int64_t j0 = 0; j0 < cols; j0 += VL) {
            vf r[VL], t[VL];
            for (int i = 0; i < VL; i++)
                r[i] = i0 + i < rows ? *(const vf *)(S + (i0 + i) * lds + j0) : (vf){0};
            for (int stage = VL; stage > 1; stage /= 2) {
                for (int i = 0; i < VL / 2; i++) {
                    t[2 * i] = __builtin_shuffle(r[i], r[i + VL / 2], lo);
                    t[2 * i + 1] = __builtin_shuffle(r[i], r[i + VL / 2], hi);
                }
                for (int i = 0; i < VL; i++)
                    r[i] = t[i];
            }
            for (int j = 0; j < VL; j++)
                *(vf *)(T + (j0 + j) * ldt + i0) = r[j];
        }
}

/* ---- One training step of the whole MLP, over column blocks that stay in the L2 cache -------------- */

/* Columns c0 .. c0 + c of S (rows x ..., row stride lds) into D (row stride ldd), zeros up to column cp. */
static void copy_block(const float *restrict S, int64_t lds, int64_t rows, int64_t c0, int64_t c, int64_t cp,
                       float *restrict D, int64_t ldd) {
    for (int64_t i = 0; i < rows; i++) {
        memcpy(D + i * ldd, S + i * lds + c0, sizeof(float) * c);
        if (cp != c)
            memset(D + i * ldd + c, 0, sizeof(float) * (cp - c));
    }
}

enum { LOSS_MSE = 0, LOSS_BCE = 1 };

/* Loss of one block of predictions p (replaced by dL/dp) against targets y; returns the block's summed loss. */
static double loss_and_grad(float *restrict p, const float *restrict y, int64_t c, double inv_n, int loss) {
    double total = 0.0;
    for (int64_t j = 0; j < c; j++) {
        const float z = p[j];
        if (loss == LOSS_MSE) {
            const float r = z - y[j];
            total += (double)r * r;
            p[j] = (float)(2.0 * inv_n) * r;
        } else { /* softplus(z) - y z, the logit's binary cross-entropy; derivative sigmoid(z) - y */
            const float e = expf(-fabsf(z));
            total += (double)((z > 0.0f ? z : 0.0f) + log1pf(e) - y[j] * z);
            const float s = z >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
            p[j] = (float)inv_n * (s - y[j]);
        }
    }
    return total;
}

#define LANES 4 /* fixed partial sums: the same result on 1 to LANES threads */
#define MAX_LAYERS 64

typedef struct { /* one call's inputs */
    int64_t L, n, block, ldx, ldm, maxw, max_in;
    const int64_t *dims;
    const float *const *W, *const *b;
    const float *x, *y, *mask;
    int act, loss;
    double inv_n;
} Step;

typedef struct { /* a thread's scratch space for one block */
    float *H[MAX_LAYERS], *D[MAX_LAYERS], *GZ, *GA, *P, *T, *Xblock, *Mtail;
} Scratch;

typedef struct { /* a lane's partial sums over its range of blocks */
    float *GW[MAX_LAYERS + 1], *gb[MAX_LAYERS + 1]; /* GW[L]: the output row, gb[L]: its bias */
    double total;
    int64_t first, end; /* blocks [first, end) */
} Lane;

static int64_t scratch_size(const Step *s) {
    int64_t hidden = 0;
    for (int64_t l = 0; l < s->L; l++)
        hidden += s->dims[l + 1];
    return s->block * (2 * hidden + 2 * s->maxw + 1 + s->max_in + s->dims[0] + s->dims[s->L]);
}

static int64_t lane_size(const Step *s) {
    int64_t total = 0;
    for (int64_t l = 0; l < s->L; l++)
        total += s->dims[l + 1] * PAD(s->dims[l]) + s->dims[l + 1];
    return total + s->dims[s->L] + 1;
}

static void setup(Step *s, int64_t L, const int64_t *dims, int64_t block) {
    s->L = L;
    s->dims = dims;
    s->block = block;
    s->maxw = s->max_in = 0;
    for (int64_t l = 0; l < L; l++) {
        s->maxw = dims[l + 1] > s->maxw ? dims[l + 1] : s->maxw;
        s->max_in = PAD(dims[l]) > s->max_in ? PAD(dims[l]) : s->max_in;
    }
}

/* Floats of work space cm_mlp_step needs with `threads` threads. */
int64_t cm_work_size(int64_t L, const int64_t *dims, int64_t block, int64_t threads) {
    Step s;
    setup(&s, L, dims, block);
    return threads * scratch_size(&s) + LANES * lane_size(&s);
}

/* Forward and backward through every block of one lane, adding to the lane's partial sums. */
static void run_lane(const Step *s, const Scratch *w, Lane *lane) {
    const int64_t L = s->L, block = s->block, *dims = s->dims;
    const float *w_out = s->W[L];
    const float b_out = s->b[L][0];
    float *GZ = w->GZ, *GA = w->GA, *P = w->P;
    for (int64_t blk = lane->first; blk < lane->end; blk++) {
        const int64_t c0 = blk * block;
        const int64_t c = s->n - c0 < block ? s->n - c0 : block; /* real samples in this block */
        const int64_t cp = PAD(c);                                /* columns computed */
        /* the inputs are copied into contiguous rows (read in place, their rows lie n floats apart: a TLB
         * miss per row), the partial last block with zero padding, as is the mask of a partial block */
        const float *xb = w->Xblock, *mk = s->mask == NULL ? NULL : s->mask + c0;
        int64_t ldmb = s->ldm;
        copy_block(s->x, s->ldx, dims[0], c0, c, cp, w->Xblock, block);
        if (cp != c && mk != NULL) {
            copy_block(s->mask, s->ldm, dims[L], c0, c, cp, w->Mtail, block);
            mk = w->Mtail;
            ldmb = block;
        }
        const float *prev = xb;
        int64_t ld_prev = block;
        for (int64_t l = 0; l < L; l++) { /* H[l] = act(W[l] prev + b[l]), D[l] = act'(...) */
            mm_nn(dims[l + 1], dims[l], cp, s->W[l], dims[l], 1, prev, ld_prev, w->H[l], block, 0);
            bias_act(w->H[l], s->b[l], w->D[l], dims[l + 1], cp, block, s->act);
            prev = w->H[l];
            ld_prev = block;
        }
        for (int64_t j = 0; j < cp; j++)
            P[j] = b_out;
        for (int64_t i = 0; i < dims[L]; i++) { /* the scalar output: a weighted sum of rows, not a product */
            const float *restrict hr = w->H[L - 1] + i * block;
            const float wi = w_out[i];
            if (mk == NULL) {
                for (int64_t j = 0; j < cp; j++)
                    P[j] += wi * hr[j];
            } else {
                const float *restrict mr = mk + i * ldmb;
                for (int64_t j = 0; j < cp; j++)
                    P[j] += wi * hr[j] * mr[j];
            }
        }
        lane->total += loss_and_grad(P, s->y + c0, c, s->inv_n, s->loss); /* P[0:c] now holds dL/dpred */
        for (int64_t j = c; j < cp; j++)
            P[j] = 0.0f; /* padding: no gradient */
        float gsum = 0.0f;
        for (int64_t j = 0; j < c; j++)
            gsum += P[j];
        lane->gb[L][0] += gsum;
        for (int64_t i = 0; i < dims[L]; i++) {
            const float *restrict hr = w->H[L - 1] + i * block;
            float acc = 0.0f;
            if (mk == NULL) {
#pragma omp simd reduction(+ : acc)
                for (int64_t j = 0; j < cp; j++)
                    acc += P[j] * hr[j];
            } else {
                const float *restrict mr = mk + i * ldmb;
#pragma omp simd reduction(+ : acc)
                for (int64_t j = 0; j < cp; j++)
                    acc += P[j] * hr[j] * mr[j];
            }
            lane->GW[L][i] += acc;
        }
        for (int64_t l = L - 1; l >= 0; l--) {
            if (l == L - 1) /* GZ = (w_out g^T) * mask * D, without forming w_out g^T */
                grad_act(NULL, w_out, P, mk, ldmb, w->D[l], GZ, lane->gb[l], dims[l + 1], cp, block);
            else
                grad_act(GA, NULL, NULL, NULL, 0, w->D[l], GZ, lane->gb[l], dims[l + 1], cp, block);
            /* GW[l] += GZ in^T, as GZ (scalars) times in^T (rows): the input block transposed once */
            const float *in = l > 0 ? w->H[l - 1] : xb;
            transpose(in, block, dims[l], cp, w->T, PAD(dims[l]));
            mm_nn(dims[l + 1], cp, PAD(dims[l]), GZ, block, 1, w->T, PAD(dims[l]), lane->GW[l], PAD(dims[l]), 1);
            if (l > 0) /* GA = W[l]^T GZ */
                mm_nn(dims[l], dims[l + 1], cp, s->W[l], 1, dims[l], GZ, block, GA, block, 0);
        }
    }
}

typedef struct {
    const Step *step;
    Scratch scratch;
    Lane *lanes;
    int64_t thread, threads;
} Job;

static void *run_job(void *arg) {
    Job *job = arg;
    for (int64_t k = job->thread; k < LANES; k += job->threads)
        run_lane(job->step, &job->scratch, &job->lanes[k]);
    return NULL;
}

/* Forward and backward pass of the MLP on n samples; returns the mean loss and writes every gradient.
 *
 * L hidden layers; dims[0] inputs, dims[1..L] hidden widths, one output. W[l] is (dims[l+1] x dims[l])
 * row-major and b[l] has dims[l+1] entries; W[L] is the output row (dims[L]) and b[L] its bias. gW and gb
 * have the same shapes and are overwritten. x is (dims[0] x n) with row stride ldx (a sample per column),
 * y has n targets, mask is NULL or the last hidden layer's scaled dropout mask (dims[L] x n, stride ldm).
 * The samples are taken `block` columns at a time (a multiple of 16) so that a block's activations stay
 * in cache; the last, partial block is copied into zero padding whose loss gradient is zero. The blocks
 * are split into LANES contiguous ranges with their own partial sums, added in lane order at the end, and
 * `threads` (1..LANES) threads share the lanes: the result does not depend on the number of threads.
 * work: cm_work_size(L, dims, block, threads) floats.
 */
double cm_mlp_step(int64_t L, const int64_t *dims, const float *const *W, const float *const *b, float *const *gW,
                   float *const *gb, const float *x, int64_t ldx, const float *y, const float *mask, int64_t ldm,
                   int64_t n, int act, int loss, int64_t block, int64_t threads, float *work) {
    if (L < 1 || L > MAX_LAYERS || block < 16 || block % 16 || n < 1 || threads < 1 || threads > LANES)
        return NAN;
    Step s;
    setup(&s, L, dims, block);
    s.n = n;
    s.ldx = ldx;
    s.ldm = ldm;
    s.W = W;
    s.b = b;
    s.x = x;
    s.y = y;
    s.mask = mask;
    s.act = act;
    s.loss = loss;
    s.inv_n = 1.0 / (double)n;
    const int64_t n_blocks = (n + block - 1) / block;
    Lane lanes[LANES];
    float *w = work + threads * scratch_size(&s);
    for (int64_t k = 0; k < LANES; k++) {
        memset(w, 0, sizeof(float) * lane_size(&s));
        for (int64_t l = 0; l < L; l++) {
            lanes[k].GW[l] = w;
            w += dims[l + 1] * PAD(dims[l]);
            lanes[k].gb[l] = w;
            w += dims[l + 1];
        }
        lanes[k].GW[L] = w;
        w += dims[L];
        lanes[k].gb[L] = w;
        w += 1;
        lanes[k].total = 0.0;
        lanes[k].first = k * n_blocks / LANES;
        lanes[k].end = (k + 1) * n_blocks / LANES;
    }
    Job jobs[LANES];
    pthread_t tids[LANES];
    int started[LANES] = {0};
    for (int64_t t = 0; t < threads; t++) {
        jobs[t] = (Job){.step = &s, .lanes = lanes, .thread = t, .threads = threads};
        Scratch *sc = &jobs[t].scratch;
        float *p = work + t * scratch_size(&s);
        for (int64_t l = 0; l < L; l++) {
            sc->H[l] = p;
            p += dims[l + 1] * block;
            sc->D[l] = p;
            p += dims[l + 1] * block;
        }
        sc->GZ = p;
        sc->GA = sc->GZ + s.maxw * block;
        sc->P = sc->GA + s.maxw * block;
        sc->T = sc->P + block;
        sc->Xblock = sc->T + s.max_in * block;
        sc->Mtail = sc->Xblock + dims[0] * block;
        if (t > 0) /* a thread that cannot start leaves its lanes to the calling thread */
            started[t] = pthread_create(&tids[t], NULL, run_job, &jobs[t]) == 0;
    }
    run_job(&jobs[0]);
    for (int64_t t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            run_job(&jobs[t]);
    }
    double total = 0.0;
    for (int64_t l = 0; l <= L; l++) { /* lanes added in a fixed order */
        const int64_t rows = l < L ? dims[l + 1] : 1, cols = l < L ? dims[l] : dims[L];
        const int64_t ld = l < L ? PAD(dims[l]) : dims[L];
        for (int64_t i = 0; i < rows; i++) {
            for (int64_t j = 0; j < cols; j++) {
                float v = 0.0f;
                for (int64_t k = 0; k < LANES; k++)
                    v += lanes[k].GW[l][i * ld + j];
                gW[l][i * cols + j] = v;
            }
            float v = 0.0f;
            for (int64_t k = 0; k < LANES; k++)
                v += lanes[k].gb[l][i];
            gb[l][i] = v;
        }
    }
    for (int64_t k = 0; k < LANES; k++)
        total += lanes[k].total;
    return total * s.inv_n;
}

/* ---- The optimizer's step, in place over all of the MLP's tensors in one call ---------------------- */

enum { OPT_ADAM = 0 };

/* One step of `opt` on `count` float32 tensors of sizes[i] elements: parameters p, gradients g and the
 * optimizer's state m, v. OPT_ADAM is torch.optim.Adam without weight decay or amsgrad, in the order of
 * PyTorch's fused CPU kernel: m = m + (1 - beta1) (g - m) (its lerp), v = beta2 v + (1 - beta2) g^2,
 * p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps); `step` counts from 1. */
void cm_optimizer_step(int opt, int64_t count, const int64_t *sizes, float *const *p, const float *const *g,
                       float *const *m, float *const *v, double lr, double beta1, double beta2, double eps,
                       int64_t step) {
    if (opt != OPT_ADAM)
        return;
    const float step_size = (float)(lr / (1.0 - pow(beta1, (double)step)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, (double)step));
    const float c1 = (float)(1.0 - beta1), b2 = (float)beta2, c2 = (float)(1.0 - beta2), e = (float)eps;
    for (int64_t t = 0; t < count; t++) {
        float *restrict pt = p[t], *restrict mt = m[t], *restrict vt = v[t];
        const float *restrict gt = g[t];
        for (int64_t j = 0; j < sizes[t]; j++) {
            const float gj = gt[j];
            const float mj = fmaf(c1, gj - mt[j], mt[j]);
            const float vj = vt[j] * b2 + c2 * gj * gj;
            mt[j] = mj;
            vt[j] = vj;
            pt[j] -= step_size * mj / (sqrtf(vj) / bc2_sqrt + e);
        }
    }
}
