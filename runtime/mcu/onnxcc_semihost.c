/* The two semihosting calls the QEMU harness uses (onnxcc.runtime.qemu), for Arm M-profile and
 * RISC-V cores: QEMU runs them on the host when started with `-semihosting-config enable=on`.
 * Not part of a generated library. */
#include <stdint.h>

#include "onnxcc_semihost.h"

#define SEMIHOST_SYS_WRITE0 0x04
#define SEMIHOST_SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

static uint32_t semihost_call(uint32_t op, const void *arg)
{
#if defined(__riscv)
    /* RISC-V: ebreak between two marker no-ops, uncompressed and within one page. */
    register uint32_t a0 __asm__("a0") = op;
    register const void *a1 __asm__("a1") = arg;
    __asm__ volatile(".option push\n\t.option norvc\n\t.balign 16\n\t"
                     "slli x0, x0, 0x1f\n\tebreak\n\tsrai x0, x0, 7\n\t.option pop"
                     : "+r"(a0) : "r"(a1) : "memory");
    return a0;
#else
    /* M-profile: BKPT 0xAB. */
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt #0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
#endif
}

void onnxcc_semihost_write0(const char *s)
{
    semihost_call(SEMIHOST_SYS_WRITE0, s);
}

void onnxcc_semihost_exit(int status)
{
    /* SYS_EXIT_EXTENDED: QEMU exits with `status` as its own exit code. */
    uint32_t block[2];
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)status;
    semihost_call(SEMIHOST_SYS_EXIT_EXTENDED, block);
    for (;;) {
    }
}
