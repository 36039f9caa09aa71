// hls_stream.h -- nnfab's minimal hls::stream for g++ C simulation.
//
// Written for nnfab from the documented behaviour of the HLS stream class (AMD/Xilinx
// UG1399): a first-in first-out channel with blocking read()/write(), non-blocking
// read_nb()/write_nb(), empty()/full()/size() and the << / >> operators. In C simulation
// a stream is unbounded (the depth only matters in hardware). Vendor HLS tools use their
// own header. Reading an empty stream prints a message and returns a default value, as
// the vendor's C simulation does; nnfab_stream_underflows() counts such reads.

#ifndef NNFAB_HLS_STREAM_H
#define NNFAB_HLS_STREAM_H

#include <cstddef>
#include <cstdio>
#include <deque>
#include <string>

namespace hls {

namespace detail {
inline long& underflows() {
  static thread_local long count = 0;
  return count;
}
}  // namespace detail

// Reads of empty streams in this thread so far.
inline long nnfab_stream_underflows() { return detail::underflows(); }

template <class T, int DEPTH = 0>
class stream {
 public:
  stream() {}
  explicit stream(const char* name) : name_(name) {}
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;

  void write(const T& value) { items_.push_back(value); }
  bool write_nb(const T& value) {
    write(value);
    return true;
  }
  T read() {
    if (items_.empty()) {
      if (detail::underflows()++ == 0) {
        std::fprintf(stderr, "hls::stream '%s' read while empty\n", name_.c_str());
      }
      return T();
    }
    T value = items_.front();
    items_.pop_front();
    return value;
  }
  void read(T& value) { value = read(); }
  bool read_nb(T& value) {
    if (items_.empty()) return false;
    value = read();
    return true;
  }
  bool empty() const { return items_.empty(); }
  bool full() const { return false; }
  std::size_t size() const { return items_.size(); }
  stream& operator<<(const T& value) {
    write(value);
    return *this;
  }
  stream& operator>>(T& value) {
    value = read();
    return *this;
  }

 private:
  std::deque<T> items_;
  std::string name_;
};

}  // namespace hls

#endif  // NNFAB_HLS_STREAM_H
