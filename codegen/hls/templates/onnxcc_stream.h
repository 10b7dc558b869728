// onnxcc's hls::stream for C-simulation: a FIFO with the interface of Vitis HLS's hls::stream
// (read, write, empty, full, size), written for onnxcc (the vendor header is not copied).
// Under synthesis (__SYNTHESIS__) Vitis HLS's own <hls_stream.h> is used instead. C-simulation
// runs the DATAFLOW region's functions one after another, so the FIFO grows as needed; reading
// an empty stream is a bug in the design and stops the program. Built with
// -DONNXCC_CSIM_THREADS, the processes run concurrently on FIFOs of their pragma's depth (a
// deadlock check of the depths; below).
#ifndef ONNXCC_STREAM_H
#define ONNXCC_STREAM_H

#ifdef __SYNTHESIS__
#include <hls_stream.h>
// Sequential form (synthesis, plain C-simulation): the DATAFLOW processes are plain calls; a
// FIFO's depth is its STREAM pragma's.
#define ONNXCC_STREAM_DEPTH(s, d)
#define ONNXCC_DATAFLOW_BEGIN
#define ONNXCC_PROCESS(call) call;
#define ONNXCC_DATAFLOW_END
#elif defined(ONNXCC_CSIM_THREADS)
// Concurrent C-simulation (onnxcc's FIFO-depth check, not Vitis's): every DATAFLOW process runs
// in a thread of its own and a stream holds at most the depth of its STREAM pragma
// (ONNXCC_STREAM_DEPTH), so a write to a full FIFO waits for its reader as in hardware. A FIFO too
// shallow for the design deadlocks: after ONNXCC_DEADLOCK_SECONDS without progress the program
// says which stream and stops. For depth experiments without a rebuild, the environment may
// override both: ONNXCC_DEADLOCK_SECONDS=<s> and ONNXCC_CSIM_DEPTHS=<stream>=<depth>,... (the
// name * for every stream).
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#ifndef ONNXCC_DEADLOCK_SECONDS
#define ONNXCC_DEADLOCK_SECONDS 10
#endif

namespace onnxcc_csim {

// seconds without progress before a blocked read or write reports a deadlock
inline long deadlock_seconds() {
    const char *e = std::getenv("ONNXCC_DEADLOCK_SECONDS");
    long s = e ? std::strtol(e, nullptr, 10) : 0;
    return s > 0 ? s : ONNXCC_DEADLOCK_SECONDS;
}

// the depth ONNXCC_CSIM_DEPTHS gives stream `name` (its entry, else a `*` entry), else `depth`
inline std::size_t depth_of(const std::string &name, std::size_t depth) {
    const char *e = std::getenv("ONNXCC_CSIM_DEPTHS");
    std::size_t found = depth, any = 0;
    bool named = false, star = false;
    for (std::string all = e ? e : "", item; !all.empty();) {
        std::size_t comma = all.find(',');
        item = all.substr(0, comma);
        all = comma == std::string::npos ? "" : all.substr(comma + 1);
        std::size_t eq = item.find('=');
        if (eq == std::string::npos) continue;
        std::size_t d = std::strtoul(item.c_str() + eq + 1, nullptr, 10);
        if (item.compare(0, eq, name) == 0 && eq == name.size()) {
            found = d;
            named = true;
        } else if (item.compare(0, eq, "*") == 0 && eq == 1) {
            any = d;
            star = true;
        }
    }
    return named ? found : (star ? any : depth);
}

}  // namespace onnxcc_csim

namespace hls {

template <class T> class stream {
  public:
    stream() : name_("stream"), depth_(0) {}
    explicit stream(const char *name) : name_(name), depth_(0) {}
    void set_depth(std::size_t depth) { depth_ = onnxcc_csim::depth_of(name_, depth); }
    void write(const T &v) {
        std::unique_lock<std::mutex> lock(m_);
        if (!cv_.wait_for(lock, std::chrono::seconds(onnxcc_csim::deadlock_seconds()),
                          [this] { return depth_ == 0 || q_.size() < depth_; }))
            stuck("write to the full");
        q_.push_back(v);
        cv_.notify_all();
    }
    T read() {
        std::unique_lock<std::mutex> lock(m_);
        if (!cv_.wait_for(lock, std::chrono::seconds(onnxcc_csim::deadlock_seconds()),
                          [this] { return !q_.empty(); }))
            stuck("read from the empty");
        T v = q_.front();
        q_.pop_front();
        cv_.notify_all();
        return v;
    }
    bool empty() {
        std::lock_guard<std::mutex> lock(m_);
        return q_.empty();
    }
    bool full() {
        std::lock_guard<std::mutex> lock(m_);
        return depth_ != 0 && q_.size() >= depth_;
    }
    std::size_t size() {
        std::lock_guard<std::mutex> lock(m_);
        return q_.size();
    }

  private:
    void stuck(const char *what) {
        std::fprintf(stderr, "onnxcc: deadlock: %s hls::stream %s (depth %zu)\n", what,
                     name_.c_str(), depth_);
        std::abort();
    }
    stream(const stream &);
    stream &operator=(const stream &);
    std::string name_;
    std::size_t depth_;
    std::deque<T> q_;
    std::mutex m_;
    std::condition_variable cv_;
};

}  // namespace hls
#define ONNXCC_STREAM_DEPTH(s, d) (s).set_depth(d)
#define ONNXCC_DATAFLOW_BEGIN std::vector<std::thread> onnxcc_procs;
#define ONNXCC_PROCESS(call) onnxcc_procs.emplace_back([&] { call; });
#define ONNXCC_DATAFLOW_END for (std::thread &t : onnxcc_procs) t.join();
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
// Sequential form (synthesis, plain C-simulation): the DATAFLOW processes are plain calls; a
// FIFO's depth is its STREAM pragma's.
#define ONNXCC_STREAM_DEPTH(s, d)
#define ONNXCC_DATAFLOW_BEGIN
#define ONNXCC_PROCESS(call) call;
#define ONNXCC_DATAFLOW_END
#endif

#endif
