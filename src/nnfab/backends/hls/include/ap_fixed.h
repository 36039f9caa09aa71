// ap_fixed.h -- nnfab's arbitrary-precision fixed-point types for g++ C simulation.
// See nnfab_ap_base.h for the semantics and the limits (widths 1..128, N = 0).

#ifndef NNFAB_AP_FIXED_H
#define NNFAB_AP_FIXED_H

#include "ap_int.h"

template <int W, int I, ap_q_mode Q = AP_TRN, ap_o_mode O = AP_WRAP, int N = 0>
class ap_fixed : public nnfab_ap::fixed_base<W, I, true, Q, O> {
  static_assert(N == 0, "nnfab ap types: saturation bits N other than 0 are not supported");
  typedef nnfab_ap::fixed_base<W, I, true, Q, O> base;

 public:
  using base::base;
  constexpr ap_fixed() : base() {}
  constexpr ap_fixed(const base& other) : base(other) {}
};

template <int W, int I, ap_q_mode Q = AP_TRN, ap_o_mode O = AP_WRAP, int N = 0>
class ap_ufixed : public nnfab_ap::fixed_base<W, I, false, Q, O> {
  static_assert(N == 0, "nnfab ap types: saturation bits N other than 0 are not supported");
  typedef nnfab_ap::fixed_base<W, I, false, Q, O> base;

 public:
  using base::base;
  constexpr ap_ufixed() : base() {}
  constexpr ap_ufixed(const base& other) : base(other) {}
};

#endif  // NNFAB_AP_FIXED_H
