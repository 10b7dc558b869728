/* Minimal Cortex-M startup for firmware run under QEMU (onnxcc.runtime.qemu): the vector table,
 * a reset handler that enables the FPU (on cores built with one), copies .data from flash, zeroes
 * .bss and calls main, and fault handlers that report over semihosting (onnxcc_semihost.c).
 * Builds for ARMv6-M (M0/M0+), ARMv7-M (M3, M4, M7) and ARMv8-M (M33, M55: they start in the
 * secure state, which runs this as is). Not part of a generated library. Linker symbols come from
 * firmware.ld. */
#include <stdint.h>
#include <stddef.h>

#include "onnxcc_semihost.h"

/* Linker symbols, declared as functions so the vector table needs no pointer casts. */
extern void _estack(void);
extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[];

int main(void);
void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);

void Reset_Handler(void)
{
    uint32_t *src, *dst;
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    volatile uint32_t *const cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20;                      /* CP10 and CP11 full access: the FPU (and MVE) */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    for (src = _sidata, dst = _sdata; dst < _edata;)
        *dst++ = *src++;
    for (dst = _sbss; dst < _ebss;)
        *dst++ = 0u;
    onnxcc_semihost_exit(main());
}

void Fault_Handler(void)
{
    onnxcc_semihost_write0("onnxcc-fault\n");
    onnxcc_semihost_exit(0xFE);
}

void Default_Handler(void)
{
    onnxcc_semihost_write0("onnxcc-unexpected-interrupt\n");
    onnxcc_semihost_exit(0xFD);
}

__attribute__((section(".isr_vector"), used))
void (*const onnxcc_vectors[16])(void) = {
    _estack,          /* initial stack pointer */
    Reset_Handler,
    Default_Handler,  /* NMI */
    Fault_Handler,    /* HardFault */
    Fault_Handler,    /* MemManage */
    Fault_Handler,    /* BusFault */
    Fault_Handler,    /* UsageFault */
    Fault_Handler,    /* SecureFault (ARMv8-M) */
    0, 0, 0,
    Default_Handler,  /* SVCall */
    Default_Handler,  /* DebugMonitor */
    0,
    Default_Handler,  /* PendSV */
    Default_Handler,  /* SysTick */
};
