// ap_int.h -- nnfab's arbitrary-precision integer types for g++ C simulation.
// See nnfab_ap_base.h. ap_int<W> / ap_uint<W> are the fixed-point types <W, W> with
// truncation and wrap-around; widths 1..128.

#ifndef NNFAB_AP_INT_H
#define NNFAB_AP_INT_H

#include "nnfab_ap_base.h"

template <int W>
class ap_int : public nnfab_ap::fixed_base<W, W, true, AP_TRN, AP_WRAP> {
  typedef nnfab_ap::fixed_base<W, W, true, AP_TRN, AP_WRAP> base;

 public:
  using base::base;
  constexpr ap_int() : base() {}
  constexpr ap_int(const base& other) : base(other) {}
};

template <int W>
class ap_uint : public nnfab_ap::fixed_base<W, W, false, AP_TRN, AP_WRAP> {
  typedef nnfab_ap::fixed_base<W, W, false, AP_TRN, AP_WRAP> base;

 public:
  using base::base;
  constexpr ap_uint() : base() {}
  constexpr ap_uint(const base& other) : base(other) {}
};

#endif  // NNFAB_AP_INT_H
