"""Code generators: ``c`` (MCU and host C99); HLS C++ and LLVM to come."""
