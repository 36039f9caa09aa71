// nnfab_pool.h -- max / average pooling, also global (io_parallel, channels-last).
//
// Padding is excluded from every window (docs/semantics.md): max is the largest real
// input; avg is res_T(exact sum * scale(count)), where count is the number of real
// inputs of the window and scales[count] = scale_t(1 / count) (nnfab.ir.tables).
// 1-D layers use height 1; global pooling is one window covering the input.

#ifndef NNFAB_POOL_H
#define NNFAB_POOL_H

#include "nnfab_common.h"

namespace nnfab {

// CONFIG_T: in_height, in_width, n_chan, pool_height, pool_width, stride_height,
// stride_width, pad_top, pad_left, out_height, out_width, is_max (bool) and the types
// sum_t (holds any exact sum of a window) and scale_t. scales has one entry per
// possible count 0..pool_height*pool_width (entry 0 is unused).
template <class data_T, class res_T, class CONFIG_T, class scale_A>
void pool_2d(const data_T data[CONFIG_T::in_height * CONFIG_T::in_width * CONFIG_T::n_chan],
             res_T res[CONFIG_T::out_height * CONFIG_T::out_width * CONFIG_T::n_chan],
             const scale_A scales[CONFIG_T::pool_height * CONFIG_T::pool_width + 1]) {
  typedef typename CONFIG_T::sum_t sum_t;
  typedef typename CONFIG_T::scale_t scale_t;
  NNFAB_PRAGMA(HLS INLINE)
  for (unsigned oh = 0; oh < CONFIG_T::out_height; oh++) {
    for (unsigned ow = 0; ow < CONFIG_T::out_width; ow++) {
      NNFAB_PRAGMA(HLS PIPELINE)
      for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
        data_T best = 0;
        sum_t sum = 0;
        unsigned count = 0;
        for (unsigned ph = 0; ph < CONFIG_T::pool_height; ph++) {
          const int ih = static_cast<int>(oh * CONFIG_T::stride_height + ph) -
                         static_cast<int>(CONFIG_T::pad_top);
          if (ih < 0 || ih >= static_cast<int>(CONFIG_T::in_height)) continue;
          for (unsigned pw = 0; pw < CONFIG_T::pool_width; pw++) {
            const int iw = static_cast<int>(ow * CONFIG_T::stride_width + pw) -
                           static_cast<int>(CONFIG_T::pad_left);
            if (iw < 0 || iw >= static_cast<int>(CONFIG_T::in_width)) continue;
            const data_T x = data[(static_cast<unsigned>(ih) * CONFIG_T::in_width +
                                   static_cast<unsigned>(iw)) * CONFIG_T::n_chan + c];
            if (CONFIG_T::is_max) {
              if (count == 0 || x > best) best = x;
            } else {
              sum += x;
            }
            count++;
          }
        }
        const unsigned o = (oh * CONFIG_T::out_width + ow) * CONFIG_T::n_chan + c;
        if (CONFIG_T::is_max) {
          res[o] = res_T(best);
        } else {
          res[o] = res_T(sum * load<scale_t>(scales[count]));
        }
      }
    }
  }
}

// One output pixel of a pooling layer from its window (io_stream): window[t * n_chan + c]
// for the pool_height * pool_width taps t, valid[t] false where a tap lies in the padding.
template <class data_T, class res_T, class CONFIG_T, class scale_A>
void pool_window(const data_T* window, const bool* valid, res_T* res,
                 const scale_A scales[CONFIG_T::pool_height * CONFIG_T::pool_width + 1]) {
  typedef typename CONFIG_T::sum_t sum_t;
  typedef typename CONFIG_T::scale_t scale_t;
  static const unsigned taps = CONFIG_T::pool_height * CONFIG_T::pool_width;
  NNFAB_PRAGMA(HLS INLINE)
  unsigned count = 0;
  for (unsigned t = 0; t < taps; t++) {
    NNFAB_PRAGMA(HLS UNROLL)
    if (valid[t]) count++;
  }
  for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
    NNFAB_PRAGMA(HLS UNROLL)
    data_T best = 0;
    sum_t sum = 0;
    bool first = true;
    for (unsigned t = 0; t < taps; t++) {
      NNFAB_PRAGMA(HLS UNROLL)
      if (!valid[t]) continue;
      const data_T x = window[t * CONFIG_T::n_chan + c];
      if (first || x > best) best = x;
      sum += x;
      first = false;
    }
    if (CONFIG_T::is_max) {
      res[c] = res_T(best);
    } else {
      res[c] = res_T(sum * load<scale_t>(scales[count]));
    }
  }
}

}  // namespace nnfab

#endif  // NNFAB_POOL_H
