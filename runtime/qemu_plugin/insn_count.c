/* onnxcc's TCG plugin for QEMU: counts the guest instructions executed, in total and inside
 * windows marked by pairs of guest addresses.
 *
 * Built for the host by onnxcc.runtime.qemu (gcc -shared -fPIC) and loaded with
 *   qemu-system-... -plugin insn_count.so,out=FILE[,start=ADDR,stop=ADDR][,marks=FILE]
 * ``start``/``stop`` give window 0; ``marks`` names a text file of more windows, one
 * "START STOP" pair of addresses per line (C syntax: 0x...). At exit it writes to FILE
 *   onnxcc-insns total=T
 *   onnxcc-window K region=R windows=W          (one line per window K)
 * T counts every guest instruction executed; window K's R those executed from each execution of
 * its START instruction (included) to the next execution of its STOP instruction (excluded),
 * summed over the W such spans. Windows are independent: they may nest or overlap.
 * onnxcc.runtime.qemu sets window 0 to the first instruction of <m>_run and the instruction
 * after the harness's call to it, so its R is exactly the instructions of one inference, <m>_run's
 * own and those of everything it calls; further windows span each call <m>_run makes (from the
 * call instruction to the one after it).
 *
 * How: each translation block (TB) gets an inline 64-bit add of its instruction count, run when
 * the TB is entered (QEMU_PLUGIN_INLINE_ADD_U64, no helper call, so counting stays cheap). The
 * marked instructions get an exec callback besides; since the counter already holds the whole
 * TB when an instruction of it runs, the callback subtracts the instructions of the TB from the
 * marked one to its end (passed in the callback's data) to read the count before the marked
 * instruction. Instructions that are translated but not architecturally executed (a false
 * condition in an IT block) are counted, as the Arm ARM counts them; a TB left early by a
 * synchronous exception would be counted whole (the firmware onnxcc runs takes none).
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

struct window {
    uint64_t start, stop;     /* guest addresses */
    uint64_t base, region, spans;
    int open;
};

/* The callback data packs the window index (bits 32 and up), the instructions from the marked
 * one to the end of its TB (bits 1-31; a TB holds at most 512) and the stop flag (bit 0). */
typedef char onnxcc_pointers_hold_64_bits[sizeof(uintptr_t) >= 8 ? 1 : -1];
#define MAX_WINDOWS 65536u

static uint64_t executed;            /* instructions of every TB entered (one vCPU) */
static struct window *windows;
static size_t n_windows;
static char out_path[4096];

static void on_mark(unsigned int vcpu_index, void *userdata)
{
    uintptr_t data = (uintptr_t)userdata;
    struct window *w = &windows[data >> 32];
    uint64_t before = executed - (uint64_t)((data & 0xffffffffu) >> 1);
    (void)vcpu_index;
    if (data & 1u) {
        if (w->open) {
            w->region += before - w->base;
            w->spans += 1;
            w->open = 0;
        }
    } else if (!w->open) {
        w->base = before;
        w->open = 1;
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb), i, k;
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed, n);
    for (i = 0; i < n && n_windows; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        uintptr_t tail = (uintptr_t)(n - i) << 1;
        for (k = 0; k < n_windows; ++k) {
            uintptr_t data = ((uintptr_t)k << 32) | tail;
            /* stop before start: with start == stop every execution closes one span and
             * opens the next */
            if (pc == windows[k].stop)
                qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS,
                                                       (void *)(data | 1u));
            if (pc == windows[k].start)
                qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS,
                                                       (void *)data);
        }
    }
}

static void write_counts(qemu_plugin_id_t id, void *userdata)
{
    FILE *f;
    size_t k;
    (void)id;
    (void)userdata;
    f = fopen(out_path, "w");
    if (!f) {
        qemu_plugin_outs("onnxcc insn_count: cannot write the out= file\n");
        return;
    }
    fprintf(f, "onnxcc-insns total=%" PRIu64 "\n", executed);
    for (k = 0; k < n_windows; ++k)
        fprintf(f, "onnxcc-window %zu region=%" PRIu64 " windows=%" PRIu64 "\n", k,
                windows[k].region, windows[k].spans);
    fclose(f);
}

static int parse_addr(const char *text, uint64_t *addr)
{
    char *end;
    *addr = (uint64_t)strtoull(text, &end, 0);
    return end == text || *end != '\0';
}

static int add_window(uint64_t start, uint64_t stop)
{
    struct window *grown;
    if (n_windows == MAX_WINDOWS) return 1;
    grown = (struct window *)realloc(windows, (n_windows + 1) * sizeof *windows);
    if (!grown) return 1;
    windows = grown;
    memset(&windows[n_windows], 0, sizeof *windows);
    windows[n_windows].start = start;
    windows[n_windows].stop = stop;
    n_windows += 1;
    return 0;
}

/* Reads "START STOP" lines; returns nonzero on a malformed file. */
static int read_marks(const char *path)
{
    char line[256], a[64], b[64];
    uint64_t start, stop;
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%63s %63s", a, b) != 2 || parse_addr(a, &start)
            || parse_addr(b, &stop) || add_window(start, stop)) {
            fclose(f);
            return 1;
        }
    }
    fclose(f);
    return 0;
}

ONNXCC_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                             int argc, char **argv)
{
    int k, have_start = 0, have_stop = 0;
    uint64_t start = 0, stop = 0;
    const char *marks = NULL;
    (void)info;
    out_path[0] = '\0';
    for (k = 0; k < argc; ++k) {
        const char *a = argv[k];
        if (strncmp(a, "out=", 4) == 0 && strlen(a + 4) < sizeof out_path) {
            strcpy(out_path, a + 4);
        } else if (strncmp(a, "start=", 6) == 0 && !parse_addr(a + 6, &start)) {
            have_start = 1;
        } else if (strncmp(a, "stop=", 5) == 0 && !parse_addr(a + 5, &stop)) {
            have_stop = 1;
        } else if (strncmp(a, "marks=", 6) == 0) {
            marks = a + 6;
        } else {
            fprintf(stderr, "onnxcc insn_count: bad argument '%s' (want out=FILE, "
                    "start=ADDR, stop=ADDR, marks=FILE)\n", a);
            return -1;
        }
    }
    if (out_path[0] == '\0' || have_start != have_stop) {
        fprintf(stderr, "onnxcc insn_count: needs out=FILE, and start= with stop=\n");
        return -1;
    }
    if ((have_start && add_window(start, stop)) || (marks && read_marks(marks))) {
        fprintf(stderr, "onnxcc insn_count: cannot read the windows (marks=%s)\n",
                marks ? marks : "");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, write_counts, NULL);
    return 0;
}
