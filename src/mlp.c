/* MLP parameter layout and orthogonal initialisation (host side). */
#include "blpo/mlp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/hd.h"
#include "blpo/rng.h"

void blpo_mlp_init_shape(blpo_mlp *m, int in_dim, const int *hidden, int num_hidden, int out_dim,
                         int activation, int extra) {
  memset(m, 0, sizeof(*m));
  m->num_layers = num_hidden + 1;
  m->dims[0] = in_dim;
  for (int i = 0; i < num_hidden; i++)
    m->dims[i + 1] = hidden[i];
  m->dims[num_hidden + 1] = out_dim;
  m->activation = activation;
  size_t off = 0;
  m->max_width = in_dim;
  for (int l = 0; l < m->num_layers; l++) {
    int din = m->dims[l], dout = m->dims[l + 1];
    m->w_off[l] = off;
    off += (size_t)din * dout;
    m->b_off[l] = off;
    off += (size_t)dout;
    m->act_floats_per_row += (size_t)dout;
    if (dout > m->max_width)
      m->max_width = dout;
  }
  m->num_mlp_params = off;
  m->num_extra = (size_t)extra;
  m->num_params = off + (size_t)extra;
}

/* Modified Gram-Schmidt on the columns of a (rows x cols) column-major matrix
 * with rows >= cols, in double, fixing the sign so Q = A R with diag(R) > 0
 * (the convention torch and flax use). Written here rather than LAPACK's
 * dgeqrf+dorgqr because init runs once on tiny matrices and the sign
 * normalisation is explicit this way. */
static void orthonormal_columns(double *a, int rows, int cols) {
  for (int j = 0; j < cols; j++) {
    double *cj = a + (size_t)j * rows;
    for (int pass = 0; pass < 2; pass++) { /* re-orthogonalise once for accuracy */
      for (int i = 0; i < j; i++) {
        const double *ci = a + (size_t)i * rows;
        double d = 0;
        for (int r = 0; r < rows; r++)
          d += ci[r] * cj[r];
        for (int r = 0; r < rows; r++)
          cj[r] -= d * ci[r];
      }
    }
    double nrm = 0;
    for (int r = 0; r < rows; r++)
      nrm += cj[r] * cj[r];
    nrm = sqrt(nrm);
    if (nrm == 0)
      nrm = 1;
    for (int r = 0; r < rows; r++)
      cj[r] /= nrm;
  }
}

void blpo_mlp_init_params(const blpo_mlp *m, float *params, double head_gain, uint64_t seed,
                          uint32_t stream_index) {
  memset(params, 0, m->num_params * sizeof(float));
  blpo_key key = blpo_make_key(seed, BLPO_STREAM_INIT, stream_index);
  uint32_t ctr = 0;
  for (int l = 0; l < m->num_layers; l++) {
    int din = m->dims[l], dout = m->dims[l + 1];
    double gain = (l == m->num_layers - 1) ? head_gain : sqrt(2.0);
    int big = din > dout ? din : dout, small = din > dout ? dout : din;
    double *a = malloc(sizeof(double) * (size_t)big * small);
    /* Gaussian draws by Box-Muller from the counter-based stream. */
    for (size_t i = 0; i < (size_t)big * small; i += 2) {
      uint32_t r[4];
      blpo_rand4(key, (uint32_t)l, ctr++, r);
      double u1 = 1.0 - blpo_u01_d(r[0], r[1]), u2 = blpo_u01_d(r[2], r[3]);
      double rad = sqrt(-2.0 * log(u1));
      a[i] = rad * cos(2 * BLPO_PI * u2);
      if (i + 1 < (size_t)big * small)
        a[i + 1] = rad * sin(2 * BLPO_PI * u2);
    }
    orthonormal_columns(a, big, small);
    /* a is (big x small) column-major with orthonormal columns. W is (dout x din):
     * if dout >= din, W = a (rows dout, cols din); else W = a^T. */
    float *w = params + m->w_off[l];
    for (int o = 0; o < dout; o++)
      for (int i = 0; i < din; i++) {
        double v = (dout >= din) ? a[(size_t)i * big + o] : a[(size_t)o * big + i];
        w[(size_t)o * din + i] = (float)(gain * v);
      }
    free(a);
  }
}
