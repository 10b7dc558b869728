/* Minimal Cortex-M4F startup for firmware run under QEMU (onnxcc.runtime.qemu): the vector table,
 * a reset handler that enables the FPU, copies .data from flash, zeroes .bss and calls main, fault
 * handlers that report over semihosting, and the two semihosting calls the harness uses.
 * Not part of a generated library. Linker symbols come from mps2_an386.ld. */
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

#define SEMIHOST_SYS_WRITE0 0x04
#define SEMIHOST_SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

static uint32_t semihost_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt #0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
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

void Reset_Handler(void)
{
    volatile uint32_t *const cpacr = (volatile uint32_t *)0xE000ED88u;
    uint32_t *src, *dst;
    *cpacr |= 0xFu << 20;                      /* CP10 and CP11 full access: the FPU */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
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
    0, 0, 0, 0,
    Default_Handler,  /* SVCall */
    Default_Handler,  /* DebugMonitor */
    0,
    Default_Handler,  /* PendSV */
    Default_Handler,  /* SysTick */
};
