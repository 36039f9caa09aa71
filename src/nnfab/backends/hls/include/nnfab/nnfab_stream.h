// nnfab_stream.h -- io_stream layers: tensors travel as hls::stream of packed transactions.
//
// A tensor of shape (..., C) is a stream of prod(...) transactions of C values (one pixel
// or one feature vector each), in row-major order. Layers acting on the last axis only
// (Dense, activations, softmax, batch norm, merges) are generated as loops over
// transactions around the io_parallel code; windowed layers (convolutions, pooling) keep
// a line buffer of the last win_height input rows and compute each output row as soon as
// its last input row has arrived. The arithmetic is the io_parallel one (same kernels).

#ifndef NNFAB_STREAM_H
#define NNFAB_STREAM_H

#include "hls_stream.h"
#include "nnfab_common.h"

namespace nnfab {

// Geometry CONFIG_T of windowed layers: in_height, in_width, n_chan, out_height,
// out_width, stride_height, stride_width, pad_top, pad_left, win_height, win_width,
// reuse_factor and strategy (latency_tag: one output pixel every reuse_factor cycles;
// resource_tag: pixels one after the other, each running its pipelined reuse loop).

// Last input row output row oh needs (clipped to the input): when it has arrived, the
// line buffer holds every row of the window.
template <class CONFIG_T>
int last_row(unsigned oh) {
  const int last = static_cast<int>(oh * CONFIG_T::stride_height + CONFIG_T::win_height) - 1 -
                   static_cast<int>(CONFIG_T::pad_top);
  const int top = static_cast<int>(CONFIG_T::in_height) - 1;
  return last < 0 ? 0 : (last > top ? top : last);
}

// The window of output pixel (oh, ow) from the line buffer: window[t * n_chan + c] for tap
// t = kh * win_width + kw, and valid[t] (false where the tap lies in the padding; the
// value is then 0).
template <class value_t, class CONFIG_T>
void window_from_lines(
    const value_t lines[CONFIG_T::win_height][CONFIG_T::in_width * CONFIG_T::n_chan],
    value_t* window, bool* valid, unsigned oh, unsigned ow) {
  NNFAB_PRAGMA(HLS INLINE)
  for (unsigned kh = 0; kh < CONFIG_T::win_height; kh++) {
    NNFAB_PRAGMA(HLS UNROLL)
    const int ih = static_cast<int>(oh * CONFIG_T::stride_height + kh) -
                   static_cast<int>(CONFIG_T::pad_top);
    const bool row_in = ih >= 0 && ih < static_cast<int>(CONFIG_T::in_height);
    const unsigned slot = row_in ? static_cast<unsigned>(ih) % CONFIG_T::win_height : 0u;
    for (unsigned kw = 0; kw < CONFIG_T::win_width; kw++) {
      NNFAB_PRAGMA(HLS UNROLL)
      const int iw = static_cast<int>(ow * CONFIG_T::stride_width + kw) -
                     static_cast<int>(CONFIG_T::pad_left);
      const bool inside = row_in && iw >= 0 && iw < static_cast<int>(CONFIG_T::in_width);
      const unsigned t = kh * CONFIG_T::win_width + kw;
      const unsigned x0 = inside ? static_cast<unsigned>(iw) * CONFIG_T::n_chan : 0u;
      valid[t] = inside;
      for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
        NNFAB_PRAGMA(HLS UNROLL)
        window[t * CONFIG_T::n_chan + c] = inside ? lines[slot][x0 + c] : value_t(0);
      }
    }
  }
}

template <class data_T, class res_T, class CONFIG_T, class KERNEL>
void window_pixel(
    const typename data_T::value_type
        lines[CONFIG_T::win_height][CONFIG_T::in_width * CONFIG_T::n_chan],
    hls::stream<res_T>& out, const KERNEL& kernel, unsigned oh, unsigned ow) {
  typedef typename data_T::value_type value_t;
  static const unsigned taps = CONFIG_T::win_height * CONFIG_T::win_width;
  NNFAB_PRAGMA(HLS INLINE)
  value_t window[taps * CONFIG_T::n_chan];
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=window complete)
  bool valid[taps];
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=valid complete)
  window_from_lines<value_t, CONFIG_T>(lines, window, valid, oh, ow);
  res_T pixel;
  kernel(window, valid, pixel.data);
  out.write(pixel);
}

template <class data_T, class res_T, class CONFIG_T, class KERNEL>
void window_row(
    latency_tag,
    const typename data_T::value_type
        lines[CONFIG_T::win_height][CONFIG_T::in_width * CONFIG_T::n_chan],
    hls::stream<res_T>& out, const KERNEL& kernel, unsigned oh) {
  NNFAB_PRAGMA(HLS INLINE)
  for (unsigned ow = 0; ow < CONFIG_T::out_width; ow++) {
    NNFAB_PRAGMA(HLS PIPELINE II=CONFIG_T::reuse_factor)
    window_pixel<data_T, res_T, CONFIG_T>(lines, out, kernel, oh, ow);
  }
}

template <class data_T, class res_T, class CONFIG_T, class KERNEL>
void window_row(
    resource_tag,
    const typename data_T::value_type
        lines[CONFIG_T::win_height][CONFIG_T::in_width * CONFIG_T::n_chan],
    hls::stream<res_T>& out, const KERNEL& kernel, unsigned oh) {
  NNFAB_PRAGMA(HLS INLINE)
  for (unsigned ow = 0; ow < CONFIG_T::out_width; ow++) {
    window_pixel<data_T, res_T, CONFIG_T>(lines, out, kernel, oh, ow);
  }
}

// A windowed layer: KERNEL(window, valid, res) computes one output pixel (n values).
template <class data_T, class res_T, class CONFIG_T, class KERNEL>
void window_stream(hls::stream<data_T>& in, hls::stream<res_T>& out, const KERNEL& kernel) {
  typedef typename data_T::value_type value_t;
  value_t lines[CONFIG_T::win_height][CONFIG_T::in_width * CONFIG_T::n_chan];
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=lines complete dim=1)
  for (unsigned ih = 0; ih < CONFIG_T::in_height; ih++) {
    const unsigned slot = ih % CONFIG_T::win_height;
    for (unsigned iw = 0; iw < CONFIG_T::in_width; iw++) {
      NNFAB_PRAGMA(HLS PIPELINE II=1)
      const data_T pixel = in.read();
      for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
        NNFAB_PRAGMA(HLS UNROLL)
        lines[slot][iw * CONFIG_T::n_chan + c] = pixel[c];
      }
    }
    for (unsigned oh = 0; oh < CONFIG_T::out_height; oh++) {
      if (last_row<CONFIG_T>(oh) == static_cast<int>(ih)) {
        window_row<data_T, res_T, CONFIG_T>(typename CONFIG_T::strategy(), lines, out, kernel,
                                            oh);
      }
    }
  }
}

// Global pooling: one output transaction from in_height * in_width input transactions.
// CONFIG_T as for pool_2d (nnfab_pool.h).
template <class data_T, class res_T, class CONFIG_T, class scale_A>
void global_pool_stream(hls::stream<data_T>& in, hls::stream<res_T>& out,
                        const scale_A scales[CONFIG_T::in_height * CONFIG_T::in_width + 1]) {
  typedef typename data_T::value_type value_t;
  typedef typename res_T::value_type result_t;
  typedef typename CONFIG_T::sum_t sum_t;
  typedef typename CONFIG_T::scale_t scale_t;
  static const unsigned count = CONFIG_T::in_height * CONFIG_T::in_width;
  value_t best[CONFIG_T::n_chan];
  sum_t sums[CONFIG_T::n_chan];
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=best complete)
  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=sums complete)
  for (unsigned t = 0; t < count; t++) {
    NNFAB_PRAGMA(HLS PIPELINE II=1)
    const data_T pixel = in.read();
    for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
      NNFAB_PRAGMA(HLS UNROLL)
      if (t == 0) {
        best[c] = pixel[c];
        sums[c] = pixel[c];
      } else {
        if (pixel[c] > best[c]) best[c] = pixel[c];
        sums[c] += pixel[c];
      }
    }
  }
  res_T result;
  for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
    NNFAB_PRAGMA(HLS UNROLL)
    if (CONFIG_T::is_max) {
      result[c] = result_t(best[c]);
    } else {
      result[c] = result_t(sums[c] * load<scale_t>(scales[count]));
    }
  }
  out.write(result);
}

// Flatten / Reshape / Dropout: the N values in row-major order, regrouped from
// transactions of data_T::size values into transactions of res_T::size values, each
// value cast to the result type.
template <class data_T, class res_T, unsigned N>
void repack_stream(hls::stream<data_T>& in, hls::stream<res_T>& out) {
  typedef typename res_T::value_type result_t;
  res_T buffer;
  unsigned k = 0;
  for (unsigned t = 0; t < N / data_T::size; t++) {
    NNFAB_PRAGMA(HLS PIPELINE II=1)
    const data_T pixel = in.read();
    for (unsigned c = 0; c < data_T::size; c++) {
      buffer[k] = result_t(pixel[c]);
      k++;
      if (k == res_T::size) {
        out.write(buffer);
        k = 0;
      }
    }
  }
}

}  // namespace nnfab

#endif  // NNFAB_STREAM_H
