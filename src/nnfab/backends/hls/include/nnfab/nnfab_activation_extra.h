// nnfab_activation_extra.h -- prelu, thresholded_relu, hard_tanh, the negative-half tables of
// elu / celu / selu (io_parallel), per docs/semantics.md.
//
// Every comparison and product is exact (ap_fixed arithmetic widens); the one cast is to
// res_T. Table entries come from nnfab.ir.tables, never recomputed here.

#ifndef NNFAB_ACTIVATION_EXTRA_H
#define NNFAB_ACTIVATION_EXTRA_H

#include "nnfab_common.h"

namespace nnfab {

// y = res_T(x) for x >= 0, else res_T(alpha[i] * x); alpha: n_in param_t values.
template <class data_T, class res_T, class CONFIG_T, class alpha_A>
void prelu(const data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_in],
           const alpha_A alpha[CONFIG_T::n_in]) {
  typedef typename CONFIG_T::param_t param_t;
  NNFAB_PRAGMA(HLS INLINE)
  for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
    NNFAB_PRAGMA(HLS UNROLL)
    const data_T x = data[i];
    const param_t a = load<param_t>(alpha[i]);
    res[i] = x >= 0 ? res_T(x) : res_T(a * x);
  }
}

// y = res_T(x) if x > theta else 0; CONFIG_T::theta_t holds theta exactly.
template <class data_T, class res_T, class CONFIG_T>
void thresholded_relu(const data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_in]) {
  typedef typename CONFIG_T::theta_t theta_t;
  NNFAB_PRAGMA(HLS INLINE)
  static const theta_t theta = theta_t(CONFIG_T::theta);
  for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
    NNFAB_PRAGMA(HLS UNROLL)
    const data_T x = data[i];
    res[i] = x > theta ? res_T(x) : res_T(0);
  }
}

// y = res_T(min(max(x, min_val), max_val)); min_t / max_t hold the bounds exactly.
template <class data_T, class res_T, class CONFIG_T>
void hard_tanh(const data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_in]) {
  typedef typename CONFIG_T::min_t min_t;
  typedef typename CONFIG_T::max_t max_t;
  NNFAB_PRAGMA(HLS INLINE)
  static const min_t lo = min_t(CONFIG_T::min_val);
  static const max_t hi = max_t(CONFIG_T::max_val);
  for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
    NNFAB_PRAGMA(HLS UNROLL)
    const data_T x = data[i];
    if (x < lo) {
      res[i] = res_T(lo);
    } else if (x > hi) {
      res[i] = res_T(hi);
    } else {
      res[i] = res_T(x);
    }
  }
}

// elu / celu: y = res_T(x) for x >= 0, else res_T(table[clip(floor(x / 2^step_log2) + N, 0,
// N - 1)]) (a table over [-R, 0)). CONFIG_T: table_size, table_base, step_log2, table_t.
template <class data_T, class res_T, class CONFIG_T, class table_A>
void negative_table_activation(const data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_in],
                               const table_A table[CONFIG_T::table_size]) {
  typedef typename CONFIG_T::table_t table_t;
  NNFAB_PRAGMA(HLS INLINE)
  for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
    NNFAB_PRAGMA(HLS UNROLL)
    const data_T x = data[i];
    const int k = table_index<CONFIG_T::table_size, CONFIG_T::table_base, CONFIG_T::step_log2>(x);
    res[i] = x >= 0 ? res_T(x) : res_T(load<table_t>(table[k]));
  }
}

// selu: as negative_table_activation, with y = res_T(scale * x) (exact product) for x >= 0;
// CONFIG_T::param_t holds scale.
template <class data_T, class res_T, class CONFIG_T, class table_A>
void scaled_negative_table_activation(const data_T data[CONFIG_T::n_in],
                                      res_T res[CONFIG_T::n_in],
                                      const table_A table[CONFIG_T::table_size]) {
  typedef typename CONFIG_T::table_t table_t;
  typedef typename CONFIG_T::param_t param_t;
  NNFAB_PRAGMA(HLS INLINE)
  static const param_t scale = param_t(CONFIG_T::scale);
  for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
    NNFAB_PRAGMA(HLS UNROLL)
    const data_T x = data[i];
    const int k = table_index<CONFIG_T::table_size, CONFIG_T::table_base, CONFIG_T::step_log2>(x);
    res[i] = x >= 0 ? res_T(scale * x) : res_T(load<table_t>(table[k]));
  }
}

}  // namespace nnfab

#endif  // NNFAB_ACTIVATION_EXTRA_H
