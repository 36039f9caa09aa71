// nnfab_zoo.h -- Embedding, Conv1D/2DTranspose and LayerNormalization (io_parallel), per
// docs/semantics.md of nnfab.
//
//   embedding:         res[i, :] = index i of data in 0..n_vocab-1 ? res_T(table[index, :]) : 0
//   conv_transpose_2d: res[o, f] = res_T( sum over taps t and channels c with
//                      o + pad - t = stride * i (0 <= i < in) of accum_t(x[i, c] * w[t, c, f])
//                      + accum_t(b[f]) )            (1-D: height 1)
//   layernorm:         mean_t(sum * 1/N), the exact centred values d, var_t(sum d^2 * 1/N),
//                      r = table[octave index of var], norm_t(d * r), res_T(norm * gamma + beta)
//
// sum_t, diff_t and sq_t (layernorm) are generated wide enough to hold their values
// exactly; every other assignment is the one cast the rule allows.

#ifndef NNFAB_ZOO_H
#define NNFAB_ZOO_H

#include "nnfab_common.h"

namespace nnfab {

// CONFIG_T: n_in (indices), n_vocab, n_dim, weight_t. table: (n_vocab, n_dim) row-major.
template <class data_T, class res_T, class CONFIG_T, class T_A>
void embedding(const data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_in * CONFIG_T::n_dim],
               const T_A table[CONFIG_T::n_vocab * CONFIG_T::n_dim]) {
  typedef typename CONFIG_T::weight_t weight_t;
  NNFAB_PRAGMA(HLS INLINE)
  for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
    NNFAB_PRAGMA(HLS UNROLL)
    const int64_t k = data[i].to_int64();
    const bool valid = k >= 0 && k < static_cast<int64_t>(CONFIG_T::n_vocab);
    const unsigned row = valid ? static_cast<unsigned>(k) : 0;
    for (unsigned d = 0; d < CONFIG_T::n_dim; d++) {
      NNFAB_PRAGMA(HLS UNROLL)
      res[i * CONFIG_T::n_dim + d] =
          valid ? res_T(load<weight_t>(table[row * CONFIG_T::n_dim + d])) : res_T(0);
    }
  }
}

// CONFIG_T: in_height, in_width, n_chan, out_height, out_width, n_filt, stride_height,
// stride_width, pad_top, pad_left (cropped from the full output), filt_height,
// filt_width, relu, accum_t, weight_t, bias_t. w: (filt_height, filt_width, n_chan,
// n_filt) row-major.
template <class data_T, class res_T, class CONFIG_T, class W_A, class B_A>
void conv_transpose_2d(
    const data_T data[CONFIG_T::in_height * CONFIG_T::in_width * CONFIG_T::n_chan],
    res_T res[CONFIG_T::out_height * CONFIG_T::out_width * CONFIG_T::n_filt],
    const W_A w[CONFIG_T::filt_height * CONFIG_T::filt_width * CONFIG_T::n_chan *
                CONFIG_T::n_filt],
    const B_A b[CONFIG_T::n_filt]) {
  typedef typename CONFIG_T::accum_t accum_t;
  typedef typename CONFIG_T::weight_t weight_t;
  typedef typename CONFIG_T::bias_t bias_t;
  NNFAB_PRAGMA(HLS INLINE)
  for (unsigned oh = 0; oh < CONFIG_T::out_height; oh++) {
    for (unsigned ow = 0; ow < CONFIG_T::out_width; ow++) {
      for (unsigned f = 0; f < CONFIG_T::n_filt; f++) {
        NNFAB_PRAGMA(HLS UNROLL)
        accum_t acc = accum_t(load<bias_t>(b[f]));
        for (unsigned th = 0; th < CONFIG_T::filt_height; th++) {
          const int ph = static_cast<int>(oh + CONFIG_T::pad_top) - static_cast<int>(th);
          if (ph < 0 || ph % static_cast<int>(CONFIG_T::stride_height) != 0) continue;
          const unsigned ih = static_cast<unsigned>(ph) / CONFIG_T::stride_height;
          if (ih >= CONFIG_T::in_height) continue;
          for (unsigned tw = 0; tw < CONFIG_T::filt_width; tw++) {
            const int pw = static_cast<int>(ow + CONFIG_T::pad_left) - static_cast<int>(tw);
            if (pw < 0 || pw % static_cast<int>(CONFIG_T::stride_width) != 0) continue;
            const unsigned iw = static_cast<unsigned>(pw) / CONFIG_T::stride_width;
            if (iw >= CONFIG_T::in_width) continue;
            for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
              const unsigned xi = (ih * CONFIG_T::in_width + iw) * CONFIG_T::n_chan + c;
              const unsigned wi =
                  ((th * CONFIG_T::filt_width + tw) * CONFIG_T::n_chan + c) * CONFIG_T::n_filt + f;
              acc += accum_t(data[xi] * load<weight_t>(w[wi]));
            }
          }
        }
        const unsigned o = (oh * CONFIG_T::out_width + ow) * CONFIG_T::n_filt + f;
        if (CONFIG_T::relu && acc < 0) {
          res[o] = res_T(0);
        } else {
          res[o] = res_T(acc);
        }
      }
    }
  }
}

// Entry of the octave-indexed 1/sqrt table at the variance v (nnfab.ir.zoo.RsqrtTable):
// p = leading one of v's mantissa (0 for v == 0), sub = the table_bits bits below it,
// index = p * 2^table_bits + sub. Octaves are tried from the top (P = var_width - 1) down;
// for the matching P, floor(v * 2^(var_frac + table_bits - P)) = 2^table_bits + sub.
template <class CONFIG_T, int P>
struct rsqrt_octave {
  template <class V>
  static unsigned index(const V& v) {
    static const int B = CONFIG_T::table_bits;
    static const int K = CONFIG_T::var_frac + B - P;
    typedef ap_ufixed<1, 1 + K> scale_t;                  // one bit: the value 2^K
    typedef ap_ufixed<1, 1 + P - CONFIG_T::var_frac> lead_t;  // the value 2^(P - var_frac)
    typedef ap_ufixed<B + 1, B + 1> top_t;                // floor of v * 2^K, in [2^B, 2^(B+1))
    if (v >= lead_t(pow2(P - CONFIG_T::var_frac))) {
      const top_t k = v * scale_t(pow2(K));
      return static_cast<unsigned>(P) * (1u << B) + (k.to_uint() - (1u << B));
    }
    return rsqrt_octave<CONFIG_T, P - 1>::index(v);
  }
};

template <class CONFIG_T>
struct rsqrt_octave<CONFIG_T, 0> {
  template <class V>
  static unsigned index(const V& v) {
    static const int B = CONFIG_T::table_bits;
    static const int K = CONFIG_T::var_frac + B;
    typedef ap_ufixed<1, 1 + K> scale_t;
    typedef ap_ufixed<B + 1, B + 1> top_t;
    const top_t k = v * scale_t(pow2(K));  // 2^B for v = 2^-var_frac, 0 for v == 0
    const unsigned u = k.to_uint();
    return u >= (1u << B) ? u - (1u << B) : 0u;
  }
};

// CONFIG_T: n_rows (vectors), n_in (their length N), table_size, table_bits, var_width,
// var_frac (the 1/sqrt table), the types sum_t, diff_t, sq_t (exact) and scale_t, mean_t,
// var_t, table_t, norm_t, weight_t (gamma), bias_t (beta). inv holds scale_t(1/N).
template <class data_T, class res_T, class CONFIG_T, class S_A, class G_A, class B_A,
          class T_A>
void layernorm(const data_T data[CONFIG_T::n_rows * CONFIG_T::n_in],
               res_T res[CONFIG_T::n_rows * CONFIG_T::n_in], const S_A inv[1],
               const G_A gamma[CONFIG_T::n_in], const B_A beta[CONFIG_T::n_in],
               const T_A table[CONFIG_T::table_size]) {
  typedef typename CONFIG_T::sum_t sum_t;
  typedef typename CONFIG_T::diff_t diff_t;
  typedef typename CONFIG_T::sq_t sq_t;
  typedef typename CONFIG_T::scale_t scale_t;
  typedef typename CONFIG_T::mean_t mean_t;
  typedef typename CONFIG_T::var_t var_t;
  typedef typename CONFIG_T::table_t table_t;
  typedef typename CONFIG_T::norm_t norm_t;
  typedef typename CONFIG_T::weight_t weight_t;
  typedef typename CONFIG_T::bias_t bias_t;
  NNFAB_PRAGMA(HLS INLINE)
  const scale_t scale = load<scale_t>(inv[0]);
  for (unsigned r = 0; r < CONFIG_T::n_rows; r++) {
    const data_T* x = data + r * CONFIG_T::n_in;
    sum_t s = sum_t(0);
    for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
      NNFAB_PRAGMA(HLS UNROLL)
      s += x[i];
    }
    const mean_t mean = mean_t(s * scale);
    diff_t d[CONFIG_T::n_in];
    NNFAB_PRAGMA(HLS ARRAY_PARTITION variable=d complete)
    sq_t q = sq_t(0);
    for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
      NNFAB_PRAGMA(HLS UNROLL)
      d[i] = diff_t(x[i] - mean);
      q += d[i] * d[i];
    }
    const var_t var = var_t(q * scale);
    const unsigned k = rsqrt_octave<CONFIG_T, CONFIG_T::var_width - 1>::index(var);
    const table_t rs = load<table_t>(table[k]);
    for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
      NNFAB_PRAGMA(HLS UNROLL)
      const norm_t n = norm_t(d[i] * rs);
      res[r * CONFIG_T::n_in + i] =
          res_T(n * load<weight_t>(gamma[i]) + load<bias_t>(beta[i]));
    }
  }
}

}  // namespace nnfab

#endif  // NNFAB_ZOO_H
