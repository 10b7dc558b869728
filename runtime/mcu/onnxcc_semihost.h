/* Semihosting calls provided by onnxcc_semihost.c (onnxcc.runtime.qemu). Not part of a generated library. */
#ifndef ONNXCC_SEMIHOST_H
#define ONNXCC_SEMIHOST_H

/* Writes a NUL-terminated string to the host's stdout. */
void onnxcc_semihost_write0(const char *s);
/* Ends the run; QEMU exits with `status`. */
void onnxcc_semihost_exit(int status);

#endif
