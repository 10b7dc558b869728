/* onnxcc runtime: the only header a generated library needs besides libc's <math.h>,
 * <stdint.h>, <stddef.h> and <string.h>. C99, no malloc, no stdio. */
#ifndef ONNXCC_RT_H
#define ONNXCC_RT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ONNXCC_RT_VERSION 1

/* Element types, numbered as ONNX TensorProto.DataType. */
enum {
    ONNXCC_FLOAT32 = 1, ONNXCC_UINT8 = 2, ONNXCC_INT8 = 3, ONNXCC_UINT16 = 4, ONNXCC_INT16 = 5,
    ONNXCC_INT32 = 6, ONNXCC_INT64 = 7, ONNXCC_BOOL = 9, ONNXCC_FLOAT64 = 11,
    ONNXCC_UINT32 = 12, ONNXCC_UINT64 = 13
};

/* Static description of one model input or output. Shapes are in elements, row-major. */
typedef struct {
    const char *name;       /* the ONNX tensor name, escaped */
    int32_t dtype;          /* ONNXCC_FLOAT32, ... */
    int32_t rank;
    const int32_t *shape;   /* rank entries */
    size_t bytes;           /* size of the whole tensor in bytes */
    const char *layout;     /* "NCHW", "NC", ... or "" when the rank has no usual layout */
} onnxcc_tensor_info;

/* Kernels are kept out of line: inlining hundreds of layer loops into one run function makes
 * compile time explode (clang) and the run function's stack frame the sum of all layers'. */
#if defined(__GNUC__) || defined(__clang__)
#define ONNXCC_NOINLINE __attribute__((noinline))
#else
#define ONNXCC_NOINLINE
#endif

/* True when pointer p is aligned to a (a power of two) bytes. */
#define ONNXCC_IS_ALIGNED(p, a) ((((uintptr_t)(const void *)(p)) & ((uintptr_t)(a) - 1u)) == 0u)

/* Fixed-point requantization: x * multiplier / 2^31 / 2^shift, rounded exactly as gemmlowp
 * (https://github.com/google/gemmlowp, fixedpoint/fixedpoint.h) and TFLite's
 * MultiplyByQuantizedMultiplier round for a right shift:
 *   1. SaturatingRoundingDoublingHighMul: (x * multiplier + nudge) / 2^31 with C's division
 *      toward zero and nudge 2^30 (product >= 0) or 1 - 2^30 (product < 0), which rounds a tie
 *      toward +infinity; the one overflowing case, INT32_MIN * INT32_MIN, saturates to INT32_MAX;
 *   2. RoundingDivideByPOT(., shift): a tie rounds away from zero.
 * gemmlowp writes step 2 as `(x >> shift) + (remainder > threshold)`; a right shift of a negative
 * int32_t is implementation-defined in C, so step 2 here divides the magnitude instead (the same
 * result, tested bit-exact against a numpy model of gemmlowp). `shift` is a right shift, clamped
 * to 0..31 (fold a left shift into the multiplier). */
static inline int32_t onnxcc_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    int64_t prod = (int64_t)x * (int64_t)multiplier;
    int64_t high = (prod + (prod >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30)))) / ((int64_t)1 << 31);
    int64_t d, half;
    if (high > INT32_MAX) high = INT32_MAX;   /* only INT32_MIN * INT32_MIN */
    if (shift < 0) shift = 0;
    if (shift > 31) shift = 31;
    d = (int64_t)1 << shift;
    half = d / 2;
    high = high >= 0 ? (high + half) / d : -((half - high) / d);
    return (int32_t)high;
}

#ifdef __cplusplus
}
#endif
#endif /* ONNXCC_RT_H */
