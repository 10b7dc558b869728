/* onnxcc's TCG plugin for QEMU: counts the guest instructions executed, in total and inside
 * windows marked by two guest addresses.
 *
 * Built for the host by onnxcc.runtime.qemu (gcc -shared -fPIC) and loaded with
 *   qemu-system-... -plugin insn_count.so,out=FILE[,start=ADDR,stop=ADDR]
 * At exit it writes one line to FILE:
 *   onnxcc-insns total=T region=R windows=W
 * T counts every guest instruction executed; R those executed from each execution of the
 * instruction at ``start`` (included) to the next execution of the instruction at ``stop``
 * (excluded), summed over the W such windows. onnxcc.runtime.qemu sets ``start`` to the first
 * instruction of <m>_run and ``stop`` to the instruction after the harness's call to it, so R is
 * exactly the instructions of one inference, <m>_run's own and those of everything it calls.
 *
 * How: each translation block (TB) gets an inline 64-bit add of its instruction count, run when
 * the TB is entered (QEMU_PLUGIN_INLINE_ADD_U64, no helper call, so counting stays cheap). The
 * two marked instructions get an exec callback besides; since the counter already holds the
 * whole TB when an instruction of it runs, the callback subtracts the instructions of the TB
 * from the marked one to its end (passed as the callback's data) to read the count before the
 * marked instruction. Instructions that are translated but not architecturally executed
 * (a false condition in an IT block) are counted, as the Arm ARM counts them; a TB left early
 * by a synchronous exception would be counted whole (the firmware onnxcc runs takes none).
 *
 * The declarations below are onnxcc's own, of the subset of QEMU's plugin API (API version 1,
 * the version of QEMU 5.2 to 8.1, Debian 12's 7.2 included) that this file uses; QEMU's
 * qemu-plugin.h is neither installed by Debian nor needed. The functions are resolved from the
 * QEMU binary when QEMU loads the plugin.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ONNXCC_PLUGIN_EXPORT __attribute__((visibility("default")))
#define ONNXCC_QEMU_PLUGIN_API_VERSION 1

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;   /* only passed through */
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);

ONNXCC_PLUGIN_EXPORT int qemu_plugin_version = ONNXCC_QEMU_PLUGIN_API_VERSION;

static uint64_t executed;            /* instructions of every TB entered (one vCPU) */
static uint64_t region, window_base;
static uint64_t windows;
static int counting, marked;
static uint64_t start_addr, stop_addr;
static char out_path[4096];

/* The callback data: the instructions from the marked one to the end of its TB, shifted left
 * once, with the low bit set for the stop mark. */
static void on_mark(unsigned int vcpu_index, void *userdata)
{
    uintptr_t data = (uintptr_t)userdata;
    uint64_t before = executed - (uint64_t)(data >> 1);
    (void)vcpu_index;
    if (data & 1u) {
        if (counting) {
            region += before - window_base;
            windows += 1;
            counting = 0;
        }
    } else if (!counting) {
        window_base = before;
        counting = 1;
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb), i;
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed, n);
    if (!marked) return;
    for (i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        uintptr_t tail = (uintptr_t)(n - i) << 1;
        /* start before stop: with start == stop every execution closes one window and opens
         * the next */
        if (pc == stop_addr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS,
                                                   (void *)(tail | 1u));
        if (pc == start_addr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS,
                                                   (void *)tail);
    }
}

static void write_counts(qemu_plugin_id_t id, void *userdata)
{
    FILE *f;
    (void)id;
    (void)userdata;
    f = fopen(out_path, "w");
    if (!f) {
        qemu_plugin_outs("onnxcc insn_count: cannot write the out= file\n");
        return;
    }
    fprintf(f, "onnxcc-insns total=%" PRIu64 " region=%" PRIu64 " windows=%" PRIu64 "\n",
            executed, region, windows);
    fclose(f);
}

static int parse_addr(const char *text, uint64_t *addr)
{
    char *end;
    *addr = (uint64_t)strtoull(text, &end, 0);
    return end == text || *end != '\0';
}

ONNXCC_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                             int argc, char **argv)
{
    int k, have_start = 0, have_stop = 0;
    (void)info;
    out_path[0] = '\0';
    for (k = 0; k < argc; ++k) {
        const char *a = argv[k];
        if (strncmp(a, "out=", 4) == 0 && strlen(a + 4) < sizeof out_path) {
            strcpy(out_path, a + 4);
        } else if (strncmp(a, "start=", 6) == 0 && !parse_addr(a + 6, &start_addr)) {
            have_start = 1;
        } else if (strncmp(a, "stop=", 5) == 0 && !parse_addr(a + 5, &stop_addr)) {
            have_stop = 1;
        } else {
            fprintf(stderr, "onnxcc insn_count: bad argument '%s' (want out=FILE, "
                    "start=ADDR, stop=ADDR)\n", a);
            return -1;
        }
    }
    if (out_path[0] == '\0' || have_start != have_stop) {
        fprintf(stderr, "onnxcc insn_count: needs out=FILE, and start= with stop=\n");
        return -1;
    }
    marked = have_start;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, write_counts, NULL);
    return 0;
}
