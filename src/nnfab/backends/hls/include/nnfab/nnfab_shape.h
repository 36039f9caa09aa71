// nnfab_shape.h -- layers that move values without arithmetic: zero padding, cropping,
// nearest upsampling, permute (nnfab.ir.rearrange; docs/semantics.md, section 4).
//
// Every output element is one input element cast to the result type, or 0 (padding).
// The output is seen as 4 axes (leading axes of size 1 for smaller ranks); output axis
// k of size sizeK runs along the input axis of row-major stride strideK and lengthK
// elements: output coordinate o reads input coordinate (o * stepK - offsetK) / repeatK
// when 0 <= o * stepK - offsetK < repeatK * lengthK, else the element is a padding zero.

#ifndef NNFAB_SHAPE_H
#define NNFAB_SHAPE_H

#include "hls_stream.h"
#include "nnfab_common.h"

namespace nnfab {

// Input coordinate along one axis, or -1 outside the input (a padding element).
template <int OFFSET, unsigned REPEAT, unsigned LENGTH, unsigned STEP>
inline int rearrange_coord(unsigned o) {
  const int shifted = int(o * STEP) - OFFSET;
  if (shifted < 0 || shifted >= int(REPEAT * LENGTH)) return -1;
  return shifted / int(REPEAT);
}

template <class data_T, class res_T, class CONFIG_T>
void rearrange(const data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_out]) {
  typedef CONFIG_T C;
  for (unsigned o0 = 0; o0 < C::size0; o0++) {
    NNFAB_PRAGMA(HLS UNROLL)
    const int i0 = rearrange_coord<C::offset0, C::repeat0, C::length0, C::step0>(o0);
    for (unsigned o1 = 0; o1 < C::size1; o1++) {
      NNFAB_PRAGMA(HLS UNROLL)
      const int i1 = rearrange_coord<C::offset1, C::repeat1, C::length1, C::step1>(o1);
      for (unsigned o2 = 0; o2 < C::size2; o2++) {
        NNFAB_PRAGMA(HLS UNROLL)
        const int i2 = rearrange_coord<C::offset2, C::repeat2, C::length2, C::step2>(o2);
        for (unsigned o3 = 0; o3 < C::size3; o3++) {
          NNFAB_PRAGMA(HLS UNROLL)
          const int i3 = rearrange_coord<C::offset3, C::repeat3, C::length3, C::step3>(o3);
          const unsigned out = ((o0 * C::size1 + o1) * C::size2 + o2) * C::size3 + o3;
          if (i0 < 0 || i1 < 0 || i2 < 0 || i3 < 0) {
            res[out] = res_T(0);
          } else {
            res[out] = res_T(data[unsigned(i0) * C::stride0 + unsigned(i1) * C::stride1 +
                                  unsigned(i2) * C::stride2 + unsigned(i3) * C::stride3]);
          }
        }
      }
    }
  }
}

// io_stream: the whole sample is buffered (it arrives as n_in / data_T::size
// transactions), rearranged as above and sent as n_out / res_T::size transactions.
template <class data_T, class res_T, class CONFIG_T>
void rearrange_stream(hls::stream<data_T>& in, hls::stream<res_T>& out) {
  typedef typename data_T::value_type in_t;
  typedef typename res_T::value_type out_t;
  in_t buffer[CONFIG_T::n_in];
  out_t result[CONFIG_T::n_out];
  for (unsigned t = 0; t < CONFIG_T::n_in / data_T::size; t++) {
    NNFAB_PRAGMA(HLS PIPELINE II=1)
    const data_T pixel = in.read();
    for (unsigned c = 0; c < data_T::size; c++) buffer[t * data_T::size + c] = pixel[c];
  }
  rearrange<in_t, out_t, CONFIG_T>(buffer, result);
  for (unsigned t = 0; t < CONFIG_T::n_out / res_T::size; t++) {
    NNFAB_PRAGMA(HLS PIPELINE II=1)
    res_T pixel;
    for (unsigned c = 0; c < res_T::size; c++) pixel[c] = result[t * res_T::size + c];
    out.write(pixel);
  }
}

}  // namespace nnfab

#endif  // NNFAB_SHAPE_H
