// nnfab_common.h -- shared helpers of nnfab's HLS layer library.
//
// The library compiles with the vendor's ap_fixed.h under Vitis/Vivado HLS and with
// nnfab's own ap_fixed.h under g++; it only uses the documented ap_[u]fixed API
// (construction, + - * and comparisons, to_int on integer-valued types). Arithmetic
// follows docs/semantics.md of nnfab: every product is exact, every assignment is a
// cast to the target type (rounding, then overflow).

#ifndef NNFAB_COMMON_H
#define NNFAB_COMMON_H

#include "ap_fixed.h"

// HLS pragmas only reach the synthesis tool: plain compilers would warn about them.
#ifdef __SYNTHESIS__
#define NNFAB_PRAGMA(...) _Pragma(#__VA_ARGS__)
#else
#define NNFAB_PRAGMA(...)
#endif

// Pragmas whose spelling differs between Vitis HLS and Vivado HLS (defines.h of a Vitis
// project defines NNFAB_VITIS_HLS): at most LIMIT multipliers in the enclosing scope, and
// a constant array kept in block-RAM ROM.
#ifdef NNFAB_VITIS_HLS
#define NNFAB_ALLOCATION_MUL(LIMIT) \
  NNFAB_PRAGMA(HLS ALLOCATION operation instances=mul limit=LIMIT)
#define NNFAB_ROM(VAR) NNFAB_PRAGMA(HLS BIND_STORAGE variable=VAR type=rom_np impl=bram)
#else
#define NNFAB_ALLOCATION_MUL(LIMIT) \
  NNFAB_PRAGMA(HLS ALLOCATION instances=mul limit=LIMIT operation)
#define NNFAB_ROM(VAR) NNFAB_PRAGMA(HLS RESOURCE variable=VAR core=ROM_nP_BRAM)
#endif

namespace nnfab {

// Strategy of a layer with weights, as a tag type (CONFIG_T::strategy) that selects the
// implementation at compile time:
//   latency_tag  -- every product has its own multiplier (fully unrolled), II = reuse_factor;
//   resource_tag -- weights in a ROM read one wide word per step, reuse_factor steps of
//                   block_factor = ceil(n_in * n_out / reuse_factor) multipliers.
// Both compute exactly the same values (accumulators wrap: the order of additions is free).
struct latency_tag {};
struct resource_tag {};

// Reading constant arrays: weights, biases and tables are arrays of their type for the
// HLS tools, and arrays of exact integer mantissas under nnfab's C-simulation types
// (they compile an order of magnitude faster). load<T>(element) gives a T either way.
template <class T>
inline T load(const T& value) {
  return value;
}
#ifdef NNFAB_AP_BASE_H
template <class T>
inline T load(typename T::storage_type mantissa) {
  return T(nnfab_ap::raw_tag(), mantissa);
}
#endif

// 2^k as a double, exact (constant expression).
constexpr double pow2(int k) { return k == 0 ? 1.0 : k > 0 ? 2.0 * pow2(k - 1) : 0.5 * pow2(k + 1); }

// ceil(log2(n)) for n >= 1.
constexpr int ceil_log2(unsigned n) { return n <= 1 ? 0 : 1 + ceil_log2((n + 1) / 2); }

// Entry of a lookup table of N entries with bin width 2^STEP_LOG2:
//   clip(floor(x / 2^STEP_LOG2) + BASE, 0, N - 1)
// x * 2^-STEP_LOG2 is exact; the cast to an integer type floors it and saturates far
// outside [-N, N], which the clip makes irrelevant.
template <unsigned N, int BASE, int STEP_LOG2, class T>
inline int table_index(const T& x) {
  typedef ap_ufixed<1, 1 - STEP_LOG2> scale_t;  // one bit: the value 2^-STEP_LOG2
  static const scale_t scale = scale_t(pow2(-STEP_LOG2));
  static const int bits = ceil_log2(N) + 3;
  typedef ap_fixed<bits, bits, AP_TRN, AP_SAT> index_t;
  const index_t k = x * scale;
  const int i = k.to_int() + BASE;
  return i < 0 ? 0 : (i > static_cast<int>(N) - 1 ? static_cast<int>(N) - 1 : i);
}

// One transaction of an io_stream tensor: the N values of its last axis (a pixel's
// channels, a feature vector).
template <class T, unsigned N>
struct packed {
  typedef T value_type;
  static const unsigned size = N;
  T data[N];
  T& operator[](unsigned i) { return data[i]; }
  const T& operator[](unsigned i) const { return data[i]; }
};

// res[i] = res_T(data[i]): moves values and casts them to the result type.
template <class data_T, class res_T, unsigned N>
void copy_cast(const data_T data[N], res_T res[N]) {
  for (unsigned i = 0; i < N; i++) {
    NNFAB_PRAGMA(HLS UNROLL)
    res[i] = res_T(data[i]);
  }
}

}  // namespace nnfab

#endif  // NNFAB_COMMON_H
