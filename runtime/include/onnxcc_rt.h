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

/* Element types, numbered as ONNX TensorProto.DataType. ONNXCC_FLOAT16 (IEEE binary16) travels
 * as uint16_t bit patterns. */
enum {
    ONNXCC_FLOAT32 = 1, ONNXCC_UINT8 = 2, ONNXCC_INT8 = 3, ONNXCC_UINT16 = 4, ONNXCC_INT16 = 5,
    ONNXCC_INT32 = 6, ONNXCC_INT64 = 7, ONNXCC_BOOL = 9, ONNXCC_FLOAT16 = 10, ONNXCC_FLOAT64 = 11,
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
 * compile time explode (clang) and the run function's stack frame the sum of all layers'.
 * On gcc also noipa (no interprocedural analysis, no constant-propagated clones): gcc 12.2 -O2 on
 * x86-64 clones a kernel for its constant weight pointers, the vectorized loop's ivopts address a
 * weight row from a null base, and local-pure-const takes that load for a NULL access, finds the
 * kernel "pure" and deletes its call (seen on a QGemm whose weight and bias lie in one blob). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8
#define ONNXCC_NOINLINE __attribute__((noinline, noipa))
#elif defined(__GNUC__) || defined(__clang__)
#define ONNXCC_NOINLINE __attribute__((noinline))
#else
#define ONNXCC_NOINLINE
#endif

/* True when pointer p is aligned to a (a power of two) bytes. */
#define ONNXCC_IS_ALIGNED(p, a) ((((uintptr_t)(const void *)(p)) & ((uintptr_t)(a) - 1u)) == 0u)

#ifdef __cplusplus
}
#endif
#endif /* ONNXCC_RT_H */
