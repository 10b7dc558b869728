"""LLVM back end: the loop IR rendered through llvmlite, optimized at O3 for a CPU, JIT-run or
written as an object file beside the C back end's header."""
