// The multiply-accumulate kernels of decode and prefill, compiled for three instruction-set
// levels and chosen at run time: a portable baseline (any x86-64, or any other CPU), AVX2 with
// FMA, and AVX-512F. The binaries run on every x86-64 CPU; each CPU gets the widest level it has.
//
// Within one level every output element is computed by the same instruction sequence whatever
// the tile, batch or thread split (see the Swift callers), so a sequence's values do not depend
// on what else is in the batch. Levels differ from each other only by rounding (FMA, lane count).
#include "kernel_support.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif

#define INLINE static inline __attribute__((always_inline))

// How far ahead (in weight rows) the streaming product prefetches, and the weight rows per tile.
#define PREFETCH_ROWS 8
#define TILE_WEIGHT_ROWS 3

// MARK: - Baseline (portable vectors: SSE2 on x86-64, NEON on Arm; separate multiply and add)

typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));

INLINE v8 load8(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
INLINE v16 load16(const float *p) { v16 v; memcpy(&v, p, sizeof v); return v; }
INLINE void store16(float *p, v16 v) { memcpy(p, &v, sizeof v); }
INLINE float sum8(v8 a) {
    float s0 = (a[0] + a[4]) + (a[2] + a[6]);
    float s1 = (a[1] + a[5]) + (a[3] + a[7]);
    return s0 + s1;
}

/// Multiply-accumulate without fusing: two statements, so no contraction into an FMA.
#define MAC(acc, a, b) do { __typeof__(acc) t_ = (a) * (b); (acc) = (acc) + t_; } while (0)


/// One step of a tile: LANES values of k for every (input row, weight row) pair of the tile.
#define TILE_STEP(VEC, LOAD, MAC, off)                                                               \
    do {                                                                                             \
        VEC v0 = LOAD(w0 + (off));                                                                   \
        VEC v1 = r > 1 ? LOAD(w1 + (off)) : z;                                                       \
        VEC v2 = r > 2 ? LOAD(w2 + (off)) : z;                                                       \
        VEC u0 = LOAD(x0 + (off));                                                                   \
        MAC(a00, u0, v0); if (r > 1) MAC(a01, u0, v1); if (r > 2) MAC(a02, u0, v2);                  \
        if (m > 1) { VEC u1 = LOAD(x1 + (off)); MAC(a10, u1, v0); if (r > 1) MAC(a11, u1, v1); if (r > 2) MAC(a12, u1, v2); } \
        if (m > 2) { VEC u2 = LOAD(x2 + (off)); MAC(a20, u2, v0); if (r > 1) MAC(a21, u2, v1); if (r > 2) MAC(a22, u2, v2); } \
        if (m > 3) { VEC u3 = LOAD(x3 + (off)); MAC(a30, u3, v0); if (r > 1) MAC(a31, u3, v1); if (r > 2) MAC(a32, u3, v2); } \
    } while (0)

/// One register tile of the streaming product: `m` (1…4) input rows × `r` (1…3) weight rows, for
/// a vector type of LANES floats. Every output element has its own accumulator that runs over k
/// in the same order, then the same lane sum and scalar tail, whatever the tile shape; so an
/// element's value does not depend on the tile, the batch or the thread split. Called with
/// constant m and r, so unused rows cost nothing. The first input group prefetches weight rows
/// PREFETCH_ROWS ahead, one cache line per 64 bytes consumed.
#define DEFINE_TILE(NAME, ATTR, VEC, LANES, ZERO, LOAD, MAC, HSUM, TAIL_MAC)                          \
    INLINE ATTR void NAME(const float *x, const int m, long ldx, const float *w, const int r, long cols, \
                          float *y, long ldy, int accumulate, int prefetch) {                        \
        const long body = cols & ~(long)(LANES - 1);                                                 \
        const long ahead = PREFETCH_ROWS * cols;                                                     \
        const float *x0 = x, *x1 = x + (m > 1 ? 1 : 0) * ldx, *x2 = x + (m > 2 ? 2 : m - 1) * ldx,   \
                    *x3 = x + (m > 3 ? 3 : m - 1) * ldx;                                             \
        const float *w0 = w, *w1 = w + (r > 1 ? 1 : 0) * cols, *w2 = w + (r > 2 ? 2 : r - 1) * cols; \
        const VEC z = ZERO;                                                                          \
        VEC a00 = z, a01 = z, a02 = z, a10 = z, a11 = z, a12 = z;                                    \
        VEC a20 = z, a21 = z, a22 = z, a30 = z, a31 = z, a32 = z;                                    \
        long k = 0;                                                                                  \
        for (; k + 2 * LANES <= body; k += 2 * LANES) {                                              \
            if (prefetch) {                                                                          \
                for (int p_ = 0; p_ < 2 * LANES; p_ += 16) {                                         \
                    __builtin_prefetch(w0 + k + p_ + ahead, 0, 3);                                   \
                    if (r > 1) __builtin_prefetch(w1 + k + p_ + ahead, 0, 3);                        \
                    if (r > 2) __builtin_prefetch(w2 + k + p_ + ahead, 0, 3);                        \
                }                                                                                    \
            }                                                                                        \
            TILE_STEP(VEC, LOAD, MAC, k);                                                            \
            TILE_STEP(VEC, LOAD, MAC, k + LANES);                                                    \
        }                                                                                            \
        for (; k < body; k += LANES) TILE_STEP(VEC, LOAD, MAC, k);                                   \
        const VEC acc[4][3] = {{a00, a01, a02}, {a10, a11, a12}, {a20, a21, a22}, {a30, a31, a32}};  \
        const float *xs[4] = {x0, x1, x2, x3}, *ws[3] = {w0, w1, w2};                                \
        for (int i = 0; i < m; i++) {                                                                \
            for (int j = 0; j < r; j++) {                                                            \
                float s_ = HSUM(acc[i][j]);                                                          \
                for (long t = body; t < cols; t++) s_ = TAIL_MAC(ws[j][t], xs[i][t], s_);            \
                float *out = y + i * ldy + j;                                                        \
                *out = accumulate ? *out + s_ : s_;                                                  \
            }                                                                                        \
        }                                                                                            \
    }

INLINE float tail_mac_base(float w, float x, float s) { float p = w * x; return s + p; }
DEFINE_TILE(tile_base, , v8, 8, ((v8){0}), load8, MAC, sum8, tail_mac_base)

/// The tile loop shared by every level: weight rows in groups of 3, input rows in groups of 4,
/// each (m, r) shape a call with constant arguments so the tile is specialized.
#define PRODUCT_LOOP(TILE)                                                                      \
    for (long j = row_begin; j < row_end;) {                                                   \
        long r = row_end - j < TILE_WEIGHT_ROWS ? row_end - j : TILE_WEIGHT_ROWS;              \
        for (long i0 = 0; i0 < n;) {                                                           \
            long m = n - i0 < 4 ? n - i0 : 4;                                                  \
            const float *xs = x + i0 * ldx; float *ys = y + i0 * ldy + j; const float *ws = w + j * cols; \
            int pf = i0 == 0;                                                                  \
            switch (m * 4 + r) {                                                               \
            case 4 * 4 + 3: TILE(xs, 4, ldx, ws, 3, cols, ys, ldy, accumulate, pf); break;     \
            case 4 * 4 + 2: TILE(xs, 4, ldx, ws, 2, cols, ys, ldy, accumulate, pf); break;     \
            case 4 * 4 + 1: TILE(xs, 4, ldx, ws, 1, cols, ys, ldy, accumulate, pf); break;     \
            case 3 * 4 + 3: TILE(xs, 3, ldx, ws, 3, cols, ys, ldy, accumulate, pf); break;     \
            case 3 * 4 + 2: TILE(xs, 3, ldx, ws, 2, cols, ys, ldy, accumulate, pf); break;     \
            case 3 * 4 + 1: TILE(xs, 3, ldx, ws, 1, cols, ys, ldy, accumulate, pf); break;     \
            case 2 * 4 + 3: TILE(xs, 2, ldx, ws, 3, cols, ys, ldy, accumulate, pf); break;     \
            case 2 * 4 + 2: TILE(xs, 2, ldx, ws, 2, cols, ys, ldy, accumulate, pf); break;     \
            case 2 * 4 + 1: TILE(xs, 2, ldx, ws, 1, cols, ys, ldy, accumulate, pf); break;     \
            case 1 * 4 + 3: TILE(xs, 1, ldx, ws, 3, cols, ys, ldy, accumulate, pf); break;     \
            case 1 * 4 + 2: TILE(xs, 1, ldx, ws, 2, cols, ys, ldy, accumulate, pf); break;     \
            default: TILE(xs, 1, ldx, ws, 1, cols, ys, ldy, accumulate, pf); break;            \
            }                                                                                  \
            i0 += m;                                                                           \
        }                                                                                      \
        j += r;                                                                                \
    }

static void product_base(const float *x, long n, long ldx, const float *w, long cols, long row_begin,
                         long row_end, float *y, long ldy, int accumulate) {
    PRODUCT_LOOP(tile_base)
}

/// Scores of `causalRowBlock` (6) query rows against 16 packed keys at a time.
static void causal_scores_base(const float *const q[6], const float *keysT, long ldk, long keys, long head_dim,
                               float scale, float *scores) {
    for (long j = 0; j < keys; j += 16) {
        v16 a[6] = {{0}};
        const float *kp = keysT + j;
        for (long d = 0; d < head_dim; d++) {
            v16 k = load16(kp);
            for (int r = 0; r < 6; r++) MAC(a[r], k, q[r][d]);
            kp += ldk;
        }
        for (int r = 0; r < 6; r++) store16(scores + r * ldk + j, a[r] * scale);
    }
}

static void causal_values_base(const float *values, long ldv, long keys, const float *scores, long ldk,
                               long head_dim, long rows, float *out, long ldo) {
    for (long c = 0; c < head_dim; c += 16) {
        v16 o[6] = {{0}};
        const float *vp = values + c;
        for (long j = 0; j < keys; j++) {
            v16 v = load16(vp);
            for (int r = 0; r < 6; r++) MAC(o[r], v, scores[r * ldk + j]);
            vp += ldv;
        }
        for (long r = 0; r < rows; r++) store16(out + r * ldo + c, o[r]);
    }
}

#if defined(__x86_64__)

// MARK: - AVX2 + FMA (8 lanes)

INLINE TARGET_AVX2 float hsum256(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}


#define MAC_FMA256(acc, a, b) ((acc) = _mm256_fmadd_ps((a), (b), (acc)))
#define MAC_FMA512(acc, a, b) ((acc) = _mm512_fmadd_ps((a), (b), (acc)))
DEFINE_TILE(tile_avx2, TARGET_AVX2, __m256, 8, _mm256_setzero_ps(), _mm256_loadu_ps, MAC_FMA256, hsum256, __builtin_fmaf)

TARGET_AVX2 static void product_avx2(const float *x, long n, long ldx, const float *w, long cols, long row_begin,
                                     long row_end, float *y, long ldy, int accumulate) {
    PRODUCT_LOOP(tile_avx2)
}

TARGET_AVX2 static void causal_scores_avx2(const float *const q[6], const float *keysT, long ldk, long keys,
                                           long head_dim, float scale, float *scores) {
    const __m256 sc = _mm256_set1_ps(scale);
    for (long j = 0; j < keys; j += 16) {
        __m256 a[6][2];
        for (int r = 0; r < 6; r++) a[r][0] = a[r][1] = _mm256_setzero_ps();
        const float *kp = keysT + j;
        for (long d = 0; d < head_dim; d++) {
            __m256 k0 = _mm256_loadu_ps(kp), k1 = _mm256_loadu_ps(kp + 8);
            for (int r = 0; r < 6; r++) {
                __m256 qb = _mm256_broadcast_ss(q[r] + d);
                a[r][0] = _mm256_fmadd_ps(k0, qb, a[r][0]);
                a[r][1] = _mm256_fmadd_ps(k1, qb, a[r][1]);
            }
            kp += ldk;
        }
        for (int r = 0; r < 6; r++) {
            _mm256_storeu_ps(scores + r * ldk + j, _mm256_mul_ps(a[r][0], sc));
            _mm256_storeu_ps(scores + r * ldk + j + 8, _mm256_mul_ps(a[r][1], sc));
        }
    }
}

TARGET_AVX2 static void causal_values_avx2(const float *values, long ldv, long keys, const float *scores, long ldk,
                                           long head_dim, long rows, float *out, long ldo) {
    for (long c = 0; c < head_dim; c += 16) {
        __m256 o[6][2];
        for (int r = 0; r < 6; r++) o[r][0] = o[r][1] = _mm256_setzero_ps();
        const float *vp = values + c;
        for (long j = 0; j < keys; j++) {
            __m256 v0 = _mm256_loadu_ps(vp), v1 = _mm256_loadu_ps(vp + 8);
            for (int r = 0; r < 6; r++) {
                __m256 sb = _mm256_broadcast_ss(scores + r * ldk + j);
                o[r][0] = _mm256_fmadd_ps(v0, sb, o[r][0]);
                o[r][1] = _mm256_fmadd_ps(v1, sb, o[r][1]);
            }
            vp += ldv;
        }
        for (long r = 0; r < rows; r++) {
            _mm256_storeu_ps(out + r * ldo + c, o[r][0]);
            _mm256_storeu_ps(out + r * ldo + c + 8, o[r][1]);
        }
    }
}

// MARK: - AVX-512F (16 lanes)


INLINE TARGET_AVX512 float hsum512(__m512 a) { return _mm512_reduce_add_ps(a); }
DEFINE_TILE(tile_avx512, TARGET_AVX512, __m512, 16, _mm512_setzero_ps(), _mm512_loadu_ps, MAC_FMA512, hsum512, __builtin_fmaf)

TARGET_AVX512 static void product_avx512(const float *x, long n, long ldx, const float *w, long cols, long row_begin,
                                         long row_end, float *y, long ldy, int accumulate) {
    PRODUCT_LOOP(tile_avx512)
}

TARGET_AVX512 static void causal_scores_avx512(const float *const q[6], const float *keysT, long ldk, long keys,
                                               long head_dim, float scale, float *scores) {
    const __m512 sc = _mm512_set1_ps(scale);
    for (long j = 0; j < keys; j += 16) {
        __m512 a[6];
        for (int r = 0; r < 6; r++) a[r] = _mm512_setzero_ps();
        const float *kp = keysT + j;
        for (long d = 0; d < head_dim; d++) {
            __m512 k = _mm512_loadu_ps(kp);
            for (int r = 0; r < 6; r++) a[r] = _mm512_fmadd_ps(k, _mm512_set1_ps(q[r][d]), a[r]);
            kp += ldk;
        }
        for (int r = 0; r < 6; r++) _mm512_storeu_ps(scores + r * ldk + j, _mm512_mul_ps(a[r], sc));
    }
}

TARGET_AVX512 static void causal_values_avx512(const float *values, long ldv, long keys, const float *scores,
                                               long ldk, long head_dim, long rows, float *out, long ldo) {
    for (long c = 0; c < head_dim; c += 16) {
        __m512 o[6];
        for (int r = 0; r < 6; r++) o[r] = _mm512_setzero_ps();
        const float *vp = values + c;
        for (long j = 0; j < keys; j++) {
            __m512 v = _mm512_loadu_ps(vp);
            for (int r = 0; r < 6; r++) o[r] = _mm512_fmadd_ps(v, _mm512_set1_ps(scores[r * ldk + j]), o[r]);
            vp += ldv;
        }
        for (long r = 0; r < rows; r++) _mm512_storeu_ps(out + r * ldo + c, o[r]);
    }
}

#endif

// MARK: - Levels and dispatch

static int supported_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return REPENG_KERNELS_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return REPENG_KERNELS_AVX2;
#endif
    return REPENG_KERNELS_BASELINE;
}

static int chosen_level = -1;

int repeng_kernels_supported(void) {
    static int level = -1;
    int l = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (l < 0) {
        l = supported_level();
        __atomic_store_n(&level, l, __ATOMIC_RELAXED);
    }
    return l;
}

int repeng_kernels_level(void) {
    int l = __atomic_load_n(&chosen_level, __ATOMIC_RELAXED);
    if (l >= 0) return l;
    l = repeng_kernels_supported();
    // REPENG_KERNELS=baseline|avx2|avx512 asks for a lower level (never one the CPU lacks).
    const char *ask = getenv("REPENG_KERNELS");
    if (ask) {
        int want = l;
        if (strcmp(ask, "baseline") == 0) want = REPENG_KERNELS_BASELINE;
        else if (strcmp(ask, "avx2") == 0) want = REPENG_KERNELS_AVX2;
        else if (strcmp(ask, "avx512") == 0) want = REPENG_KERNELS_AVX512;
        if (want < l) l = want;
    }
    __atomic_store_n(&chosen_level, l, __ATOMIC_RELAXED);
    return l;
}

/// `level`, or the CPU's own when that is lower: the one level choice every entry point makes.
static inline int runnable(int level) {
    int supported = repeng_kernels_supported();
    return level < supported ? level : supported;
}

void repeng_streaming_product(int level, const float *x, long n, long ldx, const float *w, long cols, long row_begin,
                              long row_end, float *y, long ldy, int accumulate) {
#if defined(__x86_64__)
    if (runnable(level) >= REPENG_KERNELS_AVX512) {
        product_avx512(x, n, ldx, w, cols, row_begin, row_end, y, ldy, accumulate);
        return;
    }
    if (runnable(level) >= REPENG_KERNELS_AVX2) {
        product_avx2(x, n, ldx, w, cols, row_begin, row_end, y, ldy, accumulate);
        return;
    }
#endif
    product_base(x, n, ldx, w, cols, row_begin, row_end, y, ldy, accumulate);
}

void repeng_causal_scores(int level, const float *q, long ldq, long rows, const float *keysT, long ldk, long keys,
                          long head_dim, float scale, float *scores) {
    const float *qs[6];
    for (long r = 0; r < 6; r++) qs[r] = q + ldq * (r < rows ? r : rows - 1);
#if defined(__x86_64__)
    if (runnable(level) >= REPENG_KERNELS_AVX512) {
        causal_scores_avx512(qs, keysT, ldk, keys, head_dim, scale, scores);
        return;
    }
    if (runnable(level) >= REPENG_KERNELS_AVX2) {
        causal_scores_avx2(qs, keysT, ldk, keys, head_dim, scale, scores);
        return;
    }
#endif
    causal_scores_base(qs, keysT, ldk, keys, head_dim, scale, scores);
}

void repeng_causal_values(int level, const float *values, long ldv, long keys, const float *scores, long ldk,
                          long head_dim, long rows, float *out, long ldo) {
#if defined(__x86_64__)
    if (runnable(level) >= REPENG_KERNELS_AVX512) {
        causal_values_avx512(values, ldv, keys, scores, ldk, head_dim, rows, out, ldo);
        return;
    }
    if (runnable(level) >= REPENG_KERNELS_AVX2) {
        causal_values_avx2(values, ldv, keys, scores, ldk, head_dim, rows, out, ldo);
        return;
    }
#endif
    causal_values_base(values, ldv, keys, scores, ldk, head_dim, rows, out, ldo);
}

// MARK: - Weights kept in their GGUF encoding (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)

/// IEEE half to float, by bits (no F16C needed).
INLINE float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {  // subnormal: normalize
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3FF) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | man << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

INLINE uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

typedef uint8_t u8x16 __attribute__((vector_size(16)));
typedef int8_t i8x16 __attribute__((vector_size(16)));
typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));
typedef float f32x16 __attribute__((vector_size(64)));
/// Lane numbers 0 … 15 (the element index within a Q5 half-block, the bit of `qh` it reads).
#define BIT_INDEX ((u32x16){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})

/// One row of `cols` values (a multiple of the block size) from its encoding into f32, with the
/// same arithmetic as the engine's Swift decoder (scale × quant (+ min), not fused).
INLINE void dequant_row(int type, const uint8_t *src, long cols, float *dst) {
    switch (type) {
    case REPENG_QUANT_F16:
        for (long i = 0; i < cols; i++) dst[i] = half_to_float(load_u16(src + 2 * i));
        break;
    case REPENG_QUANT_BF16:
        for (long i = 0; i + 16 <= cols; i += 16) {
            u16x16 h;
            memcpy(&h, src + 2 * i, 32);
            u32x16 bits = __builtin_convertvector(h, u32x16) << 16;
            memcpy(dst + i, &bits, 64);
        }
        break;
    case REPENG_QUANT_Q4_0:
        for (long b = 0; b < cols / 32; b++, src += 18, dst += 32) {
            const float d = half_to_float(load_u16(src));
            u8x16 q;
            memcpy(&q, src + 2, 16);
            f32x16 lo = __builtin_convertvector(q & 0x0F, f32x16) - 8.0f, hi = __builtin_convertvector(q >> 4, f32x16) - 8.0f;
            lo = lo * d;
            hi = hi * d;
            memcpy(dst, &lo, 64);
            memcpy(dst + 16, &hi, 64);
        }
        break;
    case REPENG_QUANT_Q4_1:
        for (long b = 0; b < cols / 32; b++, src += 20, dst += 32) {
            const float d = half_to_float(load_u16(src)), m = half_to_float(load_u16(src + 2));
            u8x16 q;
            memcpy(&q, src + 4, 16);
            f32x16 lo = __builtin_convertvector(q & 0x0F, f32x16) * d, hi = __builtin_convertvector(q >> 4, f32x16) * d;
            lo = lo + m;  // a statement of its own: not fused with the product
            hi = hi + m;
            memcpy(dst, &lo, 64);
            memcpy(dst + 16, &hi, 64);
        }
        break;
    case REPENG_QUANT_Q5_0:
    case REPENG_QUANT_Q5_1: {
        const int q51 = type == REPENG_QUANT_Q5_1;
        const long bytes = q51 ? 24 : 22;
        for (long b = 0; b < cols / 32; b++, src += bytes, dst += 32) {
            const float d = half_to_float(load_u16(src)), m = q51 ? half_to_float(load_u16(src + 2)) : 0.0f;
            uint32_t qh;
            memcpy(&qh, src + (q51 ? 4 : 2), 4);
            u8x16 q;
            memcpy(&q, src + (q51 ? 8 : 6), 16);
            u32x16 lo = __builtin_convertvector(q & 0x0F, u32x16) | ((((u32x16){0} + qh) >> BIT_INDEX) & 1) << 4;
            u32x16 hi = __builtin_convertvector(q >> 4, u32x16) | ((((u32x16){0} + qh) >> (BIT_INDEX + 16)) & 1) << 4;
            f32x16 a = __builtin_convertvector(lo, f32x16), c = __builtin_convertvector(hi, f32x16);
            if (q51) {
                a = a * d;
                c = c * d;
                a = a + m;  // not fused with the product, as the Swift decoder
                c = c + m;
            } else {
                a = (a - 16.0f) * d;
                c = (c - 16.0f) * d;
            }
            memcpy(dst, &a, 64);
            memcpy(dst + 16, &c, 64);
        }
        break;
    }
    case REPENG_QUANT_Q4_K:
    case REPENG_QUANT_Q5_K: {
        // 256 per block: d, dmin, 12 bytes of 6-bit scale/min pairs, (Q5_K: 32 bytes of 5th bits), 128 of nibbles.
        const int q5 = type == REPENG_QUANT_Q5_K;
        const long bytes = q5 ? 176 : 144, qs_at = q5 ? 48 : 16;
        for (long b = 0; b < cols / 256; b++, src += bytes, dst += 256) {
            const float d = half_to_float(load_u16(src)), dmin = half_to_float(load_u16(src + 2));
            const uint8_t *sc = src + 4;
            for (int c = 0; c < 4; c++) {
                float scale[2], min[2];
                for (int k = 0; k < 2; k++) {
                    const int j = 2 * c + k;
                    uint8_t s6, m6;
                    if (j < 4) {
                        s6 = sc[j] & 63;
                        m6 = sc[j + 4] & 63;
                    } else {
                        s6 = (uint8_t)((sc[j + 4] & 0x0F) | ((sc[j - 4] >> 6) << 4));
                        m6 = (uint8_t)((sc[j + 4] >> 4) | ((sc[j] >> 6) << 4));
                    }
                    scale[k] = d * (float)s6;
                    min[k] = dmin * (float)m6;
                }
                float *out = dst + 64 * c;
                for (int half = 0; half < 2; half++) {
                    u8x16 ql;
                    memcpy(&ql, src + qs_at + 32 * c + 16 * half, 16);
                    u8x16 q0 = ql & 0x0F, q1 = ql >> 4;
                    if (q5) {
                        u8x16 h;
                        memcpy(&h, src + 16 + 16 * half, 16);
                        q0 = q0 | ((h >> (2 * c)) & 1) << 4;
                        q1 = q1 | ((h >> (2 * c + 1)) & 1) << 4;
                    }
                    f32x16 a = __builtin_convertvector(q0, f32x16) * scale[0], e = __builtin_convertvector(q1, f32x16) * scale[1];
                    a = a - min[0];  // not fused, as the Swift decoder
                    e = e - min[1];
                    memcpy(out + 16 * half, &a, 64);
                    memcpy(out + 32 + 16 * half, &e, 64);
                }
            }
        }
        break;
    }
    case REPENG_QUANT_Q6_K:
        // 256 per block: ql[128], qh[64], scales int8[16], d; two halves of 128, 16 values per scale.
        for (long b = 0; b < cols / 256; b++, src += 210, dst += 256) {
            const float d = half_to_float(load_u16(src + 208));
            for (int half = 0; half < 2; half++) {
                float *out = dst + 128 * half;
                for (int part = 0; part < 2; part++) {
                    const int l = 16 * part, s = 8 * half + part;
                    u8x16 a, c, h;
                    memcpy(&a, src + 64 * half + l, 16);
                    memcpy(&c, src + 64 * half + 32 + l, 16);
                    memcpy(&h, src + 128 + 32 * half + l, 16);
                    const u8x16 q[4] = {(a & 0x0F) | (h & 3) << 4, (c & 0x0F) | ((h >> 2) & 3) << 4,
                                        (a >> 4) | ((h >> 4) & 3) << 4, (c >> 4) | (h >> 6) << 4};
                    for (int g = 0; g < 4; g++) {
                        const float ds = d * (float)(int8_t)src[192 + s + 2 * g];
                        f32x16 v = (__builtin_convertvector(q[g], f32x16) - 32.0f) * ds;
                        memcpy(out + 32 * g + l, &v, 64);
                    }
                }
            }
        }
        break;
    case REPENG_QUANT_Q8_0:
        for (long b = 0; b < cols / 32; b++, src += 34, dst += 32) {
            const float d = half_to_float(load_u16(src));
            i8x16 q0, q1;
            memcpy(&q0, src + 2, 16);
            memcpy(&q1, src + 18, 16);
            f32x16 v0 = __builtin_convertvector(q0, f32x16) * d, v1 = __builtin_convertvector(q1, f32x16) * d;
            memcpy(dst, &v0, 64);
            memcpy(dst + 16, &v1, 64);
        }
        break;
    }
}

/// A per-thread scratch of at least `count` floats (grown, never shrunk: no allocation per call
/// once a thread has seen the widest matrix). NULL if memory ran out.
static float *scratch_floats(long count) {
    static __thread float *buffer;
    static __thread long capacity;
    if (count > capacity) {
        float *b = realloc(buffer, (size_t)count * sizeof(float));
        if (!b) return NULL;
        buffer = b;
        capacity = count;
    }
    return buffer;
}

/// The quantized product: up to 3 weight rows at a time decoded into the thread's scratch (it
/// stays in L1), then the f32 tiles of this level over every input row. Each output element
/// gets the same decoded weights and the same tile arithmetic whatever the batch or split.
#define DEFINE_QUANT_PRODUCT(NAME, ATTR, TILE)                                                       \
    ATTR static int NAME(int type, const float *x, long n, long ldx, const uint8_t *w, long row_bytes, \
                         long cols, long row_begin, long row_end, float *y, long ldy, int accumulate) { \
        float *s = scratch_floats(TILE_WEIGHT_ROWS * cols);                                          \
        if (!s) return -1;                                                                           \
        for (long j = row_begin; j < row_end;) {                                                     \
            long r = row_end - j < TILE_WEIGHT_ROWS ? row_end - j : TILE_WEIGHT_ROWS;                \
            for (long t = 0; t < r; t++) dequant_row(type, w + (j + t) * row_bytes, cols, s + t * cols); \
            for (long i0 = 0; i0 < n;) {                                                             \
                long m = n - i0 < 4 ? n - i0 : 4;                                                    \
                const float *xs = x + i0 * ldx; float *ys = y + i0 * ldy + j;                        \
                switch (m * 4 + r) {                                                                 \
                case 4 * 4 + 3: TILE(xs, 4, ldx, s, 3, cols, ys, ldy, accumulate, 0); break;         \
                case 4 * 4 + 2: TILE(xs, 4, ldx, s, 2, cols, ys, ldy, accumulate, 0); break;         \
                case 4 * 4 + 1: TILE(xs, 4, ldx, s, 1, cols, ys, ldy, accumulate, 0); break;         \
                case 3 * 4 + 3: TILE(xs, 3, ldx, s, 3, cols, ys, ldy, accumulate, 0); break;         \
                case 3 * 4 + 2: TILE(xs, 3, ldx, s, 2, cols, ys, ldy, accumulate, 0); break;         \
                case 3 * 4 + 1: TILE(xs, 3, ldx, s, 1, cols, ys, ldy, accumulate, 0); break;         \
                case 2 * 4 + 3: TILE(xs, 2, ldx, s, 3, cols, ys, ldy, accumulate, 0); break;         \
                case 2 * 4 + 2: TILE(xs, 2, ldx, s, 2, cols, ys, ldy, accumulate, 0); break;         \
                case 2 * 4 + 1: TILE(xs, 2, ldx, s, 1, cols, ys, ldy, accumulate, 0); break;         \
                case 1 * 4 + 3: TILE(xs, 1, ldx, s, 3, cols, ys, ldy, accumulate, 0); break;         \
                case 1 * 4 + 2: TILE(xs, 1, ldx, s, 2, cols, ys, ldy, accumulate, 0); break;         \
                default: TILE(xs, 1, ldx, s, 1, cols, ys, ldy, accumulate, 0); break;                \
                }                                                                                    \
                i0 += m;                                                                             \
            }                                                                                        \
            j += r;                                                                                  \
        }                                                                                            \
        return 0;                                                                                    \
    }

DEFINE_QUANT_PRODUCT(quant_product_base, , tile_base)
#if defined(__x86_64__)
DEFINE_QUANT_PRODUCT(quant_product_avx2, TARGET_AVX2, tile_avx2)
DEFINE_QUANT_PRODUCT(quant_product_avx512, TARGET_AVX512, tile_avx512)
#endif

int repeng_quant_product(int level, int type, const float *x, long n, long ldx, const void *w, long row_bytes,
                         long cols, long row_begin, long row_end, float *y, long ldy, int accumulate) {
    const uint8_t *wb = w;
#if defined(__x86_64__)
    if (runnable(level) >= REPENG_KERNELS_AVX512)
        return quant_product_avx512(type, x, n, ldx, wb, row_bytes, cols, row_begin, row_end, y, ldy, accumulate);
    if (runnable(level) >= REPENG_KERNELS_AVX2)
        return quant_product_avx2(type, x, n, ldx, wb, row_bytes, cols, row_begin, row_end, y, ldy, accumulate);
#endif
    return quant_product_base(type, x, n, ldx, wb, row_bytes, cols, row_begin, row_end, y, ldy, accumulate);
}

void repeng_quant_decode_rows(int type, const void *w, long row_bytes, long cols, long row_begin, long row_end,
                              float *out, long ldo) {
    const uint8_t *wb = w;
    for (long j = row_begin; j < row_end; j++) dequant_row(type, wb + j * row_bytes, cols, out + (j - row_begin) * ldo);
}
