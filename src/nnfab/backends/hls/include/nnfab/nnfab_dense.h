// nnfab_dense.h -- fully connected layer (io_parallel).
//
//   res[j] = res_T( act( sum_i accum_t(data[i] * w[i][j]) + accum_t(b[j]) ) )
//
// Each product is exact and cast to accum_t; accum_t wraps, so the order of the
// additions does not matter; `act` is the identity or a fused relu.

#ifndef NNFAB_DENSE_H
#define NNFAB_DENSE_H

#include "nnfab_common.h"

namespace nnfab {

// CONFIG_T provides: n_in, n_out, reuse_factor, relu (bool) and the types accum_t,
// weight_t, bias_t. Weights are stored row-major as (n_in, n_out).
template <class data_T, class res_T, class CONFIG_T, class weight_A, class bias_A>
void dense_latency(const data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_out],
                   const weight_A weights[CONFIG_T::n_in * CONFIG_T::n_out],
                   const bias_A biases[CONFIG_T::n_out]) {
  typedef typename CONFIG_T::accum_t accum_t;
  typedef typename CONFIG_T::weight_t weight_t;
  typedef typename CONFIG_T::bias_t bias_t;
  NNFAB_PRAGMA(HLS INLINE)
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=weights complete)
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=biases complete)

  accum_t acc[CONFIG_T::n_out];
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=acc complete)
  for (unsigned j = 0; j < CONFIG_T::n_out; j++) {
    NNFAB_PRAGMA(HLS UNROLL)
    acc[j] = accum_t(load<bias_t>(biases[j]));
  }
  for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
    NNFAB_PRAGMA(HLS UNROLL)
    const data_T x = data[i];
    for (unsigned j = 0; j < CONFIG_T::n_out; j++) {
      NNFAB_PRAGMA(HLS UNROLL)
      acc[j] += accum_t(x * load<weight_t>(weights[i * CONFIG_T::n_out + j]));
    }
  }
  for (unsigned j = 0; j < CONFIG_T::n_out; j++) {
    NNFAB_PRAGMA(HLS UNROLL)
    if (CONFIG_T::relu && acc[j] < 0) {
      res[j] = res_T(0);
    } else {
      res[j] = res_T(acc[j]);
    }
  }
}

template <class data_T, class res_T, class CONFIG_T, class weight_A, class bias_A>
void dense(const data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_out],
           const weight_A weights[CONFIG_T::n_in * CONFIG_T::n_out],
           const bias_A biases[CONFIG_T::n_out]) {
  dense_latency<data_T, res_T, CONFIG_T>(data, res, weights, biases);
}

}  // namespace nnfab

#endif  // NNFAB_DENSE_H
