// nnfab_conv.h -- Conv1D/Conv2D and depthwise convolutions (io_parallel, channels-last).
//
//   res[o, f] = res_T( act( sum_{t, c} accum_t(x[o*stride + t - pad, c] * w[t, c, f])
//                           + accum_t(b[f]) ) )
//
// Per output pixel, the input window (filt_height x filt_width x n_chan, zeros where it
// overlaps the padding: their products are exact zeros) goes through the product kernel
// of nnfab_dense.h, so both strategies and every reuse factor share one arithmetic. 1-D
// layers use height 1. Arrays are flat, row-major: data (in_height, in_width, n_chan),
// res (out_height, out_width, n_filt_total); weights as described in nnfab_dense.h for
// the product matrix (window, n_filt) -- depthwise: (taps, n_chan * depth multiplier).

#ifndef NNFAB_CONV_H
#define NNFAB_CONV_H

#include "nnfab_common.h"
#include "nnfab_dense.h"

namespace nnfab {

// CONFIG_T: in_height, in_width, n_chan, filt_height, filt_width, stride_height,
// stride_width, pad_top, pad_left, out_height, out_width; n_filt (output channels this
// call computes: the product matrix's n_out), n_filt_total (channels of res) and
// filt_offset (first channel written); the product-matrix fields of nnfab_dense.h
// (n_in = window size, or taps when depthwise); relu and the types accum_t, weight_t, bias_t.
template <class CONFIG_T>
struct window_size {
  static const unsigned value = CONFIG_T::filt_height * CONFIG_T::filt_width * CONFIG_T::n_chan;
};

// The input window of output pixel (oh, ow): window[(kh * filt_width + kw) * n_chan + c].
template <class data_T, class CONFIG_T>
void gather_window(const data_T* data, data_T* window, unsigned oh, unsigned ow) {
  NNFAB_PRAGMA(HLS INLINE)
  for (unsigned kh = 0; kh < CONFIG_T::filt_height; kh++) {
    NNFAB_PRAGMA(HLS UNROLL)
    const int ih = static_cast<int>(oh * CONFIG_T::stride_height + kh) -
                   static_cast<int>(CONFIG_T::pad_top);
    const bool row_in = ih >= 0 && ih < static_cast<int>(CONFIG_T::in_height);
    for (unsigned kw = 0; kw < CONFIG_T::filt_width; kw++) {
      NNFAB_PRAGMA(HLS UNROLL)
      const int iw = static_cast<int>(ow * CONFIG_T::stride_width + kw) -
                     static_cast<int>(CONFIG_T::pad_left);
      const bool inside = row_in && iw >= 0 && iw < static_cast<int>(CONFIG_T::in_width);
      const unsigned w0 = (kh * CONFIG_T::filt_width + kw) * CONFIG_T::n_chan;
      const unsigned x0 = inside ? (static_cast<unsigned>(ih) * CONFIG_T::in_width +
                                    static_cast<unsigned>(iw)) * CONFIG_T::n_chan : 0u;
      for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
        NNFAB_PRAGMA(HLS UNROLL)
        window[w0 + c] = inside ? data[x0 + c] : data_T(0);
      }
    }
  }
}

// One output pixel from its window: res_pixel[filt_offset + f] for f < n_filt.
template <class data_T, class res_T, class CONFIG_T, class weight_A, class bias_A>
void conv_window(const data_T* window, res_T* res_pixel,
                 const weight_A weights[CONFIG_T::n_in * CONFIG_T::n_out],
                 const bias_A biases[CONFIG_T::n_out]) {
  typedef typename CONFIG_T::accum_t accum_t;
  NNFAB_PRAGMA(HLS INLINE)
  accum_t acc[CONFIG_T::n_out];
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=acc complete)
  bias_init<CONFIG_T>(acc, biases);
  mac<data_T, CONFIG_T>(typename CONFIG_T::strategy(), window, acc, weights);
  result_cast<res_T, CONFIG_T>(acc, res_pixel + CONFIG_T::filt_offset);
}

template <class data_T, class res_T, class CONFIG_T, class weight_A, class bias_A>
void conv_pixel(const data_T* data, res_T* res, const weight_A* weights, const bias_A* biases,
                unsigned oh, unsigned ow) {
  NNFAB_PRAGMA(HLS INLINE)
  data_T window[window_size<CONFIG_T>::value];
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=window complete)
  gather_window<data_T, CONFIG_T>(data, window, oh, ow);
  conv_window<data_T, res_T, CONFIG_T>(
      window, res + (oh * CONFIG_T::out_width + ow) * CONFIG_T::n_filt_total, weights, biases);
}

// Latency: one pixel per reuse_factor cycles, all products of a pixel in parallel.
template <class data_T, class res_T, class CONFIG_T, class weight_A, class bias_A>
void conv_pixels(latency_tag, const data_T* data, res_T* res, const weight_A* weights,
                 const bias_A* biases) {
  NNFAB_PRAGMA(HLS INLINE)
  for (unsigned oh = 0; oh < CONFIG_T::out_height; oh++) {
    for (unsigned ow = 0; ow < CONFIG_T::out_width; ow++) {
      NNFAB_PRAGMA(HLS PIPELINE II=CONFIG_T::reuse_factor)
      conv_pixel<data_T, res_T, CONFIG_T>(data, res, weights, biases, oh, ow);
    }
  }
}

// Resource: each pixel runs the pipelined reuse loop of block_factor multipliers.
template <class data_T, class res_T, class CONFIG_T, class weight_A, class bias_A>
void conv_pixels(resource_tag, const data_T* data, res_T* res, const weight_A* weights,
                 const bias_A* biases) {
  NNFAB_PRAGMA(HLS INLINE)
  for (unsigned oh = 0; oh < CONFIG_T::out_height; oh++) {
    for (unsigned ow = 0; ow < CONFIG_T::out_width; ow++) {
      conv_pixel<data_T, res_T, CONFIG_T>(data, res, weights, biases, oh, ow);
    }
  }
}

template <class data_T, class res_T, class CONFIG_T, class weight_A, class bias_A>
void conv_2d(const data_T data[CONFIG_T::in_height * CONFIG_T::in_width * CONFIG_T::n_chan],
             res_T res[CONFIG_T::out_height * CONFIG_T::out_width * CONFIG_T::n_filt_total],
             const weight_A weights[CONFIG_T::n_in * CONFIG_T::n_out],
             const bias_A biases[CONFIG_T::n_out]) {
  NNFAB_PRAGMA(HLS INLINE)
  conv_pixels<data_T, res_T, CONFIG_T>(typename CONFIG_T::strategy(), data, res, weights,
                                       biases);
}

// Depthwise convolutions: the same with CONFIG_T::depthwise (output channel
// c * mult + m reads input channel c only).
template <class data_T, class res_T, class CONFIG_T, class weight_A, class bias_A>
void depthwise_conv_2d(
    const data_T data[CONFIG_T::in_height * CONFIG_T::in_width * CONFIG_T::n_chan],
    res_T res[CONFIG_T::out_height * CONFIG_T::out_width * CONFIG_T::n_filt_total],
    const weight_A weights[CONFIG_T::n_in * CONFIG_T::n_out],
    const bias_A biases[CONFIG_T::n_out]) {
  NNFAB_PRAGMA(HLS INLINE)
  static_assert(CONFIG_T::depthwise, "depthwise_conv_2d needs a depthwise configuration");
  conv_pixels<data_T, res_T, CONFIG_T>(typename CONFIG_T::strategy(), data, res, weights,
                                       biases);
}

}  // namespace nnfab

#endif  // NNFAB_CONV_H
