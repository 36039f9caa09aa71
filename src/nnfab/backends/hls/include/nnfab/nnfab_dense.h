// nnfab_dense.h -- fully connected layer and the product kernels shared with convolutions.
//
//   res[j] = res_T( act( sum_i accum_t(data[i] * w[i][j]) + accum_t(b[j]) ) )
//
// Each product is exact and cast to accum_t; accum_t wraps, so the order of the
// additions does not matter (docs/semantics.md, section 2): both strategies and any
// split of the products into blocks give the same bits; `act` is the identity or a
// fused relu.

#ifndef NNFAB_DENSE_H
#define NNFAB_DENSE_H

#include "nnfab_common.h"

namespace nnfab {

// A product matrix, CONFIG_T:
//   n_in, n_out       products n_in x n_out (acc[j] += x(i, j) * w(i, j))
//   reuse_factor      Latency: initiation interval; Resource: steps of the reuse loop
//   block_factor      ceil(n_in * n_out / reuse_factor): multipliers of one step
//   depthwise, mult   false, 1 for a dense matrix: x(i, j) = data[i]; for depthwise
//                     convolutions x(i, j) = data[i * n_chan + j / mult] with
//                     n_chan = n_out / mult (i: tap, j: output channel)
//   strategy          latency_tag or resource_tag
//   accum_t, weight_t
// Weight order: Latency (n_in, n_out) row-major, w(i, j) = weights[i * n_out + j];
// Resource (n_out, n_in) row-major, w(i, j) = weights[j * n_in + i], so that step r reads
// the products p = m * reuse_factor + r (m < block_factor): with the array reshaped into
// block_factor blocks, that is one word of the ROM.
template <class CONFIG_T>
constexpr unsigned x_index(unsigned i, unsigned j) {
  return CONFIG_T::depthwise ? i * (CONFIG_T::n_out / CONFIG_T::mult) + j / CONFIG_T::mult : i;
}

template <class data_T, class CONFIG_T, class weight_A>
void mac(latency_tag, const data_T* data, typename CONFIG_T::accum_t* acc,
         const weight_A weights[CONFIG_T::n_in * CONFIG_T::n_out]) {
  typedef typename CONFIG_T::accum_t accum_t;
  typedef typename CONFIG_T::weight_t weight_t;
  NNFAB_PRAGMA(HLS INLINE)
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=weights complete)
  NNFAB_ALLOCATION_MUL(CONFIG_T::block_factor)
  for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
    NNFAB_PRAGMA(HLS UNROLL)
    for (unsigned j = 0; j < CONFIG_T::n_out; j++) {
      NNFAB_PRAGMA(HLS UNROLL)
      acc[j] += accum_t(data[x_index<CONFIG_T>(i, j)] *
                        load<weight_t>(weights[i * CONFIG_T::n_out + j]));
    }
  }
}

template <class data_T, class CONFIG_T, class weight_A>
void mac(resource_tag, const data_T* data, typename CONFIG_T::accum_t* acc,
         const weight_A weights[CONFIG_T::n_in * CONFIG_T::n_out]) {
  typedef typename CONFIG_T::accum_t accum_t;
  typedef typename CONFIG_T::weight_t weight_t;
  static const unsigned n_products = CONFIG_T::n_in * CONFIG_T::n_out;
  NNFAB_PRAGMA(HLS INLINE)
  NNFAB_PRAGMA(HLS ARRAY_RESHAPE variable=weights block factor=CONFIG_T::block_factor)
  NNFAB_ROM(weights)
  NNFAB_ALLOCATION_MUL(CONFIG_T::block_factor)
  for (unsigned r = 0; r < CONFIG_T::reuse_factor; r++) {
    NNFAB_PRAGMA(HLS PIPELINE II=1 rewind)
    for (unsigned m = 0; m < CONFIG_T::block_factor; m++) {
      NNFAB_PRAGMA(HLS UNROLL)
      const unsigned p = m * CONFIG_T::reuse_factor + r;
      if (p < n_products) {  // only false when reuse_factor does not divide n_products
        const unsigned j = p / CONFIG_T::n_in;
        const unsigned i = p % CONFIG_T::n_in;
        acc[j] += accum_t(data[x_index<CONFIG_T>(i, j)] * load<weight_t>(weights[p]));
      }
    }
  }
}

// One block of a layer split into sub-functions (so that no function unrolls more than
// the project's max_unroll products): adds the block's products into acc.
template <class data_T, class CONFIG_T, class weight_A>
void mac_block_impl(latency_tag, const data_T* data, typename CONFIG_T::accum_t* acc,
                    const weight_A weights[CONFIG_T::n_in * CONFIG_T::n_out]) {
  NNFAB_PRAGMA(HLS INLINE off)
  NNFAB_PRAGMA(HLS PIPELINE II=CONFIG_T::reuse_factor)
  mac<data_T, CONFIG_T>(latency_tag(), data, acc, weights);
}

template <class data_T, class CONFIG_T, class weight_A>
void mac_block_impl(resource_tag, const data_T* data, typename CONFIG_T::accum_t* acc,
                    const weight_A weights[CONFIG_T::n_in * CONFIG_T::n_out]) {
  NNFAB_PRAGMA(HLS INLINE off)
  mac<data_T, CONFIG_T>(resource_tag(), data, acc, weights);
}

template <class data_T, class CONFIG_T, class weight_A>
void mac_block(const data_T* data, typename CONFIG_T::accum_t* acc,
               const weight_A weights[CONFIG_T::n_in * CONFIG_T::n_out]) {
  NNFAB_PRAGMA(HLS INLINE)
  mac_block_impl<data_T, CONFIG_T>(typename CONFIG_T::strategy(), data, acc, weights);
}

// acc[j] = accum_t(b[j]); CONFIG_T: n_out, accum_t, bias_t.
template <class CONFIG_T, class bias_A>
void bias_init(typename CONFIG_T::accum_t* acc, const bias_A biases[CONFIG_T::n_out]) {
  typedef typename CONFIG_T::accum_t accum_t;
  typedef typename CONFIG_T::bias_t bias_t;
  NNFAB_PRAGMA(HLS INLINE)
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=biases complete)
  for (unsigned j = 0; j < CONFIG_T::n_out; j++) {
    NNFAB_PRAGMA(HLS UNROLL)
    acc[j] = accum_t(load<bias_t>(biases[j]));
  }
}

// res[j] = res_T(act(acc[j])); CONFIG_T: n_out, relu.
template <class res_T, class CONFIG_T>
void result_cast(const typename CONFIG_T::accum_t* acc, res_T* res) {
  NNFAB_PRAGMA(HLS INLINE)
  for (unsigned j = 0; j < CONFIG_T::n_out; j++) {
    NNFAB_PRAGMA(HLS UNROLL)
    if (CONFIG_T::relu && acc[j] < 0) {
      res[j] = res_T(0);
    } else {
      res[j] = res_T(acc[j]);
    }
  }
}

// CONFIG_T: a product matrix (above) plus relu (bool) and bias_t.
template <class data_T, class res_T, class CONFIG_T, class weight_A, class bias_A>
void dense(const data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_out],
           const weight_A weights[CONFIG_T::n_in * CONFIG_T::n_out],
           const bias_A biases[CONFIG_T::n_out]) {
  typedef typename CONFIG_T::accum_t accum_t;
  NNFAB_PRAGMA(HLS INLINE)
  accum_t acc[CONFIG_T::n_out];
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=acc complete)
  bias_init<CONFIG_T>(acc, biases);
  mac<data_T, CONFIG_T>(typename CONFIG_T::strategy(), data, acc, weights);
  result_cast<res_T, CONFIG_T>(acc, res);
}

}  // namespace nnfab

#endif  // NNFAB_DENSE_H
