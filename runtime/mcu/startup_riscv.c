/* Minimal RV32 startup for firmware run under QEMU's `virt` board with `-bios none`
 * (onnxcc.runtime.qemu): Reset_Handler (placed first, where the board's reset code jumps) sets
 * the stack and global pointers and the trap vector, copies .data, zeroes .bss and calls main in
 * machine mode; every trap (there should be none) reports over semihosting (onnxcc_semihost.c).
 * Not part of a generated library. Linker symbols come from firmware.ld. */
#include <stdint.h>
#include <stddef.h>

#include "onnxcc_semihost.h"

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[];

int main(void);
void onnxcc_reset(void);
void onnxcc_trap(void);
void Reset_Handler(void);

__attribute__((naked, section(".isr_vector"), used))
void Reset_Handler(void)
{
    __asm__ volatile(".option push\n\t.option norelax\n\t"
                     "la gp, __global_pointer$\n\t.option pop\n\t"
                     "la sp, _estack\n\t"
                     "la t0, onnxcc_trap\n\t"
                     ".option push\n\t.option arch, +zicsr\n\tcsrw mtvec, t0\n\t.option pop\n\t"
                     "j onnxcc_reset");
}

void onnxcc_reset(void)
{
    uint32_t *src, *dst;
    for (src = _sidata, dst = _sdata; dst < _edata;)
        *dst++ = *src++;
    for (dst = _sbss; dst < _ebss;)
        *dst++ = 0u;
    onnxcc_semihost_exit(main());
}

/* mtvec needs 4-byte alignment; any trap is a fault here (nothing enables interrupts). */
__attribute__((aligned(4)))
void onnxcc_trap(void)
{
    onnxcc_semihost_write0("onnxcc-fault\n");
    onnxcc_semihost_exit(0xFE);
}
