// nnfab_norm.h -- batch normalization at inference (io_parallel).
//
//   res[i] = res_T( accum_t(x[i] * scale[c]) + accum_t(bias[c]) ),  c = i % n_chan
//
// The product is exact before its cast to accum_t; the sum wraps in accum_t.

#ifndef NNFAB_NORM_H
#define NNFAB_NORM_H

#include "nnfab_common.h"

namespace nnfab {

// CONFIG_T: n_in (values), n_chan (channels of the last axis) and the types accum_t,
// weight_t (of the scale), bias_t.
template <class data_T, class res_T, class CONFIG_T, class scale_A, class bias_A>
void batchnorm(const data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_in],
               const scale_A scale[CONFIG_T::n_chan], const bias_A bias[CONFIG_T::n_chan]) {
  typedef typename CONFIG_T::accum_t accum_t;
  typedef typename CONFIG_T::weight_t weight_t;
  typedef typename CONFIG_T::bias_t bias_t;
  NNFAB_PRAGMA(HLS INLINE)
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=scale complete)
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=bias complete)
  for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
    NNFAB_PRAGMA(HLS UNROLL)
    const unsigned c = i % CONFIG_T::n_chan;
    accum_t acc = accum_t(data[i] * load<weight_t>(scale[c]));
    acc += accum_t(load<bias_t>(bias[c]));
    res[i] = res_T(acc);
  }
}

}  // namespace nnfab

#endif  // NNFAB_NORM_H
