// nnfab MultiThreshold: res[i] = levels[number of k with data[i] >= thr[row(i), k]].
//
// The thresholds are given on the input's grid (the smallest grid value not below the
// real threshold, so the comparison decides exactly as against the real one), in a type
// two integer bits wider than the input; levels are the K + 1 outputs, already cast to
// res_T. row(i) is 0 (shared thresholds), the channel i % n_chan, or the element i.

#ifndef NNFAB_THRESHOLD_H
#define NNFAB_THRESHOLD_H

#include "nnfab_common.h"

namespace nnfab {

// CONFIG_T: n_in, n_chan, n_rows (1, n_chan or n_in), n_thr, thr_t.
template <class data_T, class res_T, class CONFIG_T, class T_A, class T_B>
void multithreshold(const data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_in],
                    const T_A thr[CONFIG_T::n_rows * CONFIG_T::n_thr],
                    const T_B levels[CONFIG_T::n_thr + 1]) {
  typedef typename CONFIG_T::thr_t thr_t;
  NNFAB_PRAGMA(HLS INLINE)
  for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
    NNFAB_PRAGMA(HLS UNROLL)
    const unsigned row = CONFIG_T::n_rows == 1 ? 0
                         : (CONFIG_T::n_rows == CONFIG_T::n_in ? i : i % CONFIG_T::n_chan);
    unsigned count = 0;
    for (unsigned k = 0; k < CONFIG_T::n_thr; k++) {
      NNFAB_PRAGMA(HLS UNROLL)
      if (data[i] >= load<thr_t>(thr[row * CONFIG_T::n_thr + k])) count++;
    }
    res[i] = load<res_T>(levels[count]);
  }
}

}  // namespace nnfab

#endif
