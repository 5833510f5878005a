/* Multi-layer perceptron shapes and the host-side parts of the networks:
 * parameter layout, orthogonal initialisation. The passes themselves are
 * backend operations (include/blpo/backend.h).
 *
 * Parameter layout, one flat float vector per network:
 *   [W_1 (d_1 x d_0), b_1 (d_1), W_2 (d_2 x d_1), b_2, ..., W_L, b_L, extra]
 * W_l row-major, so z_l = h_{l-1} W_l^T + b_l. `extra` holds the Gaussian
 * head's state-independent log_std (action_dim floats) for continuous actors. */
#ifndef BLPO_MLP_H
#define BLPO_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define BLPO_MAX_LAYERS (BLPO_MAX_HIDDEN + 1)

typedef struct {
  int num_layers;                /* L linear layers */
  int dims[BLPO_MAX_LAYERS + 1]; /* d_0 (input) .. d_L (head) */
  int activation;                /* blpo_activation, hidden layers only */
  size_t w_off[BLPO_MAX_LAYERS]; /* offset of W_{l+1} */
  size_t b_off[BLPO_MAX_LAYERS]; /* offset of b_{l+1} */
  size_t num_mlp_params;         /* weights and biases */
  size_t num_extra;              /* trailing extra parameters (log_std) */
  size_t num_params;             /* num_mlp_params + num_extra */
  size_t act_floats_per_row;     /* sum_{l=1..L} d_l: activations kept per sample */
  int max_width;                 /* max_l d_l, l = 0..L */
} blpo_mlp;

/* Builds the shape: in -> hidden[0..nh-1] -> out, plus `extra` trailing params. */
void blpo_mlp_init_shape(blpo_mlp *m, int in_dim, const int *hidden, int num_hidden, int out_dim,
                         int activation, int extra);

/* Offset of the activations of layer l (1..L) inside one (n x act_floats_per_row)
 * workspace laid out as [h_1 (n x d_1) | h_2 | ... | y (n x d_L)]. Inline, so
 * that the CUDA plugin, which links nothing of blpo_core, uses it too. */
static inline size_t blpo_mlp_act_offset(const blpo_mlp *m, int layer, int n) {
  size_t off = 0;
  for (int l = 1; l < layer; l++)
    off += (size_t)n * m->dims[l];
  return off;
}

/* Orthogonal init (Saxe et al.; as torch.nn.init.orthogonal_ / flax's
 * orthogonal()): gain sqrt(2) on hidden layers, head_gain on the last,
 * biases and extra parameters 0. Deterministic in (seed, stream index). */
void blpo_mlp_init_params(const blpo_mlp *m, float *params, double head_gain, uint64_t seed,
                          uint32_t stream_index);

#endif
