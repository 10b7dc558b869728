// onnxcc's hls::stream for C-simulation: a FIFO with the interface of Vitis HLS's hls::stream
// (read, write, empty, full, size), written for onnxcc (the vendor header is not copied).
// Under synthesis (__SYNTHESIS__) Vitis HLS's own <hls_stream.h> is used instead. C-simulation
// runs the DATAFLOW region's functions one after another, so the FIFO grows as needed; reading
// an empty stream is a bug in the design and stops the program.
#ifndef ONNXCC_STREAM_H
#define ONNXCC_STREAM_H

#ifdef __SYNTHESIS__
#include <hls_stream.h>
#else
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <deque>

namespace hls {

template <class T> class stream {
  public:
    stream() {}
    explicit stream(const char *name) { (void)name; }
    void write(const T &v) { q_.push_back(v); }
    T read() {
        if (q_.empty()) {
            std::fprintf(stderr, "onnxcc: read from an empty hls::stream\n");
            std::abort();
        }
        T v = q_.front();
        q_.pop_front();
        return v;
    }
    bool empty() const { return q_.empty(); }
    bool full() const { return false; }
    std::size_t size() const { return q_.size(); }

  private:
    stream(const stream &);
    stream &operator=(const stream &);
    std::deque<T> q_;
};

}  // namespace hls
#endif

#endif
