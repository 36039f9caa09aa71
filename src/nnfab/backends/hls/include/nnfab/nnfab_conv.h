// nnfab_conv.h -- Conv1D/Conv2D and depthwise convolutions (io_parallel, channels-last).
//
//   res[o, f] = res_T( act( sum_{t, c} accum_t(x[o*stride + t - pad, c] * w[t, c, f])
//                           + accum_t(b[f]) ) )
//
// Taps that fall into the zero padding contribute exact zeros and are skipped. 1-D
// layers use height 1. Arrays are flat, row-major: data (in_height, in_width, n_chan),
// weights (filt_height, filt_width, n_chan, n_filt), res (out_height, out_width, n_filt);
// depthwise: weights (filt_height, filt_width, n_chan, depth_multiplier) and output
// channel c * depth_multiplier + m reads input channel c only.

#ifndef NNFAB_CONV_H
#define NNFAB_CONV_H

#include "nnfab_common.h"

namespace nnfab {

// CONFIG_T: in_height, in_width, n_chan, filt_height, filt_width, n_filt, stride_height,
// stride_width, pad_top, pad_left, out_height, out_width, reuse_factor, relu and the
// types accum_t, weight_t, bias_t.
template <class data_T, class res_T, class CONFIG_T, class weight_A, class bias_A>
void conv_2d(const data_T data[CONFIG_T::in_height * CONFIG_T::in_width * CONFIG_T::n_chan],
             res_T res[CONFIG_T::out_height * CONFIG_T::out_width * CONFIG_T::n_filt],
             const weight_A weights[CONFIG_T::filt_height * CONFIG_T::filt_width *
                                    CONFIG_T::n_chan * CONFIG_T::n_filt],
             const bias_A biases[CONFIG_T::n_filt]) {
  typedef typename CONFIG_T::accum_t accum_t;
  typedef typename CONFIG_T::weight_t weight_t;
  typedef typename CONFIG_T::bias_t bias_t;
  NNFAB_PRAGMA(HLS INLINE)
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=weights complete)
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=biases complete)
  for (unsigned oh = 0; oh < CONFIG_T::out_height; oh++) {
    for (unsigned ow = 0; ow < CONFIG_T::out_width; ow++) {
      NNFAB_PRAGMA(HLS PIPELINE II=CONFIG_T::reuse_factor)
      accum_t acc[CONFIG_T::n_filt];
      NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=acc complete)
      for (unsigned f = 0; f < CONFIG_T::n_filt; f++) {
        acc[f] = accum_t(load<bias_t>(biases[f]));
      }
      for (unsigned kh = 0; kh < CONFIG_T::filt_height; kh++) {
        const int ih = static_cast<int>(oh * CONFIG_T::stride_height + kh) -
                       static_cast<int>(CONFIG_T::pad_top);
        if (ih < 0 || ih >= static_cast<int>(CONFIG_T::in_height)) continue;
        for (unsigned kw = 0; kw < CONFIG_T::filt_width; kw++) {
          const int iw = static_cast<int>(ow * CONFIG_T::stride_width + kw) -
                         static_cast<int>(CONFIG_T::pad_left);
          if (iw < 0 || iw >= static_cast<int>(CONFIG_T::in_width)) continue;
          const unsigned x0 = (static_cast<unsigned>(ih) * CONFIG_T::in_width +
                               static_cast<unsigned>(iw)) * CONFIG_T::n_chan;
          const unsigned w0 = (kh * CONFIG_T::filt_width + kw) * CONFIG_T::n_chan;
          for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
            const data_T x = data[x0 + c];
            for (unsigned f = 0; f < CONFIG_T::n_filt; f++) {
              acc[f] += accum_t(x * load<weight_t>(weights[(w0 + c) * CONFIG_T::n_filt + f]));
            }
          }
        }
      }
      const unsigned o0 = (oh * CONFIG_T::out_width + ow) * CONFIG_T::n_filt;
      for (unsigned f = 0; f < CONFIG_T::n_filt; f++) {
        if (CONFIG_T::relu && acc[f] < 0) {
          res[o0 + f] = res_T(0);
        } else {
          res[o0 + f] = res_T(acc[f]);
        }
      }
    }
  }
}

// As conv_2d with n_filt = n_chan * depth_multiplier output channels.
template <class data_T, class res_T, class CONFIG_T, class weight_A, class bias_A>
void depthwise_conv_2d(
    const data_T data[CONFIG_T::in_height * CONFIG_T::in_width * CONFIG_T::n_chan],
    res_T res[CONFIG_T::out_height * CONFIG_T::out_width * CONFIG_T::n_filt],
    const weight_A weights[CONFIG_T::filt_height * CONFIG_T::filt_width * CONFIG_T::n_filt],
    const bias_A biases[CONFIG_T::n_filt]) {
  typedef typename CONFIG_T::accum_t accum_t;
  typedef typename CONFIG_T::weight_t weight_t;
  typedef typename CONFIG_T::bias_t bias_t;
  static const unsigned mult = CONFIG_T::n_filt / CONFIG_T::n_chan;
  NNFAB_PRAGMA(HLS INLINE)
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=weights complete)
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=biases complete)
  for (unsigned oh = 0; oh < CONFIG_T::out_height; oh++) {
    for (unsigned ow = 0; ow < CONFIG_T::out_width; ow++) {
      NNFAB_PRAGMA(HLS PIPELINE II=CONFIG_T::reuse_factor)
      accum_t acc[CONFIG_T::n_filt];
      NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=acc complete)
      for (unsigned f = 0; f < CONFIG_T::n_filt; f++) {
        acc[f] = accum_t(load<bias_t>(biases[f]));
      }
      for (unsigned kh = 0; kh < CONFIG_T::filt_height; kh++) {
        const int ih = static_cast<int>(oh * CONFIG_T::stride_height + kh) -
                       static_cast<int>(CONFIG_T::pad_top);
        if (ih < 0 || ih >= static_cast<int>(CONFIG_T::in_height)) continue;
        for (unsigned kw = 0; kw < CONFIG_T::filt_width; kw++) {
          const int iw = static_cast<int>(ow * CONFIG_T::stride_width + kw) -
                         static_cast<int>(CONFIG_T::pad_left);
          if (iw < 0 || iw >= static_cast<int>(CONFIG_T::in_width)) continue;
          const unsigned x0 = (static_cast<unsigned>(ih) * CONFIG_T::in_width +
                               static_cast<unsigned>(iw)) * CONFIG_T::n_chan;
          const unsigned w0 = (kh * CONFIG_T::filt_width + kw) * CONFIG_T::n_filt;
          for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
            const data_T x = data[x0 + c];
            for (unsigned m = 0; m < mult; m++) {
              const unsigned f = c * mult + m;
              acc[f] += accum_t(x * load<weight_t>(weights[w0 + f]));
            }
          }
        }
      }
      const unsigned o0 = (oh * CONFIG_T::out_width + ow) * CONFIG_T::n_filt;
      for (unsigned f = 0; f < CONFIG_T::n_filt; f++) {
        if (CONFIG_T::relu && acc[f] < 0) {
          res[o0 + f] = res_T(0);
        } else {
          res[o0 + f] = res_T(acc[f]);
        }
      }
    }
  }
}

}  // namespace nnfab

#endif  // NNFAB_CONV_H
