// The multiply-accumulate kernels of decode and prefill, compiled for instruction-set levels and
// chosen at run time: a portable baseline (any x86-64, or any other CPU), AVX2 with FMA, AVX-512F
// (the int8 kernels: AVX-512BW) and AVX-512 VNNI (the int8 kernels' vpdpbusd; the f32 kernels
// are AVX-512F's). The binaries run on every x86-64 CPU; each CPU gets the widest level it has.
//
// Within one level every output element is computed by the same instruction sequence whatever
// the tile, batch or thread split (see the Swift callers), so a sequence's values do not depend
// on what else is in the batch. Levels differ from each other only by rounding (FMA, lane count).
#include "kernel_support.h"

#include <math.h>
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
    // F16C (every AVX2 CPU has it) converts the int8 kernels' block scales.
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    if (avx2 && __builtin_cpu_supports("avx512f")) {
        if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni")) return REPENG_KERNELS_AVX512VNNI;
        return REPENG_KERNELS_AVX512;
    }
    if (avx2) return REPENG_KERNELS_AVX2;
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
    // REPENG_KERNELS=baseline|avx2|avx512|avx512vnni asks for a lower level (never one the CPU lacks).
    const char *ask = getenv("REPENG_KERNELS");
    if (ask) {
        int want = l;
        if (strcmp(ask, "baseline") == 0) want = REPENG_KERNELS_BASELINE;
        else if (strcmp(ask, "avx2") == 0) want = REPENG_KERNELS_AVX2;
        else if (strcmp(ask, "avx512") == 0) want = REPENG_KERNELS_AVX512;
        else if (strcmp(ask, "avx512vnni") == 0) want = REPENG_KERNELS_AVX512VNNI;
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

// MARK: - Int8 activations for encoded weights (decode steps)
//
// llama.cpp's way of multiplying by quantized weights, in our own code: each input row is
// quantized per 32 values to int8 (f32 scale d = max|x| / 127, values rounded to nearest even),
// and each 32-value weight block meets it as an integer dot product, exact in int32, scaled in
// f32 once per block. The f32 part is the same in every level: block b of a row adds
// t1 = (weight scale × d_b) × I_b, then (types with an offset term) t2 = weight min × (d_b × Σq_b),
// to lane b mod 8 of eight accumulators, and the lanes are summed as `sum8` does. So every level
// gives bit-identical results, the same as `repeng_quant_product_q8_reference`, and an output
// element depends only on its weight row and its own input row: not on the batch or the split.

/// Groups of 8 blocks of 32 values per quantized input row (the blocks past cols/32 are zeros).
INLINE long q8_groups(long cols) { return (cols / 32 + 7) / 8; }
/// Bytes per quantized input row: per block 32 int8 values, then the f32 scale d, the f32
/// d × Σq, the int32 Σq and the two int16 sums of each 16 values (Q6_K's scales are per 16).
INLINE long q8_stride(long cols) { return 384 * q8_groups(cols); }

/// One quantized input row, as laid out in the scratch.
typedef struct {
    int8_t *q;
    float *d, *ds;
    int32_t *s;
    int16_t *s16;
} q8_row;

INLINE q8_row q8_row_at(const void *base, long cols, long i) {
    const long nbp = 8 * q8_groups(cols);
    uint8_t *p = (uint8_t *)base + i * q8_stride(cols);
    q8_row r;
    r.q = (int8_t *)p;
    r.d = (float *)(p + 32 * nbp);
    r.ds = r.d + nbp;
    r.s = (int32_t *)(r.ds + nbp);
    r.s16 = (int16_t *)(r.s + nbp);
    return r;
}

/// Σq of block b (whole and per 16) and d × Σq, from the int8 values already written.
INLINE void q8_block_sums(q8_row r, long b, float d) {
    int s0 = 0, s1 = 0;
    for (int k = 0; k < 16; k++) s0 += r.q[32 * b + k];
    for (int k = 16; k < 32; k++) s1 += r.q[32 * b + k];
    r.d[b] = d;
    r.s[b] = s0 + s1;
    r.s16[2 * b] = (int16_t)s0;
    r.s16[2 * b + 1] = (int16_t)s1;
    r.ds[b] = d * (float)(s0 + s1);
}

/// The scale of a block whose largest magnitude is `amax`, and its inverse (0 for a zero block).
INLINE void q8_scale(float amax, float *d, float *id) {
    *d = amax / 127.0f;
    *id = *d != 0.0f ? 1.0f / *d : 0.0f;
}

/// The sum of eight accumulator lanes, in the one order every level uses.
INLINE float q8_sum_lanes(const float a[8]) {
    float s0 = (a[0] + a[4]) + (a[2] + a[6]);
    float s1 = (a[1] + a[5]) + (a[3] + a[7]);
    return s0 + s1;
}

/// Bytes of 256 weights (8 blocks of 32, or one K-quant super-block), the unit the kernels step by.
INLINE long q8_group_bytes(int type) {
    switch (type) {
    case REPENG_QUANT_Q4_0: return 8 * 18;
    case REPENG_QUANT_Q4_1: return 8 * 20;
    case REPENG_QUANT_Q5_0: return 8 * 22;
    case REPENG_QUANT_Q5_1: return 8 * 24;
    case REPENG_QUANT_Q8_0: return 8 * 34;
    case REPENG_QUANT_Q4_K: return 144;
    case REPENG_QUANT_Q5_K: return 176;
    default: return 210;  // Q6_K
    }
}

/// Types with an offset term (weight = scale × q + min): their blocks add min × d × Σq.
INLINE int q8_has_min(int type) {
    return type == REPENG_QUANT_Q4_1 || type == REPENG_QUANT_Q5_1 || type == REPENG_QUANT_Q4_K || type == REPENG_QUANT_Q5_K;
}

/// The eight 6-bit scales and mins of a Q4_K/Q5_K super-block (12 bytes at `sc`), a byte each.
INLINE void q8_k_scales(const uint8_t *sc, uint64_t *scales, uint64_t *mins) {
    uint32_t a, b, c;
    memcpy(&a, sc, 4);
    memcpy(&b, sc + 4, 4);
    memcpy(&c, sc + 8, 4);
    // Sub-blocks 0-3 keep 6 bits in bytes 0-3 (scales) and 4-7 (mins); 4-7 take 4 bits from
    // bytes 8-11 and their top 2 from the top bits of bytes 0-7.
    const uint32_t s_lo = a & 0x3F3F3F3Fu, m_lo = b & 0x3F3F3F3Fu;
    const uint32_t s_hi = (c & 0x0F0F0F0Fu) | ((a >> 2) & 0x30303030u);
    const uint32_t m_hi = ((c >> 4) & 0x0F0F0F0Fu) | ((b >> 2) & 0x30303030u);
    *scales = s_lo | (uint64_t)s_hi << 32;
    *mins = m_lo | (uint64_t)m_hi << 32;
}

/// A per-thread scratch of at least `bytes` bytes, 64-byte aligned (grown, never shrunk).
static void *scratch_q8(long bytes) {
    static __thread void *buffer;
    static __thread long capacity;
    if (bytes < 64) bytes = 64;  // an empty product still gets a pointer, not NULL (out of memory)
    if (bytes > capacity) {
        void *b = NULL;
        if (posix_memalign(&b, 64, (size_t)bytes) != 0) return NULL;
        free(buffer);
        buffer = b;
        capacity = bytes;
    }
    return buffer;
}

// MARK: Reference (scalar, read straight from the block layouts)

/// Quantizes n rows as every level does, one value at a time.
static void q8_quantize_reference(const float *x, long n, long ldx, long cols, void *out) {
    const long nb = cols / 32;
    memset(out, 0, (size_t)(n * q8_stride(cols)));
    for (long i = 0; i < n; i++) {
        q8_row r = q8_row_at(out, cols, i);
        for (long b = 0; b < nb; b++) {
            const float *v = x + i * ldx + 32 * b;
            float amax = 0.0f, d, id;
            for (int k = 0; k < 32; k++) {
                float a = fabsf(v[k]);
                if (a > amax) amax = a;
            }
            q8_scale(amax, &d, &id);
            for (int k = 0; k < 32; k++) r.q[32 * b + k] = (int8_t)rintf(v[k] * id);
            q8_block_sums(r, b, d);
        }
    }
}

/// Weight block b (of 32) of a row as integers q[k] (weight = wa × q[k] + wm, Q6_K: wa × scale
/// of the 16 × q[k]), its scale wa and min wm as the kernels form them.
static void q8_reference_block(int type, const uint8_t *row, long b, int q[32], int sc[2], float *wa, float *wm) {
    *wm = 0.0f;
    sc[0] = sc[1] = 1;
    const uint8_t *p;
    switch (type) {
    case REPENG_QUANT_Q4_0:
    case REPENG_QUANT_Q4_1: {
        const int q41 = type == REPENG_QUANT_Q4_1;
        p = row + (q41 ? 20 : 18) * b;
        *wa = half_to_float(load_u16(p));
        if (q41) *wm = half_to_float(load_u16(p + 2));
        const uint8_t *qs = p + (q41 ? 4 : 2);
        for (int k = 0; k < 32; k++) q[k] = (k < 16 ? qs[k] & 0x0F : qs[k - 16] >> 4) - (q41 ? 0 : 8);
        break;
    }
    case REPENG_QUANT_Q5_0:
    case REPENG_QUANT_Q5_1: {
        const int q51 = type == REPENG_QUANT_Q5_1;
        p = row + (q51 ? 24 : 22) * b;
        *wa = half_to_float(load_u16(p));
        if (q51) *wm = half_to_float(load_u16(p + 2));
        uint32_t qh;
        memcpy(&qh, p + (q51 ? 4 : 2), 4);
        const uint8_t *qs = p + (q51 ? 8 : 6);
        for (int k = 0; k < 32; k++)
            q[k] = ((k < 16 ? qs[k] & 0x0F : qs[k - 16] >> 4) | (int)((qh >> k) & 1) << 4) - (q51 ? 0 : 16);
        break;
    }
    case REPENG_QUANT_Q8_0:
        p = row + 34 * b;
        *wa = half_to_float(load_u16(p));
        for (int k = 0; k < 32; k++) q[k] = (int8_t)p[2 + k];
        break;
    case REPENG_QUANT_Q4_K:
    case REPENG_QUANT_Q5_K: {
        const int q5 = type == REPENG_QUANT_Q5_K, j = (int)(b % 8);
        p = row + (q5 ? 176 : 144) * (b / 8);
        const float d = half_to_float(load_u16(p)), dmin = half_to_float(load_u16(p + 2));
        const uint8_t *s = p + 4;
        int s6, m6;
        if (j < 4) {
            s6 = s[j] & 63;
            m6 = s[j + 4] & 63;
        } else {
            s6 = (s[j + 4] & 0x0F) | (s[j - 4] >> 6) << 4;
            m6 = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
        }
        *wa = d * (float)s6;
        *wm = -(dmin * (float)m6);
        const uint8_t *qs = p + (q5 ? 48 : 16) + 32 * (j / 2), *qh = p + 16;
        for (int k = 0; k < 32; k++) q[k] = ((qs[k] >> (4 * (j % 2))) & 0x0F) | (q5 ? ((qh[k] >> j) & 1) << 4 : 0);
        break;
    }
    default: {  // Q6_K: 128-value halves, each four runs of 32 from ql's nibbles and qh's bit pairs.
        const int j = (int)(b % 8), half = j / 4, g = j % 4;
        p = row + 210 * (b / 8);
        *wa = half_to_float(load_u16(p + 208));
        sc[0] = (int8_t)p[192 + 2 * j];
        sc[1] = (int8_t)p[192 + 2 * j + 1];
        const uint8_t *ql = p + 64 * half + (g % 2 ? 32 : 0), *qh = p + 128 + 32 * half;
        for (int k = 0; k < 32; k++) q[k] = (((ql[k] >> (g / 2 ? 4 : 0)) & 0x0F) | ((qh[k] >> (2 * g)) & 3) << 4) - 32;
        break;
    }
    }
}

/// The int8 product written out one block and one value at a time (no vectors), for tests.
static void q8_product_reference(int type, const void *xq, long n, long cols, const uint8_t *w, long row_bytes,
                                 long row_begin, long row_end, float *y, long ldy, int accumulate) {
    const long nb = cols / 32, nbp = 8 * q8_groups(cols);
    for (long j = row_begin; j < row_end; j++) {
        const uint8_t *row = w + j * row_bytes;
        for (long i = 0; i < n; i++) {
            q8_row x = q8_row_at(xq, cols, i);
            float acc[8] = {0};
            for (long b = 0; b < nbp; b++) {
                float t1 = 0.0f, t2 = 0.0f;
                if (b < nb) {
                    int q[32], sc[2];
                    float wa, wm;
                    q8_reference_block(type, row, b, q, sc, &wa, &wm);
                    int32_t sum = 0;
                    for (int h = 0; h < 2; h++) {
                        int32_t part = 0;
                        for (int k = 16 * h; k < 16 * h + 16; k++) part += q[k] * x.q[32 * b + k];
                        sum += sc[h] * part;
                    }
                    const float a = wa * x.d[b];
                    t1 = a * (float)sum;
                    t2 = wm * x.ds[b];
                }
                acc[b % 8] = acc[b % 8] + t1;
                if (q8_has_min(type)) acc[b % 8] = acc[b % 8] + t2;
            }
            const float s = q8_sum_lanes(acc);
            float *out = y + i * ldy + j;
            *out = accumulate ? *out + s : s;
        }
    }
}

// MARK: Baseline (portable vectors)

typedef int32_t i32x8 __attribute__((vector_size(32)));
typedef uint32_t u32x8 __attribute__((vector_size(32)));
typedef int8_t i8x32 __attribute__((vector_size(32)));
typedef uint8_t u8x32 __attribute__((vector_size(32)));
typedef int16_t i16x16 __attribute__((vector_size(32)));

static void q8_quantize_base(const float *x, long n, long ldx, long cols, void *out) {
    const long nb = cols / 32;
    memset(out, 0, (size_t)(n * q8_stride(cols)));
    for (long i = 0; i < n; i++) {
        q8_row r = q8_row_at(out, cols, i);
        for (long b = 0; b < nb; b++) {
            const float *v = x + i * ldx + 32 * b;
            v8 m = {0};
            for (int k = 0; k < 32; k += 8) {
                u32x8 bits;
                memcpy(&bits, v + k, 32);
                bits &= 0x7FFFFFFFu;
                v8 a;
                memcpy(&a, &bits, 32);
                const i32x8 more = a > m;
                m = (v8)(((i32x8)a & more) | ((i32x8)m & ~more));
            }
            float amax = 0.0f, d, id;
            for (int k = 0; k < 8; k++) amax = m[k] > amax ? m[k] : amax;
            q8_scale(amax, &d, &id);
            for (int k = 0; k < 32; k += 8) {
                // Rounded to nearest even by adding and taking away 1.5 × 2^23 (|t| ≤ 127).
                v8 t = load8(v + k) * id;
                t = t + 12582912.0f;
                t = t - 12582912.0f;
                i32x8 qi = __builtin_convertvector(t, i32x8);
                for (int l = 0; l < 8; l++) r.q[32 * b + k + l] = (int8_t)qi[l];
            }
            q8_block_sums(r, b, d);
        }
    }
}

/// f32 of 8 halves `stride` bytes apart (the first `count`; the rest 0), exact for every finite
/// half: the bits shifted into place, times 2^112 to rebias the exponent (subnormals included).
INLINE v8 q8_halves_base(const uint8_t *p, long stride, int count) {
    u32x8 h = {0};
    for (int b = 0; b < count; b++) h[b] = load_u16(p + b * stride);
    u32x8 bits = (h & 0x7FFFu) << 13;
    v8 f;
    memcpy(&f, &bits, 32);
    f = f * 0x1p112f;
    memcpy(&bits, &f, 32);
    bits |= (h & 0x8000u) << 16;
    memcpy(&f, &bits, 32);
    return f;
}

/// A group of 8 weight blocks as integers: q[b] (unsigned, or signed for Q8_0), the scales a
/// and mins m as f32 lanes, and Q6_K's 16 scales.
typedef struct {
    i8x32 q[8];
    v8 a, m;
    int sc[16];
} q8g_base;

INLINE u8x32 q8_nibbles_base(const uint8_t *p) {
    u8x16 v;
    memcpy(&v, p, 16);
    u8x32 out;
    for (int k = 0; k < 16; k++) {
        out[k] = v[k] & 0x0F;
        out[k + 16] = v[k] >> 4;
    }
    return out;
}

INLINE u8x32 q8_bits5_base(const uint8_t *p) {
    uint32_t qh;
    memcpy(&qh, p, 4);
    u8x32 out;
    for (int k = 0; k < 32; k++) out[k] = (uint8_t)(((qh >> k) & 1) << 4);
    return out;
}

INLINE void q8_group_base(const int type, const uint8_t *p, const int count, q8g_base *g) {
    const u8x32 zero = {0};
    g->m = (v8){0};
    switch (type) {
    case REPENG_QUANT_Q4_0:
        for (int b = 0; b < 8; b++) g->q[b] = (i8x32)(b < count ? q8_nibbles_base(p + 18 * b + 2) : zero);
        g->a = q8_halves_base(p, 18, count);
        break;
    case REPENG_QUANT_Q4_1:
        for (int b = 0; b < 8; b++) g->q[b] = (i8x32)(b < count ? q8_nibbles_base(p + 20 * b + 4) : zero);
        g->a = q8_halves_base(p, 20, count);
        g->m = q8_halves_base(p + 2, 20, count);
        break;
    case REPENG_QUANT_Q5_0:
        for (int b = 0; b < 8; b++)
            g->q[b] = (i8x32)(b < count ? q8_nibbles_base(p + 22 * b + 6) | q8_bits5_base(p + 22 * b + 2) : zero);
        g->a = q8_halves_base(p, 22, count);
        break;
    case REPENG_QUANT_Q5_1:
        for (int b = 0; b < 8; b++)
            g->q[b] = (i8x32)(b < count ? q8_nibbles_base(p + 24 * b + 8) | q8_bits5_base(p + 24 * b + 4) : zero);
        g->a = q8_halves_base(p, 24, count);
        g->m = q8_halves_base(p + 2, 24, count);
        break;
    case REPENG_QUANT_Q8_0:
        for (int b = 0; b < 8; b++) {
            if (b < count) memcpy(&g->q[b], p + 34 * b + 2, 32);
            else g->q[b] = (i8x32)zero;
        }
        g->a = q8_halves_base(p, 34, count);
        break;
    case REPENG_QUANT_Q4_K:
    case REPENG_QUANT_Q5_K: {
        const int q5 = type == REPENG_QUANT_Q5_K;
        const float d = half_to_float(load_u16(p)), dmin = half_to_float(load_u16(p + 2));
        uint64_t s6, m6;
        q8_k_scales(p + 4, &s6, &m6);
        for (int j = 0; j < 8; j++) {
            g->a[j] = d * (float)(uint8_t)(s6 >> (8 * j));
            g->m[j] = -dmin * (float)(uint8_t)(m6 >> (8 * j));
        }
        u8x32 h;
        memcpy(&h, p + 16, 32);
        for (int c = 0; c < 4; c++) {
            u8x32 v;
            memcpy(&v, p + (q5 ? 48 : 16) + 32 * c, 32);
            u8x32 lo = v & 0x0F, hi = v >> 4;
            if (q5) {
                lo |= ((h >> (2 * c)) & 1) << 4;
                hi |= ((h >> (2 * c + 1)) & 1) << 4;
            }
            g->q[2 * c] = (i8x32)lo;
            g->q[2 * c + 1] = (i8x32)hi;
        }
        break;
    }
    default: {  // Q6_K
        const float d = half_to_float(load_u16(p + 208));
        for (int j = 0; j < 8; j++) g->a[j] = d;
        for (int s = 0; s < 16; s++) g->sc[s] = (int8_t)p[192 + s];
        for (int half = 0; half < 2; half++) {
            u8x32 a, c, h;
            memcpy(&a, p + 64 * half, 32);
            memcpy(&c, p + 64 * half + 32, 32);
            memcpy(&h, p + 128 + 32 * half, 32);
            g->q[4 * half] = (i8x32)((a & 0x0F) | (h & 3) << 4);
            g->q[4 * half + 1] = (i8x32)((c & 0x0F) | ((h >> 2) & 3) << 4);
            g->q[4 * half + 2] = (i8x32)((a >> 4) | ((h >> 4) & 3) << 4);
            g->q[4 * half + 3] = (i8x32)((c >> 4) | (h >> 6) << 4);
        }
        break;
    }
    }
}

/// The f32 step of a group for one input row, every level's order: t1 = (a × d) × I, then
/// t2 = m × (d × Σq), each added to its block's lane.
#define Q8_FLOAT_STEP(VEC, LOADF, MUL, ADD, CVT, acc, g, x, b0, I, has_min)                 \
    do {                                                                                    \
        VEC a_ = MUL((g)->a, LOADF((x).d + (b0)));                                          \
        VEC t1_ = MUL(a_, CVT(I));                                                          \
        (acc) = ADD((acc), t1_);                                                            \
        if (has_min) {                                                                      \
            VEC t2_ = MUL((g)->m, LOADF((x).ds + (b0)));                                    \
            (acc) = ADD((acc), t2_);                                                        \
        }                                                                                   \
    } while (0)

INLINE v8 q8_mul_base(v8 a, v8 b) { return a * b; }
INLINE v8 q8_add_base(v8 a, v8 b) { return a + b; }
INLINE v8 q8_cvt_base(i32x8 v) { return __builtin_convertvector(v, v8); }

INLINE v8 q8_group_dot_base(const int type, const q8g_base *g, q8_row x, long b0, v8 acc) {
    i32x8 I;
    for (int b = 0; b < 8; b++) {
        const int8_t *xq = x.q + 32 * (b0 + b);
        int32_t part[2];
        for (int h = 0; h < 2; h++) {
            int32_t s = 0;
            for (int k = 16 * h; k < 16 * h + 16; k++) {
                const int wv = type == REPENG_QUANT_Q8_0 ? (int)g->q[b][k] : (int)(uint8_t)g->q[b][k];
                s += wv * xq[k];
            }
            part[h] = s;
        }
        int32_t v;
        switch (type) {
        case REPENG_QUANT_Q4_0: v = part[0] + part[1] - 8 * x.s[b0 + b]; break;
        case REPENG_QUANT_Q5_0: v = part[0] + part[1] - 16 * x.s[b0 + b]; break;
        case REPENG_QUANT_Q6_K:
            v = g->sc[2 * b] * (part[0] - 32 * x.s16[2 * (b0 + b)]) + g->sc[2 * b + 1] * (part[1] - 32 * x.s16[2 * (b0 + b) + 1]);
            break;
        default: v = part[0] + part[1]; break;
        }
        I[b] = v;
    }
    Q8_FLOAT_STEP(v8, load8, q8_mul_base, q8_add_base, q8_cvt_base, acc, g, x, b0, I, q8_has_min(type));
    return acc;
}

#ifndef Q8_PREFETCH_ROWS
#define Q8_PREFETCH_ROWS 4
#endif

/// One output element per (weight row, input row): the groups of the row, then the lane sum.
/// `nc` is n as a constant (1) where the caller specialized on it, else 0.
#define DEFINE_Q8_ROWS(NAME, ATTR, GROUP_T, GROUP, DOT, VEC, ZERO, STORE)                                      \
    INLINE ATTR void NAME(const int type, const int nc, const void *xq, long n, long cols, const uint8_t *w,       \
                          long row_bytes, long row_begin, long row_end, float *y, long ldy, int accumulate) {    \
        const long nb = cols / 32, groups = q8_groups(cols), gbytes = q8_group_bytes(type);                    \
        if (nc) n = nc;                                                                                        \
        q8_row xs[16];                                                                                         \
        for (long i = 0; i < n; i++) xs[i] = q8_row_at(xq, cols, i);                                           \
        for (long j = row_begin; j < row_end; j++) {                                                           \
            const uint8_t *row = w + j * row_bytes;                                                            \
            VEC acc[16];                                                                                       \
            for (long i = 0; i < n; i++) acc[i] = ZERO;                                                        \
            long g = 0;                                                                                        \
            for (; g < nb / 8; g++) {                                                                          \
                GROUP_T gr;                                                                                    \
                if (Q8_PREFETCH_ROWS)                                                                          \
                    for (long p_ = 0; p_ < gbytes; p_ += 64)                                                   \
                        __builtin_prefetch(row + Q8_PREFETCH_ROWS * row_bytes + g * gbytes + p_, 0, 3);        \
                GROUP(type, row + g * gbytes, 8, &gr);                                                         \
                for (long i = 0; i < n; i++) acc[i] = DOT(type, &gr, xs[i], 8 * g, acc[i]);                    \
            }                                                                                                  \
            if (g < groups) {                                                                                  \
                GROUP_T gr;                                                                                    \
                GROUP(type, row + g * gbytes, (int)(nb - 8 * g), &gr);                                         \
                for (long i = 0; i < n; i++) acc[i] = DOT(type, &gr, xs[i], 8 * g, acc[i]);                    \
            }                                                                                                  \
            for (long i = 0; i < n; i++) {                                                                     \
                float lanes[8];                                                                                \
                STORE(lanes, acc[i]);                                                                          \
                const float s = q8_sum_lanes(lanes);                                                           \
                float *out = y + i * ldy + j;                                                                  \
                *out = accumulate ? *out + s : s;                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }

INLINE void q8_store_base(float *p, v8 v) { memcpy(p, &v, 32); }
DEFINE_Q8_ROWS(q8_rows_base, , q8g_base, q8_group_base, q8_group_dot_base, v8, ((v8){0}), q8_store_base)

/// Every type and input-row count through one specialized body each; at most 16 input rows
/// per pass (the accumulators), more in passes of 16.
#define DEFINE_Q8_PRODUCT(NAME, ATTR, ROWS)                                                                    \
    ATTR static void NAME(int type, const void *xq, long n, long cols, const uint8_t *w, long row_bytes,         \
                          long row_begin, long row_end, float *y, long ldy, int accumulate) {                  \
        for (long i0 = 0; i0 < n; i0 += 16) {                                                                  \
            const long m = n - i0 < 16 ? n - i0 : 16;                                                          \
            const void *x = (const uint8_t *)xq + i0 * q8_stride(cols);                                        \
            float *yy = y + i0 * ldy;                                                                          \
            const int one = m == 1;                                                                            \
            switch (type) {                                                                                    \
            case REPENG_QUANT_Q4_0:                                                                            \
                if (one) ROWS(REPENG_QUANT_Q4_0, 1, x, 1, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                else ROWS(REPENG_QUANT_Q4_0, 0, x, m, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                break;                                                                                         \
            case REPENG_QUANT_Q4_1:                                                                            \
                if (one) ROWS(REPENG_QUANT_Q4_1, 1, x, 1, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                else ROWS(REPENG_QUANT_Q4_1, 0, x, m, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                break;                                                                                         \
            case REPENG_QUANT_Q5_0:                                                                            \
                if (one) ROWS(REPENG_QUANT_Q5_0, 1, x, 1, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                else ROWS(REPENG_QUANT_Q5_0, 0, x, m, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                break;                                                                                         \
            case REPENG_QUANT_Q5_1:                                                                            \
                if (one) ROWS(REPENG_QUANT_Q5_1, 1, x, 1, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                else ROWS(REPENG_QUANT_Q5_1, 0, x, m, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                break;                                                                                         \
            case REPENG_QUANT_Q8_0:                                                                            \
                if (one) ROWS(REPENG_QUANT_Q8_0, 1, x, 1, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                else ROWS(REPENG_QUANT_Q8_0, 0, x, m, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                break;                                                                                         \
            case REPENG_QUANT_Q4_K:                                                                            \
                if (one) ROWS(REPENG_QUANT_Q4_K, 1, x, 1, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                else ROWS(REPENG_QUANT_Q4_K, 0, x, m, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                break;                                                                                         \
            case REPENG_QUANT_Q5_K:                                                                            \
                if (one) ROWS(REPENG_QUANT_Q5_K, 1, x, 1, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                else ROWS(REPENG_QUANT_Q5_K, 0, x, m, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                break;                                                                                         \
            default:                                                                                           \
                if (one) ROWS(REPENG_QUANT_Q6_K, 1, x, 1, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                else ROWS(REPENG_QUANT_Q6_K, 0, x, m, cols, w, row_bytes, row_begin, row_end, yy, ldy, accumulate); \
                break;                                                                                         \
            }                                                                                                  \
        }                                                                                                      \
    }

DEFINE_Q8_PRODUCT(q8_product_base, , q8_rows_base)

#if defined(__x86_64__)

// MARK: AVX2 (8 blocks' integer sums in one vector; vpmaddubsw + vpmaddwd per block)

#define TARGET_Q8_AVX2 __attribute__((target("avx2,fma,f16c")))

TARGET_Q8_AVX2 static void q8_quantize_avx2(const float *x, long n, long ldx, long cols, void *out) {
    const long nb = cols / 32;
    memset(out, 0, (size_t)(n * q8_stride(cols)));
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (long i = 0; i < n; i++) {
        q8_row r = q8_row_at(out, cols, i);
        for (long b = 0; b < nb; b++) {
            const float *v = x + i * ldx + 32 * b;
            __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8), v2 = _mm256_loadu_ps(v + 16), v3 = _mm256_loadu_ps(v + 24);
            __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                     _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
            float d, id;
            q8_scale(_mm_cvtss_f32(h), &d, &id);
            const __m256 s = _mm256_set1_ps(id);
            // Rounded to nearest even (the default MXCSR mode), as rintf.
            __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, s)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, s));
            __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, s)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, s));
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
            p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(r.q + 32 * b), p);
            q8_block_sums(r, b, d);
        }
    }
}

INLINE TARGET_Q8_AVX2 __m256 q8_halves_avx2(const uint8_t *p, long stride, int count) {
    if (count == 8)
        return _mm256_cvtph_ps(_mm_setr_epi16((short)load_u16(p), (short)load_u16(p + stride), (short)load_u16(p + 2 * stride),
                                              (short)load_u16(p + 3 * stride), (short)load_u16(p + 4 * stride),
                                              (short)load_u16(p + 5 * stride), (short)load_u16(p + 6 * stride),
                                              (short)load_u16(p + 7 * stride)));
    uint16_t h[8] = {0};
    for (int b = 0; b < count; b++) h[b] = load_u16(p + b * stride);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

INLINE TARGET_Q8_AVX2 __m256i q8_nibbles_avx2(const uint8_t *p) {
    const __m128i v = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
}

/// 0x10 in each byte whose bit of the 32-bit `qh` is set.
INLINE TARGET_Q8_AVX2 __m256i q8_bits5_avx2(const uint8_t *p) {
    uint32_t qh;
    memcpy(&qh, p, 4);
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), spread), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10));
}

typedef struct {
    __m256i q[8];
    __m256 a, m;
    /// Q6_K: the 16 scales as int16 in order, and as int32 in the order `q8_reduce_avx2` leaves
    /// the 16-value sums ([0 2 4 6 | 1 3 5 7] and [8 10 12 14 | 9 11 13 15]).
    __m256i sc16, sc_lo, sc_hi;
} q8g_avx2;

INLINE TARGET_Q8_AVX2 void q8_group_avx2(const int type, const uint8_t *p, const int count, q8g_avx2 *g) {
    const __m256i zero = _mm256_setzero_si256(), low4 = _mm256_set1_epi8(0x0F);
    g->m = _mm256_setzero_ps();
    switch (type) {
    case REPENG_QUANT_Q4_0:
        for (int b = 0; b < 8; b++) g->q[b] = b < count ? q8_nibbles_avx2(p + 18 * b + 2) : zero;
        g->a = q8_halves_avx2(p, 18, count);
        break;
    case REPENG_QUANT_Q4_1:
        for (int b = 0; b < 8; b++) g->q[b] = b < count ? q8_nibbles_avx2(p + 20 * b + 4) : zero;
        g->a = q8_halves_avx2(p, 20, count);
        g->m = q8_halves_avx2(p + 2, 20, count);
        break;
    case REPENG_QUANT_Q5_0:
        for (int b = 0; b < 8; b++)
            g->q[b] = b < count ? _mm256_or_si256(q8_nibbles_avx2(p + 22 * b + 6), q8_bits5_avx2(p + 22 * b + 2)) : zero;
        g->a = q8_halves_avx2(p, 22, count);
        break;
    case REPENG_QUANT_Q5_1:
        for (int b = 0; b < 8; b++)
            g->q[b] = b < count ? _mm256_or_si256(q8_nibbles_avx2(p + 24 * b + 8), q8_bits5_avx2(p + 24 * b + 4)) : zero;
        g->a = q8_halves_avx2(p, 24, count);
        g->m = q8_halves_avx2(p + 2, 24, count);
        break;
    case REPENG_QUANT_Q8_0:
        for (int b = 0; b < 8; b++) g->q[b] = b < count ? _mm256_loadu_si256((const __m256i *)(p + 34 * b + 2)) : zero;
        g->a = q8_halves_avx2(p, 34, count);
        break;
    case REPENG_QUANT_Q4_K:
    case REPENG_QUANT_Q5_K: {
        const int q5 = type == REPENG_QUANT_Q5_K;
        uint64_t s6, m6;
        q8_k_scales(p + 4, &s6, &m6);
        const __m256 d = _mm256_set1_ps(half_to_float(load_u16(p))), nmin = _mm256_set1_ps(-half_to_float(load_u16(p + 2)));
        g->a = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)s6))));
        g->m = _mm256_mul_ps(nmin, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)m6))));
        __m256i h = q5 ? _mm256_loadu_si256((const __m256i *)(p + 16)) : zero;
        const __m256i bit4 = _mm256_set1_epi8(0x10);
        for (int c = 0; c < 4; c++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(p + (q5 ? 48 : 16) + 32 * c));
            __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
            if (q5) {
                // Sub-block 2c takes bit 2c of qh, 2c + 1 bit 2c + 1: shifted down one at a time.
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(h, 4), bit4));
                h = _mm256_srli_epi16(h, 1);
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(h, 4), bit4));
                h = _mm256_srli_epi16(h, 1);
            }
            g->q[2 * c] = lo;
            g->q[2 * c + 1] = hi;
        }
        break;
    }
    default: {  // Q6_K
        g->a = _mm256_set1_ps(half_to_float(load_u16(p + 208)));
        const __m128i sc = _mm_loadu_si128((const __m128i *)(p + 192));
        g->sc16 = _mm256_cvtepi8_epi16(sc);
        const __m128i order = _mm_shuffle_epi8(sc, _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15));
        g->sc_lo = _mm256_cvtepi8_epi32(order);
        g->sc_hi = _mm256_cvtepi8_epi32(_mm_srli_si128(order, 8));
        const __m256i bits = _mm256_set1_epi8(0x30);
        for (int half = 0; half < 2; half++) {
            const __m256i a = _mm256_loadu_si256((const __m256i *)(p + 64 * half));
            const __m256i c = _mm256_loadu_si256((const __m256i *)(p + 64 * half + 32));
            const __m256i h = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * half));
            g->q[4 * half] = _mm256_or_si256(_mm256_and_si256(a, low4), _mm256_and_si256(_mm256_slli_epi16(h, 4), bits));
            g->q[4 * half + 1] = _mm256_or_si256(_mm256_and_si256(c, low4), _mm256_and_si256(_mm256_slli_epi16(h, 2), bits));
            g->q[4 * half + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), low4), _mm256_and_si256(h, bits));
            g->q[4 * half + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), low4),
                                                 _mm256_and_si256(_mm256_srli_epi16(h, 2), bits));
        }
        break;
    }
    }
}

/// The exact integer sums of a group's 8 blocks (8 int32 each, from vpmaddwd) as one vector in
/// block order; Q6_K multiplies each 16-value sum by its scale on the way.
INLINE TARGET_Q8_AVX2 __m256i q8_reduce_avx2(const int type, const __m256i p[8], const q8g_avx2 *g) {
    __m256i q0 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
    __m256i q1 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
    // q0's low half holds the sums of values 0-15 of blocks 0-3, its high half values 16-31.
    if (type == REPENG_QUANT_Q6_K) {
        q0 = _mm256_mullo_epi32(q0, g->sc_lo);
        q1 = _mm256_mullo_epi32(q1, g->sc_hi);
    }
    return _mm256_add_epi32(_mm256_permute2x128_si256(q0, q1, 0x20), _mm256_permute2x128_si256(q0, q1, 0x31));
}

/// Takes the weights' offsets back out of the sums (they were multiplied unsigned).
#define Q8_OFFSETS(SUB, SLLI, MADD16, LOADI, I, type, g, x, b0)                                             \
    do {                                                                                                    \
        if ((type) == REPENG_QUANT_Q4_0) I = SUB(I, SLLI(LOADI((x).s + (b0)), 3));                          \
        if ((type) == REPENG_QUANT_Q5_0) I = SUB(I, SLLI(LOADI((x).s + (b0)), 4));                          \
        if ((type) == REPENG_QUANT_Q6_K) I = SUB(I, SLLI(MADD16((g)->sc16, LOADI((x).s16 + 2 * (b0))), 5)); \
    } while (0)

#define Q8_LOADI256(p) _mm256_loadu_si256((const __m256i *)(p))

INLINE TARGET_Q8_AVX2 __m256 q8_group_dot_avx2(const int type, const q8g_avx2 *g, q8_row x, long b0, __m256 acc) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i p[8];
    for (int b = 0; b < 8; b++) {
        const __m256i xv = _mm256_loadu_si256((const __m256i *)(x.q + 32 * (b0 + b)));
        const __m256i s = type == REPENG_QUANT_Q8_0
            ? _mm256_maddubs_epi16(_mm256_abs_epi8(g->q[b]), _mm256_sign_epi8(xv, g->q[b]))
            : _mm256_maddubs_epi16(g->q[b], xv);
        p[b] = _mm256_madd_epi16(s, ones);
    }
    __m256i I = q8_reduce_avx2(type, p, g);
    Q8_OFFSETS(_mm256_sub_epi32, _mm256_slli_epi32, _mm256_madd_epi16, Q8_LOADI256, I, type, g, x, b0);
    Q8_FLOAT_STEP(__m256, _mm256_loadu_ps, _mm256_mul_ps, _mm256_add_ps, _mm256_cvtepi32_ps, acc, g, x, b0, I,
                  q8_has_min(type));
    return acc;
}

INLINE TARGET_Q8_AVX2 void q8_store_avx2(float *p, __m256 v) { _mm256_storeu_ps(p, v); }
DEFINE_Q8_ROWS(q8_rows_avx2, TARGET_Q8_AVX2, q8g_avx2, q8_group_avx2, q8_group_dot_avx2, __m256, _mm256_setzero_ps(),
               q8_store_avx2)
DEFINE_Q8_PRODUCT(q8_product_avx2, TARGET_Q8_AVX2, q8_rows_avx2)

// MARK: AVX-512BW and AVX-512 VNNI (two blocks per vector; VNNI: one vpdpbusd per pair)

#define TARGET_Q8_AVX512 __attribute__((target("avx512f,avx512bw,avx2,fma,f16c")))

typedef struct {
    q8g_avx2 blocks;
    /// Blocks 2k and 2k + 1 in one vector (VNNI, Q8_0: offset by 128 to be unsigned).
    __m512i q[4];
    /// Q6_K: the 16 scales as int32 in the order `q8_group_dot_avx512` leaves the 16-value sums.
    __m512i sc;
} q8g_avx512;

/// The AVX2 group, paired up. `vnni` is a constant: the VNNI kernel multiplies Q8_0 unsigned.
INLINE TARGET_Q8_AVX512 void q8_group_avx512(const int type, const int vnni, const uint8_t *p, const int count, q8g_avx512 *g) {
    q8_group_avx2(type, p, count, &g->blocks);
    for (int k = 0; k < 4; k++) {
        __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(g->blocks.q[2 * k]), g->blocks.q[2 * k + 1], 1);
        if (vnni && type == REPENG_QUANT_Q8_0) v = _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));
        g->q[k] = v;
    }
    if (type == REPENG_QUANT_Q6_K) {
        const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 192)));
        g->sc = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), sc);
    }
}

INLINE TARGET_Q8_AVX512 __m256 q8_group_dot_avx512(const int type, const int vnni, const q8g_avx512 *g, q8_row x, long b0,
                                                   __m256 acc) {
    const __m512i ones = _mm512_set1_epi16(1), zero = _mm512_setzero_si512();
    __m512i p[4];
    for (int k = 0; k < 4; k++) {
        const __m512i xv = _mm512_loadu_si512((const void *)(x.q + 32 * b0 + 64 * k));
        if (vnni) {
            // vpdpbusd: unsigned bytes of the second source by signed bytes of the first, in
            // fours, into int32 (no int16 step to saturate). Inline assembly, so the function
            // needs no VNNI target and the same code serves both variants; it runs only where
            // the CPU reported VNNI.
            __m512i s = zero;
            __asm__("vpdpbusd %[x], %[w], %[s]" : [s] "+v"(s) : [w] "v"(g->q[k]), [x] "v"(xv));
            p[k] = s;
        } else if (type == REPENG_QUANT_Q8_0) {
            const __m512i xs = _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(g->q[k]), zero, xv);
            p[k] = _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(g->q[k]), xs), ones);
        } else {
            p[k] = _mm512_madd_epi16(_mm512_maddubs_epi16(g->q[k], xv), ones);
        }
    }
    // Per 128-bit quarter q of the four pairs: u.q = [Σ p0.q, Σ p1.q, Σ p2.q, Σ p3.q]. Quarters 0
    // and 1 hold values 0-15 and 16-31 of blocks 0, 2, 4, 6; quarters 2 and 3 of blocks 1, 3, 5, 7.
    const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[0], p[1]), _mm512_unpackhi_epi32(p[0], p[1]));
    const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2], p[3]), _mm512_unpackhi_epi32(p[2], p[3]));
    __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
    if (type == REPENG_QUANT_Q6_K) u = _mm512_mullo_epi32(u, g->sc);
    const __m512i v = _mm512_add_epi32(u, _mm512_shuffle_i32x4(u, u, _MM_SHUFFLE(2, 3, 0, 1)));
    __m256i I = _mm512_castsi512_si256(
        _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 0, 8, 1, 9, 2, 10, 3, 11), v));
    if (vnni && type == REPENG_QUANT_Q8_0) I = _mm256_sub_epi32(I, _mm256_slli_epi32(Q8_LOADI256(x.s + b0), 7));
    Q8_OFFSETS(_mm256_sub_epi32, _mm256_slli_epi32, _mm256_madd_epi16, Q8_LOADI256, I, type, (&g->blocks), x, b0);
    Q8_FLOAT_STEP(__m256, _mm256_loadu_ps, _mm256_mul_ps, _mm256_add_ps, _mm256_cvtepi32_ps, acc, (&g->blocks), x, b0, I,
                  q8_has_min(type));
    return acc;
}

INLINE TARGET_Q8_AVX512 void q8_group_avx512bw(const int type, const uint8_t *p, const int count, q8g_avx512 *g) {
    q8_group_avx512(type, 0, p, count, g);
}
INLINE TARGET_Q8_AVX512 void q8_group_avx512vnni(const int type, const uint8_t *p, const int count, q8g_avx512 *g) {
    q8_group_avx512(type, 1, p, count, g);
}
INLINE TARGET_Q8_AVX512 __m256 q8_group_dot_avx512bw(const int type, const q8g_avx512 *g, q8_row x, long b0, __m256 acc) {
    return q8_group_dot_avx512(type, 0, g, x, b0, acc);
}
INLINE TARGET_Q8_AVX512 __m256 q8_group_dot_avx512vnni(const int type, const q8g_avx512 *g, q8_row x, long b0, __m256 acc) {
    return q8_group_dot_avx512(type, 1, g, x, b0, acc);
}

DEFINE_Q8_ROWS(q8_rows_avx512bw, TARGET_Q8_AVX512, q8g_avx512, q8_group_avx512bw, q8_group_dot_avx512bw, __m256,
               _mm256_setzero_ps(), q8_store_avx2)
DEFINE_Q8_ROWS(q8_rows_avx512vnni, TARGET_Q8_AVX512, q8g_avx512, q8_group_avx512vnni, q8_group_dot_avx512vnni, __m256,
               _mm256_setzero_ps(), q8_store_avx2)
DEFINE_Q8_PRODUCT(q8_product_avx512bw, TARGET_Q8_AVX512, q8_rows_avx512bw)
DEFINE_Q8_PRODUCT(q8_product_avx512vnni, TARGET_Q8_AVX512, q8_rows_avx512vnni)

/// AVX-512BW, asked once (the AVX-512 level needs only AVX-512F; without BW the int8 path runs AVX2).
static int cpu_avx512bw(void) {
    static int known = -1;
    int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (k < 0) {
        __builtin_cpu_init();
        k = __builtin_cpu_supports("avx512bw") ? 1 : 0;
        __atomic_store_n(&known, k, __ATOMIC_RELAXED);
    }
    return k;
}

#endif

// MARK: Entry points

int repeng_q8_supports(int type) {
    switch (type) {
    case REPENG_QUANT_Q4_0: case REPENG_QUANT_Q4_1: case REPENG_QUANT_Q5_0: case REPENG_QUANT_Q5_1:
    case REPENG_QUANT_Q8_0: case REPENG_QUANT_Q4_K: case REPENG_QUANT_Q5_K: case REPENG_QUANT_Q6_K:
        return 1;
    default:
        return 0;
    }
}

long repeng_q8_row_bytes(long cols) { return q8_stride(cols); }

const void *repeng_q8_quantize(int level, const float *x, long n, long ldx, long cols) {
    void *out = scratch_q8(n * q8_stride(cols));
    if (!out) return NULL;
#if defined(__x86_64__)
    if (runnable(level) >= REPENG_KERNELS_AVX2) {
        q8_quantize_avx2(x, n, ldx, cols, out);
        return out;
    }
#endif
    q8_quantize_base(x, n, ldx, cols, out);
    return out;
}

void repeng_q8_product(int level, int type, const void *xq, long n, long cols, const void *w, long row_bytes,
                       long row_begin, long row_end, float *y, long ldy, int accumulate) {
    const uint8_t *wb = w;
#if defined(__x86_64__)
    const int l = runnable(level);
    if (l >= REPENG_KERNELS_AVX512VNNI) {
        q8_product_avx512vnni(type, xq, n, cols, wb, row_bytes, row_begin, row_end, y, ldy, accumulate);
        return;
    }
    if (l >= REPENG_KERNELS_AVX512 && cpu_avx512bw()) {
        q8_product_avx512bw(type, xq, n, cols, wb, row_bytes, row_begin, row_end, y, ldy, accumulate);
        return;
    }
    if (l >= REPENG_KERNELS_AVX2) {
        q8_product_avx2(type, xq, n, cols, wb, row_bytes, row_begin, row_end, y, ldy, accumulate);
        return;
    }
#endif
    q8_product_base(type, xq, n, cols, wb, row_bytes, row_begin, row_end, y, ldy, accumulate);
}

int repeng_quant_product_q8(int level, int type, const float *x, long n, long ldx, const void *w, long row_bytes,
                            long cols, long row_begin, long row_end, float *y, long ldy, int accumulate) {
    if (!repeng_q8_supports(type))
        return repeng_quant_product(level, type, x, n, ldx, w, row_bytes, cols, row_begin, row_end, y, ldy, accumulate);
    const void *xq = repeng_q8_quantize(level, x, n, ldx, cols);
    if (!xq) return -1;
    repeng_q8_product(level, type, xq, n, cols, w, row_bytes, row_begin, row_end, y, ldy, accumulate);
    return 0;
}

int repeng_quant_product_q8_reference(int type, const float *x, long n, long ldx, const void *w, long row_bytes,
                                      long cols, long row_begin, long row_end, float *y, long ldy, int accumulate) {
    if (!repeng_q8_supports(type)) return -1;
    void *xq = malloc((size_t)(n * q8_stride(cols)));
    if (!xq) return -1;
    q8_quantize_reference(x, n, ldx, cols, xq);
    q8_product_reference(type, xq, n, cols, w, row_bytes, row_begin, row_end, y, ldy, accumulate);
    free(xq);
    return 0;
}
