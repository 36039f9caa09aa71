// nnfab_axis.h -- nnfab's AXI4-Stream beat and lane helpers for the HLS wrappers.
//
// Written for nnfab. The bus format is nnfab's docs/axi_stream.md: lane j of a beat is
// TDATA bits [j*L +: L]; fixed-point elements travel as their mantissa (sign- or
// zero-extended to L bits), float elements as IEEE-754 binary32 bit patterns.
//
// Under the vendor HLS tools (__SYNTHESIS__) a beat is the vendor's AXI4-Stream side-band
// struct from <ap_axi_sdata.h> (Vitis HLS: hls::axis<ap_uint<B>, 0, 0, 0>; Vivado HLS:
// ap_axiu<B, 1, 1, 1> with its side channels tied to zero) and lanes are ap_uint range
// selections. Under g++ (nnfab's C simulation, with nnfab's own ap_int.h) a beat is the
// struct below; words wider than 128 bits (nnfab's ap_uint limit) are arrays of 64-bit
// limbs. Every function here has the same meaning in both builds.
//
// Include the network's defines.h first (it defines NNFAB_VITIS_HLS for Vitis HLS).

#ifndef NNFAB_AXIS_H
#define NNFAB_AXIS_H

#include <cstdint>

#include "ap_fixed.h"
#include "ap_int.h"

#ifdef __SYNTHESIS__
#include <ap_axi_sdata.h>
#endif

namespace nnfab_axis {

// ------------------------------------------------------------------------------------
// Words and beats

#ifdef __SYNTHESIS__

template <int B>
struct word_of {
  typedef ap_uint<B> type;
};

#ifdef NNFAB_VITIS_HLS
template <int B>
struct beat_of {
  typedef hls::axis<ap_uint<B>, 0, 0, 0> type;
};
template <class Beat>
inline void clear_side_channels(Beat&) {}
#else
template <int B>
struct beat_of {
  typedef ap_axiu<B, 1, 1, 1> type;
};
template <class Beat>
inline void clear_side_channels(Beat& b) {
  b.user = 0;
  b.id = 0;
  b.dest = 0;
}
#endif

#else  // g++

// A word wider than nnfab's ap_uint (128 bits): little-endian 64-bit limbs.
template <int B>
struct wide_word {
  static_assert(B % 64 == 0, "nnfab_axis: wide words are whole 64-bit limbs");
  uint64_t limb[B / 64];
  wide_word(int value = 0) : limb() { limb[0] = static_cast<uint64_t>(value); }
};

template <int B, bool WIDE = (B > 128)>
struct word_of {
  typedef ap_uint<B> type;
};
template <int B>
struct word_of<B, true> {
  typedef wide_word<B> type;
};

// One AXI4-Stream transfer: TDATA, TKEEP, TSTRB and TLAST.
template <int B>
struct axis_beat {
  typename word_of<B>::type data;
  ap_uint<B / 8> keep;
  ap_uint<B / 8> strb;
  ap_uint<1> last;
};

template <int B>
struct beat_of {
  typedef axis_beat<B> type;
};
template <class Beat>
inline void clear_side_channels(Beat&) {}

#endif

// TDATA of a B-bit bus (ap_uint<B> for the vendor tools) and one beat of it.
template <int B>
using word = typename word_of<B>::type;
template <int B>
using beat = typename beat_of<B>::type;

// ------------------------------------------------------------------------------------
// Bits, lanes and whole words

#ifdef __SYNTHESIS__

template <int W>
inline bool bit(const ap_uint<W>& v, unsigned i) {
  return v[i] == 1;
}
template <int W>
inline void set_bit(ap_uint<W>& v, unsigned i) {
  v[i] = 1;
}
template <int L, int B>
inline ap_uint<L> get_lane(const ap_uint<B>& w, unsigned j) {
  return w.range(j * L + L - 1, j * L);
}
template <int L, int B>
inline void set_lane(ap_uint<B>& w, unsigned j, const ap_uint<L>& v) {
  w.range(j * L + L - 1, j * L) = v;
}

#else  // g++: through the stored integers of nnfab's ap_uint

namespace detail {
__extension__ typedef unsigned __int128 u128;
inline uint64_t low_mask(int n) { return n >= 64 ? ~static_cast<uint64_t>(0) : ((1ull << n) - 1); }
template <int W>
inline ap_uint<W> make_uint(u128 bits) {
  typedef typename ap_uint<W>::storage_type St;
  return ap_uint<W>(nnfab_ap::raw_tag(), static_cast<St>(bits));
}
}  // namespace detail

template <int W>
inline bool bit(const ap_uint<W>& v, unsigned i) {
  return ((static_cast<detail::u128>(v.raw()) >> i) & 1) != 0;
}
template <int W>
inline void set_bit(ap_uint<W>& v, unsigned i) {
  v = detail::make_uint<W>(static_cast<detail::u128>(v.raw()) | (static_cast<detail::u128>(1) << i));
}
template <int L, int B>
inline ap_uint<L> get_lane(const ap_uint<B>& w, unsigned j) {
  static_assert(L <= 64 && B % L == 0, "nnfab_axis: lanes are 8..64 bits and divide the bus");
  const detail::u128 bits = static_cast<detail::u128>(w.raw()) >> (j * L);
  return detail::make_uint<L>(bits & detail::low_mask(L));
}
template <int L, int B>
inline void set_lane(ap_uint<B>& w, unsigned j, const ap_uint<L>& v) {
  static_assert(L <= 64 && B % L == 0, "nnfab_axis: lanes are 8..64 bits and divide the bus");
  const detail::u128 mask = static_cast<detail::u128>(detail::low_mask(L)) << (j * L);
  const detail::u128 lane = static_cast<detail::u128>(static_cast<uint64_t>(v.raw())) << (j * L);
  w = detail::make_uint<B>((static_cast<detail::u128>(w.raw()) & ~mask) | lane);
}
template <int L, int B>
inline ap_uint<L> get_lane(const wide_word<B>& w, unsigned j) {
  static_assert(L <= 64 && 64 % L == 0, "nnfab_axis: lanes are 8..64 bits");
  const unsigned pos = j * L;
  return detail::make_uint<L>((w.limb[pos / 64] >> (pos % 64)) & detail::low_mask(L));
}
template <int L, int B>
inline void set_lane(wide_word<B>& w, unsigned j, const ap_uint<L>& v) {
  static_assert(L <= 64 && 64 % L == 0, "nnfab_axis: lanes are 8..64 bits");
  const unsigned pos = j * L;
  uint64_t& limb = w.limb[pos / 64];
  limb = (limb & ~(detail::low_mask(L) << (pos % 64))) |
         (static_cast<uint64_t>(v.raw()) << (pos % 64));
}

// Words <-> little-endian bytes (the memory image of a beat; C simulation only).
template <int B>
inline word<B> word_from_bytes(const unsigned char* bytes) {
  word<B> w(0);
  for (unsigned j = 0; j < B / 8; j++) set_lane<8>(w, j, ap_uint<8>(bytes[j]));
  return w;
}
template <int B>
inline void word_to_bytes(const word<B>& w, unsigned char* bytes) {
  for (unsigned j = 0; j < B / 8; j++) {
    bytes[j] = static_cast<unsigned char>(get_lane<8>(w, j).raw());
  }
}

#endif

// Bits of TKEEP / TSTRB: all ones, or the bytes of the first `lanes` lanes of L bits.
template <int W>
inline ap_uint<W> all_ones() {
  return ap_uint<W>(-1);
}
template <int B, int L>
inline ap_uint<B / 8> keep_lanes(unsigned lanes) {
  ap_uint<B / 8> keep(0);
  for (unsigned i = 0; i < B / 8; i++) {
#ifdef __SYNTHESIS__
#pragma HLS UNROLL
#endif
    if (i < lanes * (L / 8)) set_bit(keep, i);
  }
  return keep;
}
// Lanes a beat carries: one past the last lane whose first byte TKEEP marks.
template <int B, int L>
inline unsigned kept_lanes(const ap_uint<B / 8>& keep) {
  unsigned n = 0;
  for (unsigned j = 0; j < B / L; j++) {
#ifdef __SYNTHESIS__
#pragma HLS UNROLL
#endif
    if (bit(keep, j * (L / 8))) n = j + 1;
  }
  return n;
}

template <int B>
inline bool is_last(const beat<B>& b) {
  return b.last == 1;
}
// A beat carrying `data`: every byte kept, TLAST as given, side channels zero.
template <int B>
inline beat<B> make_beat(const word<B>& data, bool last) {
  beat<B> b;
  b.data = data;
  b.keep = all_ones<B / 8>();
  b.strb = all_ones<B / 8>();
  b.last = last ? 1 : 0;
  clear_side_channels(b);
  return b;
}

// ------------------------------------------------------------------------------------
// Elements <-> lanes

// The fixed-point value whose mantissa is the low T::width bits of a lane.
template <class T, int L>
inline T from_mantissa(const ap_uint<L>& lane) {
  static_assert(T::width <= L, "nnfab_axis: the lane is narrower than the type");
#ifdef __SYNTHESIS__
  T x;
  x.range(T::width - 1, 0) = lane.range(T::width - 1, 0);
  return x;
#else
  typedef typename T::storage_type St;
  uint64_t m = static_cast<uint64_t>(lane.raw()) & detail::low_mask(T::width);
  if (T::sign_flag && T::width < 64 && ((m >> (T::width - 1)) & 1) != 0) {
    m |= ~detail::low_mask(T::width);  // sign extension: the stored integer is the mantissa
  }
  return T(nnfab_ap::raw_tag(), static_cast<St>(static_cast<int64_t>(m)));
#endif
}

// The mantissa of x in a lane of L bits: sign-extended for signed types, else zero-extended.
template <int L, class T>
inline ap_uint<L> to_mantissa(const T& x) {
  static_assert(T::width <= L, "nnfab_axis: the lane is narrower than the type");
#ifdef __SYNTHESIS__
  ap_uint<L> lane;
  if (T::sign_flag) {
    const ap_int<T::width> m = x.range(T::width - 1, 0);
    const ap_int<L> wide = m;
    lane = wide;
  } else {
    const ap_uint<T::width> m = x.range(T::width - 1, 0);
    lane = m;
  }
  return lane;
#else
  const int64_t m = static_cast<int64_t>(x.raw());  // sign- or zero-extended by its storage
  return detail::make_uint<L>(static_cast<uint64_t>(m) & detail::low_mask(L));
#endif
}

union float_bits {
  float f;
  uint32_t u;
};

// A float32 lane converted to T with T's quantization and overflow modes (assigning a
// float to an ap_[u]fixed rounds to its grid, then applies its overflow mode).
template <class T>
inline T from_float(const ap_uint<32>& lane) {
  float_bits c;
#ifdef __SYNTHESIS__
  c.u = lane.to_uint();
#else
  c.u = static_cast<uint32_t>(lane.raw());
#endif
  return T(c.f);
}

// x as a float32 lane (round to nearest, ties to even).
template <class T>
inline ap_uint<32> to_float(const T& x) {
  float_bits c;
  c.f = x.to_float();
#ifdef __SYNTHESIS__
  return ap_uint<32>(c.u);
#else
  return detail::make_uint<32>(c.u);
#endif
}

}  // namespace nnfab_axis

#endif  // NNFAB_AXIS_H
