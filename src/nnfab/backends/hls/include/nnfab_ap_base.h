// nnfab_ap_base.h -- core of nnfab's fixed-point types for C simulation with g++.
//
// Written for nnfab from the documented behaviour of the ap_[u]fixed / ap_[u]int types
// (AMD/Xilinx UG1399). A type <W, I, S, Q, O> holds an integer mantissa m of W bits
// (two's complement when S) and stands for m * 2^-(W-I). Assigning a value of another
// type first rounds it to the target's grid with the quantization mode Q, then handles
// values outside the target's range with the overflow mode O. The arithmetic operators
// return full-precision results (no rounding, no overflow).
//
// Vendor HLS tools synthesize with their own headers; this one only serves g++ C
// simulation and must agree bit for bit with nnfab's Python FixedType. Deviation kept on
// purpose: AP_SAT_SYM on a signed type wider than 1 bit also maps the most negative
// mantissa to -max (a 1-bit signed type keeps -1, as the vendor type does).
// Limits: widths 1..128; results of + - * and comparisons up to 128 bits (256 bits for
// += / -= and comparisons); the saturation-bits parameter N must be 0; no AP_WRAP_SM.

#ifndef NNFAB_AP_BASE_H
#define NNFAB_AP_BASE_H

#include <cmath>
#include <cstdint>
#include <ostream>
#include <string>
#include <type_traits>

enum ap_q_mode { AP_RND, AP_RND_ZERO, AP_RND_MIN_INF, AP_RND_INF, AP_RND_CONV, AP_TRN, AP_TRN_ZERO };
enum ap_o_mode { AP_SAT, AP_SAT_ZERO, AP_SAT_SYM, AP_WRAP, AP_WRAP_SM };

#define NNFAB_AP_INLINE inline __attribute__((always_inline))

namespace nnfab_ap {

__extension__ typedef __int128 i128;
__extension__ typedef unsigned __int128 u128;

constexpr int max_width = 128;

constexpr int cmax(int a, int b) { return a > b ? a : b; }
constexpr int cmin(int a, int b) { return a < b ? a : b; }

// Storage of a mantissa: the narrowest of (u)int32, (u)int64 and (unsigned) __int128.
// Invariant: the stored integer equals the mantissa (sign- or zero-extended).
template <int W, bool S>
struct storage_of {
  typedef typename std::conditional<
      (W <= 32), typename std::conditional<S, int32_t, uint32_t>::type,
      typename std::conditional<
          (W <= 64), typename std::conditional<S, int64_t, uint64_t>::type,
          typename std::conditional<S, i128, u128>::type>::type>::type type;
};

namespace detail {

// ---------------------------------------------------------------------------------------
// Integer back ends for exact intermediate results. Each provides the same static
// functions; pick<BITS> chooses the cheapest one that holds BITS-bit signed values.

template <class S, class U, int B>
struct native_ops {
  typedef S type;
  static constexpr int bits = B;
  static NNFAB_AP_INLINE S load(int32_t v) { return static_cast<S>(v); }
  static NNFAB_AP_INLINE S load(uint32_t v) { return static_cast<S>(v); }
  static NNFAB_AP_INLINE S load(int64_t v) { return static_cast<S>(v); }
  static NNFAB_AP_INLINE S load(uint64_t v) { return static_cast<S>(v); }
  static NNFAB_AP_INLINE S load(i128 v) { return static_cast<S>(v); }
  static NNFAB_AP_INLINE S load(u128 v) { return static_cast<S>(v); }
  // 0 <= k < B for every shift below.
  static NNFAB_AP_INLINE S shl(S x, int k) { return static_cast<S>(static_cast<U>(x) << k); }
  static NNFAB_AP_INLINE S sar(S x, int k) { return x >> k; }  // arithmetic in g++
  static NNFAB_AP_INLINE S pow2(int k) { return static_cast<S>(static_cast<U>(1) << k); }
  static NNFAB_AP_INLINE S add(S a, S b) {
    return static_cast<S>(static_cast<U>(a) + static_cast<U>(b));
  }
  static NNFAB_AP_INLINE S sub(S a, S b) {
    return static_cast<S>(static_cast<U>(a) - static_cast<U>(b));
  }
  static NNFAB_AP_INLINE bool lt(S a, S b) { return a < b; }
  static NNFAB_AP_INLINE bool eq(S a, S b) { return a == b; }
  static NNFAB_AP_INLINE bool neg(S a) { return a < 0; }
  static NNFAB_AP_INLINE bool odd(S a) { return (static_cast<U>(a) & 1u) != 0; }
  // The low k bits, zero-extended (1 <= k <= B).
  static NNFAB_AP_INLINE S low(S x, int k) {
    return k >= B ? x : static_cast<S>(static_cast<U>(x) & ((static_cast<U>(1) << k) - 1));
  }
  // The low k bits, sign-extended (1 <= k <= B).
  static NNFAB_AP_INLINE S sext(S x, int k) { return sar(shl(x, B - k), B - k); }
  template <class St>
  static NNFAB_AP_INLINE St store(S x) {
    return static_cast<St>(x);
  }
};

typedef native_ops<int32_t, uint32_t, 32> ops32;
typedef native_ops<int64_t, uint64_t, 64> ops64;
typedef native_ops<i128, u128, 128> ops128;

// 256-bit two's complement: value = hi * 2^128 + lo, hi read as signed.
struct wide {
  u128 lo;
  u128 hi;
};

struct wide_ops {
  typedef wide type;
  static constexpr int bits = 256;
  static wide make(u128 lo, u128 hi) {
    wide w;
    w.lo = lo;
    w.hi = hi;
    return w;
  }
  static u128 ones() { return ~static_cast<u128>(0); }
  static wide load(int32_t v) { return load(static_cast<int64_t>(v)); }
  static wide load(uint32_t v) { return load(static_cast<uint64_t>(v)); }
  static wide load(int64_t v) { return make(static_cast<u128>(v), v < 0 ? ones() : 0); }
  static wide load(uint64_t v) { return make(v, 0); }
  static wide load(i128 v) { return make(static_cast<u128>(v), v < 0 ? ones() : 0); }
  static wide load(u128 v) { return make(v, 0); }
  static wide shl(wide x, int k) {
    if (k == 0) return x;
    if (k < 128) return make(x.lo << k, (x.hi << k) | (x.lo >> (128 - k)));
    return make(0, x.lo << (k - 128));
  }
  static wide sar(wide x, int k) {
    if (k == 0) return x;
    const i128 h = static_cast<i128>(x.hi);
    if (k < 128) return make((x.lo >> k) | (x.hi << (128 - k)), static_cast<u128>(h >> k));
    return make(static_cast<u128>(h >> (k - 128)), h < 0 ? ones() : 0);
  }
  static wide pow2(int k) { return shl(load(static_cast<int64_t>(1)), k); }
  static wide add(wide a, wide b) {
    const u128 lo = a.lo + b.lo;
    return make(lo, a.hi + b.hi + (lo < a.lo ? 1 : 0));
  }
  static wide sub(wide a, wide b) {
    return make(a.lo - b.lo, a.hi - b.hi - (a.lo < b.lo ? 1 : 0));
  }
  static bool lt(wide a, wide b) {
    const i128 ha = static_cast<i128>(a.hi), hb = static_cast<i128>(b.hi);
    return ha < hb || (ha == hb && a.lo < b.lo);
  }
  static bool eq(wide a, wide b) { return a.lo == b.lo && a.hi == b.hi; }
  static bool neg(wide a) { return static_cast<i128>(a.hi) < 0; }
  static bool odd(wide a) { return (a.lo & 1u) != 0; }
  static wide low(wide x, int k) {
    if (k < 128) return make(x.lo & ((static_cast<u128>(1) << k) - 1), 0);
    if (k == 128) return make(x.lo, 0);
    return make(x.lo, x.hi & ((static_cast<u128>(1) << (k - 128)) - 1));
  }
  static wide sext(wide x, int k) { return sar(shl(x, 256 - k), 256 - k); }
  template <class St>
  static St store(wide x) {
    return static_cast<St>(x.lo);
  }
};

template <int BITS>
struct pick {
  typedef typename std::conditional<
      (BITS <= 32), ops32,
      typename std::conditional<
          (BITS <= 64), ops64,
          typename std::conditional<(BITS <= 128), ops128, wide_ops>::type>::type>::type type;
};

// Signed bits that hold every intermediate of a cast from a ws-bit mantissa shifted
// left by `shift` (negative: right) into a wd-bit target. A wrap-around cast without
// rounding only needs the low wd bits, which arithmetic modulo 2^wd gets right.
constexpr int cast_bits(int ws, int shift, int wd, ap_o_mode o) {
  return (o == AP_WRAP && shift >= 0) ? wd : cmax(ws + cmax(0, cmin(shift, wd - 1)), wd) + 2;
}

// True when every value of the source, after the shift and the rounding, lies inside
// the target's range, so the overflow step can be skipped.
constexpr int shifted_bits(int ws, int shift, ap_q_mode q) {
  return shift >= 0 ? ws + shift
                    : cmax(ws + shift, 1) + ((q == AP_TRN || q == AP_TRN_ZERO) ? 0 : 1);
}
constexpr bool always_fits(int ws, bool ss, int shift, int wd, bool sd, ap_q_mode q,
                           ap_o_mode o) {
  return (ss && !sd) ? false
                     : wd >= shifted_bits(ws, shift, q) + ((sd && !ss) ? 1 : 0) +
                                 ((sd && ss && o == AP_SAT_SYM && wd > 1) ? 1 : 0);
}

// Cast m * 2^-fs to the type <wd, fd, sd, q, o>, where shift = fd - fs. `ws` bounds the
// source: |m| < 2^ws. Ops::type must hold cast_bits(ws, shift, wd, o) bits (m may then be
// loaded modulo 2^bits); any shift is accepted (large ones are handled without shifting).
// Returns the target mantissa, normalized to wd bits.
template <class Ops>
NNFAB_AP_INLINE typename Ops::type cast_mantissa(typename Ops::type m, int ws, int shift, int wd,
                                                bool sd, ap_q_mode q, ap_o_mode o,
                                                bool skip_overflow) {
  typedef typename Ops::type Int;
  const Int zero = Ops::load(static_cast<int64_t>(0));
  const bool m_neg = Ops::neg(m);
  Int n = zero;
  bool huge = false;  // |value| >= 2^wd mantissa steps: out of range whatever the type
  if (shift >= 0) {
    if (shift >= wd) {
      if (Ops::eq(m, zero)) return zero;
      huge = true;
    } else {
      n = Ops::shl(m, shift);
    }
  } else {
    const int d = -shift;
    Int fl;     // floor(m / 2^d)
    int where;  // remainder m - fl * 2^d: 0 zero, 1 below half, 2 half, 3 above half
    if (d > ws) {  // |m| < 2^(d-1): the remainder is m itself (m >= 0) or 2^d + m
      if (Ops::eq(m, zero)) return zero;
      fl = m_neg ? Ops::load(static_cast<int64_t>(-1)) : zero;
      where = m_neg ? 3 : 1;
    } else {
      fl = Ops::sar(m, d);
      const Int r = Ops::low(m, d);
      const Int half = Ops::pow2(d - 1);
      where = Ops::eq(r, zero) ? 0 : Ops::lt(r, half) ? 1 : Ops::eq(r, half) ? 2 : 3;
    }
    bool inc = false;
    switch (q) {
      case AP_TRN: inc = false; break;
      case AP_TRN_ZERO: inc = m_neg && where != 0; break;
      case AP_RND: inc = where >= 2; break;
      case AP_RND_ZERO: inc = where == 3 || (where == 2 && m_neg); break;
      case AP_RND_MIN_INF: inc = where == 3; break;
      case AP_RND_INF: inc = where == 3 || (where == 2 && !m_neg); break;
      case AP_RND_CONV: inc = where == 3 || (where == 2 && Ops::odd(fl)); break;
    }
    n = inc ? Ops::add(fl, Ops::load(static_cast<int64_t>(1))) : fl;
  }
  if (skip_overflow) return n;
  if (o == AP_WRAP) {
    if (huge) return zero;  // a multiple of 2^wd
    return sd ? Ops::sext(n, wd) : Ops::low(n, wd);
  }
  const Int one = Ops::load(static_cast<int64_t>(1));
  const Int hi = Ops::sub(Ops::pow2(sd ? wd - 1 : wd), one);
  const Int lo = sd ? Ops::sub(zero, Ops::pow2(wd - 1)) : zero;
  bool over, under;
  if (huge) {
    over = !m_neg;
    under = m_neg;
  } else {
    over = Ops::lt(hi, n);
    under = (sd && o == AP_SAT_SYM && wd > 1) ? !Ops::lt(lo, n) : Ops::lt(n, lo);
  }
  if (!over && !under) return n;
  if (o == AP_SAT_ZERO) return zero;
  if (over) return hi;
  return (sd && o == AP_SAT_SYM && wd > 1) ? Ops::sub(zero, hi) : lo;
}

// ---------------------------------------------------------------------------------------
// double -> mantissa of <wd, fd, sd, q, o>.

template <class Ops>
inline typename Ops::type cast_double_with(int64_t m, int ws, int shift, int wd, bool sd,
                                           ap_q_mode q, ap_o_mode o) {
  return cast_mantissa<Ops>(Ops::load(m), ws, shift, wd, sd, q, o, false);
}

template <class St>
inline St cast_double(double x, int wd, int fd, bool sd, ap_q_mode q, ap_o_mode o) {
  if (x == 0.0 || std::isnan(x)) return 0;
  int64_t m;
  int shift, ws;
  if (std::isinf(x)) {  // beyond every range: behaves like a huge value of its sign
    m = x > 0 ? 1 : -1;
    shift = wd;
    ws = 2;
  } else {
    int e;
    const double f = std::frexp(x, &e);  // x = f * 2^e, 0.5 <= |f| < 1
    m = static_cast<int64_t>(std::ldexp(f, 53));
    e -= 53;  // x = m * 2^e exactly
    const int tz = __builtin_ctzll(static_cast<uint64_t>(m < 0 ? -m : m));
    m >>= tz;  // exact: drops zero bits only
    e += tz;
    ws = 54 - tz;
    shift = fd + e;  // the source has fs = -e fractional bits
    if (shift > wd) shift = wd;  // same outcome (huge) and keeps shifts bounded
  }
  const int need = cmax(ws + cmax(0, cmin(shift, wd - 1)), wd) + 2;
  if (need <= 64) return ops64::store<St>(cast_double_with<ops64>(m, ws, shift, wd, sd, q, o));
  if (need <= 128) {
    return ops128::store<St>(cast_double_with<ops128>(m, ws, shift, wd, sd, q, o));
  }
  return wide_ops::store<St>(cast_double_with<wide_ops>(m, ws, shift, wd, sd, q, o));
}

inline bool is_negative(int32_t v) { return v < 0; }
inline bool is_negative(uint32_t) { return false; }
inline bool is_negative(int64_t v) { return v < 0; }
inline bool is_negative(i128 v) { return v < 0; }
inline bool is_negative(uint64_t) { return false; }
inline bool is_negative(u128) { return false; }

// mantissa * 2^-f as double: exact up to 53 significant bits, else rounded toward zero
// (as nnfab's FixedType does, so the value stays inside the type's range).
template <class St>
inline double to_double(St m, int f) {
  const bool neg = is_negative(m);
  u128 mag = neg ? static_cast<u128>(0) - static_cast<u128>(m) : static_cast<u128>(m);
  const uint64_t top = static_cast<uint64_t>(mag >> 64);
  const int len = top ? 128 - __builtin_clzll(top)
                      : (static_cast<uint64_t>(mag) ? 64 - __builtin_clzll(static_cast<uint64_t>(mag)) : 0);
  if (len > 53) mag = (mag >> (len - 53)) << (len - 53);
  const double v = std::ldexp(static_cast<double>(static_cast<uint64_t>(mag >> 64)), 64) +
                   static_cast<double>(static_cast<uint64_t>(mag));
  return std::ldexp(neg ? -v : v, -f);
}

inline std::string u128_to_string(u128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v != 0) {
    s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  return s;
}

// Unsigned word of a result width: modular arithmetic in it is exact when the true
// result fits the result type.
template <int W>
struct uword {
  typedef typename std::conditional<
      (W <= 32), uint32_t, typename std::conditional<(W <= 64), uint64_t, u128>::type>::type type;
};
template <class U>
NNFAB_AP_INLINE U ushl(U x, int k) {
  return x << k;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// The value class shared by ap_fixed, ap_ufixed, ap_int and ap_uint.

struct raw_tag {};

template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O>
class fixed_base;

// A C++ integer type seen as an ap integer of the same width and signedness.
template <class T>
struct int_as_fixed {
  static constexpr int bits =
      std::is_same<T, bool>::value ? 1 : 8 * static_cast<int>(sizeof(T));
  typedef fixed_base<bits, bits, std::is_signed<T>::value, AP_TRN, AP_WRAP> type;
};

// Casting the mantissa of <W2, I2, S2> to <W, I, S, Q, O>.
template <int W2, int I2, bool S2, int W, int I, bool S, ap_q_mode Q, ap_o_mode O>
struct caster {
  static constexpr int shift = (W - I) - (W2 - I2);
  static constexpr bool fits = detail::always_fits(W2, S2, shift, W, S, Q, O);
  typedef typename detail::pick<detail::cast_bits(W2, shift, W, O)>::type Ops;
  typedef typename storage_of<W, S>::type St;
  static NNFAB_AP_INLINE St apply(typename storage_of<W2, S2>::type m) {
    return Ops::template store<St>(
        detail::cast_mantissa<Ops>(Ops::load(m), W2, shift, W, S, Q, O, fits));
  }
};

template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O>
class fixed_base {
  static_assert(W >= 1, "nnfab ap types: the width W must be at least 1");
  static_assert(W <= max_width,
                "nnfab's C-simulation ap types support widths up to 128 bits; "
                "narrow this type (or the operands of this operation)");
  static_assert(O != AP_WRAP_SM, "nnfab ap types: AP_WRAP_SM is not supported");

 public:
  typedef typename storage_of<W, S>::type storage_type;
  static constexpr int width = W;
  static constexpr int iwidth = I;
  static constexpr int fwidth = W - I;
  static constexpr bool sign_flag = S;
  static constexpr ap_q_mode qmode = Q;
  static constexpr ap_o_mode omode = O;

  constexpr fixed_base() : m_(0) {}
  // From a mantissa (nnfab extension): constant-initializes weight arrays fast.
  constexpr fixed_base(raw_tag, storage_type m) : m_(m) {}

  template <int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2>
  NNFAB_AP_INLINE fixed_base(const fixed_base<W2, I2, S2, Q2, O2>& other)
      : m_(caster<W2, I2, S2, W, I, S, Q, O>::apply(other.raw())) {}

  NNFAB_AP_INLINE fixed_base(double x)
      : m_(detail::cast_double<storage_type>(x, W, W - I, S, Q, O)) {}
  NNFAB_AP_INLINE fixed_base(float x)
      : m_(detail::cast_double<storage_type>(static_cast<double>(x), W, W - I, S, Q, O)) {}
  template <class T, typename std::enable_if<std::is_integral<T>::value, int>::type = 0>
  NNFAB_AP_INLINE fixed_base(T x)
      : m_(caster<int_as_fixed<T>::bits, int_as_fixed<T>::bits, std::is_signed<T>::value, W, I,
                  S, Q, O>::apply(x)) {}

  // The mantissa (nnfab extension, not part of the vendor API).
  NNFAB_AP_INLINE storage_type raw() const { return m_; }

  double to_double() const { return detail::to_double(m_, W - I); }
  float to_float() const { return static_cast<float>(to_double()); }
  int length() const { return W; }
  bool is_neg() const { return detail::is_negative(m_); }
  // Integer conversions, for types without fractional bits only (their value is an
  // integer, so nothing depends on a rounding convention); wider values wrap.
  int to_int() const { return static_cast<int>(to_int64()); }
  unsigned to_uint() const { return static_cast<unsigned>(to_int64()); }
  uint64_t to_uint64() const { return static_cast<uint64_t>(to_int64()); }
  int64_t to_int64() const {
    static_assert(W - I <= 0, "nnfab ap types: to_int*() needs a type without fractional bits");
    return static_cast<int64_t>(static_cast<uint64_t>(m_) << cmin(I - W, 63));
  }

  NNFAB_AP_INLINE fixed_base<W + 1, I + 1, true, AP_TRN, AP_WRAP> operator-() const {
    typedef typename detail::uword<W + 1>::type U;
    typedef typename storage_of<W + 1, true>::type R;
    return fixed_base<W + 1, I + 1, true, AP_TRN, AP_WRAP>(
        raw_tag(), static_cast<R>(static_cast<U>(0) - static_cast<U>(m_)));
  }
  NNFAB_AP_INLINE fixed_base operator+() const { return *this; }

  template <int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2>
  NNFAB_AP_INLINE fixed_base& operator+=(const fixed_base<W2, I2, S2, Q2, O2>& rhs) {
    m_ = accumulate<false>(rhs);
    return *this;
  }
  template <int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2>
  NNFAB_AP_INLINE fixed_base& operator-=(const fixed_base<W2, I2, S2, Q2, O2>& rhs) {
    m_ = accumulate<true>(rhs);
    return *this;
  }
  template <class T, typename std::enable_if<std::is_integral<T>::value, int>::type = 0>
  NNFAB_AP_INLINE fixed_base& operator+=(T rhs) {
    return *this += typename int_as_fixed<T>::type(rhs);
  }
  template <class T, typename std::enable_if<std::is_integral<T>::value, int>::type = 0>
  NNFAB_AP_INLINE fixed_base& operator-=(T rhs) {
    return *this -= typename int_as_fixed<T>::type(rhs);
  }
  template <class R>
  NNFAB_AP_INLINE fixed_base& operator*=(const R& rhs) {
    *this = *this * rhs;
    return *this;
  }

 private:
  // this +/- rhs computed exactly (up to 256 bits), then cast to this type.
  template <bool SUB, int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2>
  NNFAB_AP_INLINE storage_type accumulate(const fixed_base<W2, I2, S2, Q2, O2>& rhs) const {
    constexpr int F1 = W - I, F2 = W2 - I2, F = cmax(F1, F2);
    constexpr int IR = cmax(I + ((S2 && !S) ? 1 : 0), I2 + ((S && !S2) ? 1 : 0)) + 1;
    constexpr int WR = IR + F;
    static_assert(WR + 2 <= 256, "nnfab ap types: += / -= operands too far apart");
    typedef typename detail::pick<detail::cast_bits(WR, F1 - F, W, O)>::type Ops;
    const typename Ops::type a = Ops::shl(Ops::load(m_), F - F1);
    const typename Ops::type b = Ops::shl(Ops::load(rhs.raw()), F - F2);
    const typename Ops::type sum = SUB ? Ops::sub(a, b) : Ops::add(a, b);
    return Ops::template store<storage_type>(
        detail::cast_mantissa<Ops>(sum, WR, F1 - F, W, S, Q, O, false));
  }

  storage_type m_;
};

// ---------------------------------------------------------------------------------------
// Full-precision result types, as documented for ap_[u]fixed:
//   a * b : W1 + W2 bits, I1 + I2 integer bits, signed if either is;
//   a + b : max(I1, I2) + 1 integer bits, max(F1, F2) fractional bits, where an unsigned
//           operand counts one more integer bit when the other is signed; a - b is signed.

template <int W1, int I1, bool S1, int W2, int I2, bool S2>
struct arith {
  static constexpr int F = cmax(W1 - I1, W2 - I2);
  static constexpr int sum_i = cmax(I1 + ((S2 && !S1) ? 1 : 0), I2 + ((S1 && !S2) ? 1 : 0)) + 1;
  typedef fixed_base<sum_i + F, sum_i, S1 || S2, AP_TRN, AP_WRAP> plus;
  typedef fixed_base<sum_i + F, sum_i, true, AP_TRN, AP_WRAP> minus;
  typedef fixed_base<W1 + W2, I1 + I2, S1 || S2, AP_TRN, AP_WRAP> mult;
};

#define NNFAB_AP_ARGS1 int W1, int I1, bool S1, ap_q_mode Q1, ap_o_mode O1
#define NNFAB_AP_ARGS2 int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2
#define NNFAB_AP_T1 fixed_base<W1, I1, S1, Q1, O1>
#define NNFAB_AP_T2 fixed_base<W2, I2, S2, Q2, O2>
#define NNFAB_AP_ARITH arith<W1, I1, S1, W2, I2, S2>

namespace detail {
template <bool SUB, class R, NNFAB_AP_ARGS1, NNFAB_AP_ARGS2>
NNFAB_AP_INLINE R add_sub(const NNFAB_AP_T1& a, const NNFAB_AP_T2& b) {
  typedef typename uword<R::width>::type U;
  const U x = ushl(static_cast<U>(a.raw()), R::fwidth - (W1 - I1));
  const U y = ushl(static_cast<U>(b.raw()), R::fwidth - (W2 - I2));
  return R(raw_tag(), static_cast<typename R::storage_type>(SUB ? x - y : x + y));
}

// Sign of a - b (-1, 0, 1), exact.
template <NNFAB_AP_ARGS1, NNFAB_AP_ARGS2>
NNFAB_AP_INLINE int compare(const NNFAB_AP_T1& a, const NNFAB_AP_T2& b) {
  typedef typename NNFAB_AP_ARITH::minus M;
  static_assert(M::width + 2 <= 256, "nnfab ap types: comparison operands too far apart");
  typedef typename pick<M::width + 2>::type Ops;
  const typename Ops::type x = Ops::shl(Ops::load(a.raw()), M::fwidth - (W1 - I1));
  const typename Ops::type y = Ops::shl(Ops::load(b.raw()), M::fwidth - (W2 - I2));
  return Ops::lt(x, y) ? -1 : Ops::eq(x, y) ? 0 : 1;
}
}  // namespace detail

template <NNFAB_AP_ARGS1, NNFAB_AP_ARGS2>
NNFAB_AP_INLINE typename NNFAB_AP_ARITH::plus operator+(const NNFAB_AP_T1& a,
                                                        const NNFAB_AP_T2& b) {
  return detail::add_sub<false, typename NNFAB_AP_ARITH::plus>(a, b);
}

template <NNFAB_AP_ARGS1, NNFAB_AP_ARGS2>
NNFAB_AP_INLINE typename NNFAB_AP_ARITH::minus operator-(const NNFAB_AP_T1& a,
                                                         const NNFAB_AP_T2& b) {
  return detail::add_sub<true, typename NNFAB_AP_ARITH::minus>(a, b);
}

template <NNFAB_AP_ARGS1, NNFAB_AP_ARGS2>
NNFAB_AP_INLINE typename NNFAB_AP_ARITH::mult operator*(const NNFAB_AP_T1& a,
                                                        const NNFAB_AP_T2& b) {
  typedef typename NNFAB_AP_ARITH::mult R;
  typedef typename detail::uword<R::width>::type U;
  return R(raw_tag(),
           static_cast<typename R::storage_type>(static_cast<U>(a.raw()) * static_cast<U>(b.raw())));
}

#define NNFAB_AP_COMPARE(OP)                                                          \
  template <NNFAB_AP_ARGS1, NNFAB_AP_ARGS2>                                           \
  NNFAB_AP_INLINE bool operator OP(const NNFAB_AP_T1& a, const NNFAB_AP_T2& b) {      \
    return detail::compare(a, b) OP 0;                                                \
  }
NNFAB_AP_COMPARE(==)
NNFAB_AP_COMPARE(!=)
NNFAB_AP_COMPARE(<)
NNFAB_AP_COMPARE(<=)
NNFAB_AP_COMPARE(>)
NNFAB_AP_COMPARE(>=)
#undef NNFAB_AP_COMPARE

// Mixed with C++ integers: the integer acts as an ap integer of its own width.
#define NNFAB_AP_WITH_INT(OP)                                                         \
  template <NNFAB_AP_ARGS1, class T,                                                  \
            typename std::enable_if<std::is_integral<T>::value, int>::type = 0>       \
  NNFAB_AP_INLINE auto operator OP(const NNFAB_AP_T1& a, T b)                         \
      ->decltype(a OP typename int_as_fixed<T>::type(b)) {                            \
    return a OP typename int_as_fixed<T>::type(b);                                    \
  }                                                                                   \
  template <NNFAB_AP_ARGS1, class T,                                                  \
            typename std::enable_if<std::is_integral<T>::value, int>::type = 0>       \
  NNFAB_AP_INLINE auto operator OP(T a, const NNFAB_AP_T1& b)                         \
      ->decltype(typename int_as_fixed<T>::type(a) OP b) {                            \
    return typename int_as_fixed<T>::type(a) OP b;                                    \
  }
NNFAB_AP_WITH_INT(+)
NNFAB_AP_WITH_INT(-)
NNFAB_AP_WITH_INT(*)
NNFAB_AP_WITH_INT(==)
NNFAB_AP_WITH_INT(!=)
NNFAB_AP_WITH_INT(<)
NNFAB_AP_WITH_INT(<=)
NNFAB_AP_WITH_INT(>)
NNFAB_AP_WITH_INT(>=)
#undef NNFAB_AP_WITH_INT

#undef NNFAB_AP_ARGS1
#undef NNFAB_AP_ARGS2
#undef NNFAB_AP_T1
#undef NNFAB_AP_T2
#undef NNFAB_AP_ARITH

template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O>
std::ostream& operator<<(std::ostream& os, const fixed_base<W, I, S, Q, O>& x) {
  return os << x.to_double();
}

// The exact mantissa as decimal text (nnfab extension, used by tests).
template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O>
std::string mantissa_string(const fixed_base<W, I, S, Q, O>& x) {
  const typename fixed_base<W, I, S, Q, O>::storage_type m = x.raw();
  if (detail::is_negative(m)) {
    return "-" + detail::u128_to_string(static_cast<u128>(0) - static_cast<u128>(m));
  }
  return detail::u128_to_string(static_cast<u128>(m));
}

}  // namespace nnfab_ap

#endif  // NNFAB_AP_BASE_H
