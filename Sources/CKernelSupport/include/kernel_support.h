// Small CPU hints for the engine's Swift kernels that Swift itself does not expose, and the
// multiply-accumulate kernels compiled per instruction-set level and chosen at run time.
#ifndef REPENG_KERNEL_SUPPORT_H
#define REPENG_KERNEL_SUPPORT_H

/// Asks the CPU to start loading the cache line at `address` for reading (no fault if the
/// address is invalid; a hint only, results never depend on it).
static inline void repeng_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

/// Tells the CPU this thread is spinning on a shared variable (x86 `pause`, Arm `yield`), so
/// the wait costs less power and less of a sibling thread's time.
static inline void repeng_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// MARK: Multiply-accumulate kernels, one per instruction-set level (dispatch.c)

/// Instruction-set levels of the kernels in dispatch.c.
enum {
    /// Portable vector code (SSE2 on x86-64), multiply and add not fused.
    REPENG_KERNELS_BASELINE = 0,
    /// AVX2 with FMA, 8 lanes.
    REPENG_KERNELS_AVX2 = 1,
    /// AVX-512F, 16 lanes (the int8 kernels: AVX-512BW where the CPU has it, else AVX2's).
    REPENG_KERNELS_AVX512 = 2,
    /// AVX-512 with VNNI: the f32 kernels as AVX512, the int8 kernels with vpdpbusd.
    REPENG_KERNELS_AVX512VNNI = 3,
};

/// The widest level this CPU runs.
int repeng_kernels_supported(void);

/// The level the engine uses: the supported one, or a lower one asked for by the environment
/// variable REPENG_KERNELS (baseline, avx2, avx512, avx512vnni). Read once.
int repeng_kernels_level(void);

/// y[i, j] (+)= sum_k x[i, k] * w[j, k] for i < n and row_begin <= j < row_end, at `level` (a
/// level above the CPU's runs the CPU's). x rows `ldx` apart, y rows `ldy` apart, w rows `cols` apart.
void repeng_streaming_product(int level, const float *x, long n, long ldx, const float *w, long cols, long row_begin,
                              long row_end, float *y, long ldy, int accumulate);

/// Scores of 6 query rows (rows past `rows` repeat the last) against `keys` keys packed
/// transposed (`ldk` apart, `keys` rounded up to 16): scores[r * ldk + j] = scale * q[r] . k[j].
void repeng_causal_scores(int level, const float *q, long ldq, long rows, const float *keysT, long ldk, long keys,
                          long head_dim, float scale, float *scores);

/// out[r] = sum_j scores[r * ldk + j] * values[j] for r < rows, `head_dim` a multiple of 16.
void repeng_causal_values(int level, const float *values, long ldv, long keys, const float *scores, long ldk,
                          long head_dim, long rows, float *out, long ldo);

/// Weight encodings `repeng_quant_product` reads (ggml type numbers).
enum {
    REPENG_QUANT_F16 = 1,
    REPENG_QUANT_Q4_0 = 2,
    REPENG_QUANT_Q4_1 = 3,
    REPENG_QUANT_Q5_0 = 6,
    REPENG_QUANT_Q5_1 = 7,
    REPENG_QUANT_Q8_0 = 8,
    REPENG_QUANT_Q4_K = 12,
    REPENG_QUANT_Q5_K = 13,
    REPENG_QUANT_Q6_K = 14,
    REPENG_QUANT_BF16 = 30,
};

/// As `repeng_streaming_product`, with w rows in a GGUF encoding (`row_bytes` apart, `cols` a
/// multiple of the type's block size): each weight row is decoded once into the thread's
/// scratch and multiplied by every input row. Returns 0, or -1 when the scratch could not be
/// allocated (nothing written then).
int repeng_quant_product(int level, int type, const float *x, long n, long ldx, const void *w, long row_bytes,
                         long cols, long row_begin, long row_end, float *y, long ldy, int accumulate);

/// Decodes rows row_begin ..< row_end of such a matrix into out (rows `ldo` apart).
void repeng_quant_decode_rows(int type, const void *w, long row_bytes, long cols, long row_begin, long row_end,
                              float *out, long ldo);


// MARK: Int8 activations (decode steps with encoded weights)

/// Whether `repeng_q8_product` handles `type`: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K.
int repeng_q8_supports(int type);

/// Bytes of one input row of `cols` values (a multiple of 32) quantized by `repeng_q8_quantize`.
long repeng_q8_row_bytes(long cols);

/// Quantizes n input rows (`ldx` apart) to int8 per 32 values (scale max|x| / 127, rounded to
/// nearest even) into the calling thread's scratch and returns it, or NULL if memory ran out.
/// Valid until this thread's next call; other threads may read it meanwhile.
const void *repeng_q8_quantize(int level, const float *x, long n, long ldx, long cols);

/// As `repeng_quant_product` for a type `repeng_q8_supports`, with the input rows quantized by
/// `repeng_q8_quantize` (same n and cols): integer dot products per block, scaled in f32. Every
/// level gives bit-identical results, and each output element depends only on its weight row
/// and its input row (not on n or the row range).
void repeng_q8_product(int level, int type, const void *xq, long n, long cols, const void *w, long row_bytes,
                       long row_begin, long row_end, float *y, long ldy, int accumulate);

/// `repeng_q8_quantize` then `repeng_q8_product` (types it does not support: `repeng_quant_product`).
/// Returns 0, or -1 when the scratch could not be allocated (nothing written then).
int repeng_quant_product_q8(int level, int type, const float *x, long n, long ldx, const void *w, long row_bytes,
                            long cols, long row_begin, long row_end, float *y, long ldy, int accumulate);

/// The same product written one value at a time, for tests: every level equals it bit for bit.
/// Returns 0, or -1 for an unsupported type or no memory.
int repeng_quant_product_q8_reference(int type, const float *x, long n, long ldx, const void *w, long row_bytes,
                                      long cols, long row_begin, long row_end, float *y, long ldy, int accumulate);

#endif
