/* The CUDA backend's one-kernel Nystrom solve (backend.h nystrom_solve,
 * kernels/nystrom_cuda.cu) as a block program for host and device, in the
 * manner of ppo_blocks.h: a function of (agent, thread, phase) whose phases
 * the kernel runs in order with a __syncthreads() after each, so that the
 * CPU test (tests/test_nystrom_blocks.c) can run it thread by thread.
 *
 * Why not cuSOLVER here: the library path (kernels/backend_cuda_second_order.cu)
 * is a core kernel, syevjBatched, a select kernel, four batched GEMMs, a
 * batched LU and triangular solve and a final kernel: a dozen launches and
 * more inside the library, for a k x k problem (k = 5 by default). On the
 * H100 (2026-11-24, e53acd4) the core solve took 0.23 ms per minibatch at
 * P = 1 and 2.6 ms at P = 16, which by itself is most of the paper
 * experiment's 41.6 s. One block per agent does the same in one launch;
 * the library path stays for k > BLPO_NYS_KMAX and for run.fused_update
 * off.
 *
 * The math is the CPU reference's (src/backend_cpu_blpo.c nystrom_agent):
 * core M = C[:, idx] symmetrised; eigenpairs (U, lambda); keep |lambda| >
 * tol max|lambda|; S = rho (Lambda_r + ridge I) + B B^T with B = U_r^T C;
 * x = (v - B^T S^-1 B v) / rho; x = v / rho and one CORE_FAULT where nothing
 * is kept or S is singular. It is reassociated so that B is never stored:
 * B B^T = U_r^T (C C^T) U_r, B v = U_r^T (C v) and B^T y = C^T (U_r y), so C
 * is read twice (the Gram sums, the final x) and everything else is k x k
 * in shared memory, in double:
 *   init    M (float symmetrisation, as the CPU), V = I;
 *   gram    C C^T and C v as fixed-order partial sums over chunks of the
 *           parameters, then the chunks summed in order;
 *   jacobi  cyclic Jacobi in the round-robin order: each round rotates
 *           kp/2 disjoint (p, q) pairs at once (angles; rows of M and
 *           columns of V; columns of M), kp - 1 rounds a sweep, then a
 *           convergence check; at most BLPO_NYS_SWEEPS sweeps (not
 *           converged: an eigensolver failure, as LAPACK's info != 0);
 *   select  the cut-off and the rank / eigenvalue stats, as the CPU;
 *   solve   S and B v from the Gram sums, Gaussian elimination with partial
 *           pivoting (an exactly zero pivot is singular, as sgesv; so is a
 *           non-finite one, where the library paths would return NaN x:
 *           here a NaN or Inf in C falls back to v / rho with a fault),
 *           back substitution, z = U_r y;
 *   final   x = (v - C^T z) / rho, or the fallback.
 * Every sum has a fixed order, so a run is reproducible bit for bit. S is
 * rounded differently from the CPU's (double from C C^T, against float from
 * float B), so a nearly singular S may fault on one side only; an exactly
 * singular one (tests/test_nystrom_blocks.c) faults on both. */
#ifndef BLPO_NYSTROM_BLOCKS_H
#define BLPO_NYSTROM_BLOCKS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "hd.h"

#define BLPO_NYS_THREADS 256   /* threads of the one block per agent */
#define BLPO_NYS_KMAX 32       /* largest rank the kernel takes */
#define BLPO_NYS_PARTIALS 2048 /* Gram partial sums held at once (doubles) */
#define BLPO_NYS_SWEEPS 30     /* Jacobi sweeps at most (converges in ~6-10) */
/* off(M)^2 <= BLPO_NYS_OFF_TOL * sum diag^2 ends the sweeps: 1e-12 relative,
 * far below the float inputs' rounding, and above double's floor at k = 32 */
#define BLPO_NYS_OFF_TOL 1e-24

typedef struct {
  int k, kp;     /* rank; k rounded up to even (index k is a dummy when odd) */
  size_t np;     /* critic parameters */
  int sums;      /* Gram sums: (a, b), a <= b < k, of C C^T; then (a, k): C v */
  int chunks;    /* parameter chunks per sum */
  size_t chunk;  /* parameters per chunk */
  int rounds;    /* Jacobi rounds per sweep: kp - 1 */
  int sweep_len; /* phases per sweep: 3 rounds' phases + the check */
  int ph_jacobi; /* first Jacobi phase */
  int ph_select; /* first phase after the Jacobi sweeps */
  int phases;    /* all of them */
} blpo_nys_layout;

typedef struct {
  blpo_nys_layout lay;
  const float *rows;  /* (P, k, np) C = H[idx, :] */
  const int32_t *idx; /* (P, k) */
  const float *v;     /* (P, np) */
  float *x;           /* (P, np) */
  float *stats;       /* (P, BLPO_STAT_COUNT) */
  float rho, ridge, tol;
} blpo_nys_args;

#define BLPO_NYS_K BLPO_NYS_KMAX /* row pitch of the k x k arrays */
#define BLPO_NYS_GK (BLPO_NYS_KMAX + 1)

/* The block's shared memory (about 43 KB, under the 48 KB static limit). */
typedef struct {
  double A[BLPO_NYS_K * BLPO_NYS_K];   /* M, diagonalised in place; then S (r x r) */
  double V[BLPO_NYS_K * BLPO_NYS_K];   /* eigenvectors: column a = eigenvector a */
  double G[BLPO_NYS_GK * BLPO_NYS_GK]; /* C C^T (k x k), column k: C v */
  double part[BLPO_NYS_PARTIALS];      /* Gram partials (sums x chunks); then T = G U_r */
  double cs[BLPO_NYS_KMAX / 2], sn[BLPO_NYS_KMAX / 2]; /* this round's rotations */
  double lam[BLPO_NYS_KMAX]; /* kept eigenvalues (rounded to float, as the CPU's) */
  double y[BLPO_NYS_KMAX];   /* B v, then S^-1 B v */
  double z[BLPO_NYS_KMAX];   /* U_r S^-1 B v */
  int keep[BLPO_NYS_KMAX];   /* kept eigenpairs, in index order */
  int r;                     /* kept rank */
  int stop;                  /* the last check's verdict: converged */
  int eig_fail;              /* the sweeps ran out */
  int fault;                 /* fall back to x = v / rho */
} blpo_nys_shared;

/* 0 where the kernel cannot take this solve (then the library path). */
static inline int blpo_nys_layout_init(blpo_nys_layout *y, int k, size_t np) {
  memset(y, 0, sizeof(*y));
  if (k < 1 || k > BLPO_NYS_KMAX || np < (size_t)k)
    return 0;
  y->k = k, y->kp = k + (k & 1), y->np = np;
  y->sums = k * (k + 1) / 2 + k;
  int ch = BLPO_NYS_PARTIALS / y->sums;
  size_t most = (np + 31) / 32; /* about 32 parameters a chunk at least */
  if ((size_t)ch > most)
    ch = (int)most;
  y->chunks = ch < 1 ? 1 : ch;
  y->chunk = (np + (size_t)y->chunks - 1) / (size_t)y->chunks;
  y->rounds = y->kp - 1;
  y->sweep_len = 3 * y->rounds + 1;
  y->ph_jacobi = 3;
  y->ph_select = y->ph_jacobi + BLPO_NYS_SWEEPS * y->sweep_len;
  y->phases = y->ph_select + 3 + 2 * k + 3;
  return 1;
}

/* The phase after `ph`: the sweeps end at the first converged check. The
 * verdict is read right after the check's barrier and written again only
 * by the next sweep's check, so every thread reads the same one. */
BLPO_HD int blpo_nys_next(const blpo_nys_layout *y, const blpo_nys_shared *sh, int ph) {
  if (ph >= y->ph_jacobi && ph < y->ph_select &&
      (ph - y->ph_jacobi) % y->sweep_len == y->sweep_len - 1 && sh->stop)
    return y->ph_select;
  return ph + 1;
}

/* Gram sum s -> (a, b): the upper triangle row by row, then (a, k). */
BLPO_HD void blpo_nys_sum_pair(int k, int s, int *a, int *b) {
  int tri = k * (k + 1) / 2;
  if (s >= tri) {
    *a = s - tri, *b = k;
    return;
  }
  int r = 0;
  while (s >= k - r)
    s -= k - r, r++;
  *a = r, *b = r + s;
}

/* Pair j of round t in the circle order: index 0 fixed, the rest rotate;
 * p < q. Over kp - 1 rounds every pair of indices meets once. */
BLPO_HD void blpo_nys_round_pair(int kp, int t, int j, int *p, int *q) {
  int n1 = kp - 1;
  int u = j == 0 ? 0 : 1 + (j - 1 + t) % n1;
  int w = 1 + (kp - 2 - j + t) % n1; /* position kp - 1 - j >= 1 */
  *p = u < w ? u : w;
  *q = u < w ? w : u;
}

BLPO_HD void blpo_nys_init(const blpo_nys_args *a, int p, int tid, blpo_nys_shared *sh) {
  const blpo_nys_layout *y = &a->lay;
  const int k = y->k;
  const float *C = a->rows + (size_t)p * k * y->np;
  const int32_t *ix = a->idx + (size_t)p * k;
  for (int e = tid; e < k * k; e += BLPO_NYS_THREADS) {
    int r = e / k, c = e % k;
    /* float sum, as the CPU's core */
    float m = 0.5f * (C[(size_t)r * y->np + ix[c]] + C[(size_t)c * y->np + ix[r]]);
    sh->A[r * BLPO_NYS_K + c] = (double)m;
    sh->V[r * BLPO_NYS_K + c] = r == c ? 1.0 : 0.0;
  }
  if (tid == 0)
    sh->stop = 0, sh->eig_fail = 0, sh->fault = 0, sh->r = 0;
}

BLPO_HD void blpo_nys_gram_parts(const blpo_nys_args *a, int p, int tid, blpo_nys_shared *sh) {
  const blpo_nys_layout *y = &a->lay;
  const int k = y->k;
  const size_t np = y->np;
  const float *C = a->rows + (size_t)p * k * np;
  const float *v = a->v + (size_t)p * np;
  for (int e = tid; e < y->sums * y->chunks; e += BLPO_NYS_THREADS) {
    int s = e % y->sums, c = e / y->sums, r, q;
    blpo_nys_sum_pair(k, s, &r, &q);
    const float *u = C + (size_t)r * np, *w = q == k ? v : C + (size_t)q * np;
    size_t i0 = (size_t)c * y->chunk, i1 = i0 + y->chunk < np ? i0 + y->chunk : np;
    double acc = 0;
    for (size_t i = i0; i < i1; i++)
      acc += (double)u[i] * (double)w[i];
    sh->part[s * y->chunks + c] = acc;
  }
}

BLPO_HD void blpo_nys_gram_sum(const blpo_nys_layout *y, int tid, blpo_nys_shared *sh) {
  for (int s = tid; s < y->sums; s += BLPO_NYS_THREADS) {
    int r, q;
    blpo_nys_sum_pair(y->k, s, &r, &q);
    double acc = 0;
    for (int c = 0; c < y->chunks; c++)
      acc += sh->part[s * y->chunks + c];
    sh->G[r * BLPO_NYS_GK + q] = acc;
    if (q < y->k)
      sh->G[q * BLPO_NYS_GK + r] = acc;
  }
}

/* The rotation zeroing M[p][q] (Numerical Recipes' jacobi): M <- J^T M J
 * with J[p][p] = J[q][q] = c, J[p][q] = s, J[q][p] = -s. */
BLPO_HD void blpo_nys_angle(const double *A, int p, int q, double *c, double *s) {
  double apq = A[p * BLPO_NYS_K + q];
  if (apq == 0.0) {
    *c = 1.0, *s = 0.0;
    return;
  }
  double theta = (A[q * BLPO_NYS_K + q] - A[p * BLPO_NYS_K + p]) / (2.0 * apq);
  double at = fabs(theta);
  double t = at > 1e100 ? 0.5 / at : 1.0 / (at + sqrt(theta * theta + 1.0));
  if (theta < 0)
    t = -t;
  *c = 1.0 / sqrt(t * t + 1.0);
  *s = t * *c;
}

/* Jacobi phase j of a sweep: 3 per round (angles; rows of M and columns of
 * V; columns of M), then the convergence check. */
BLPO_HD void blpo_nys_jacobi(const blpo_nys_layout *y, int tid, int j, blpo_nys_shared *sh) {
  const int k = y->k, kp = y->kp, half = kp / 2;
  if (j == y->sweep_len - 1) {
    if (tid == 0) {
      double off = 0, dia = 0;
      for (int r = 0; r < k; r++)
        for (int c = 0; c < k; c++) {
          double m = sh->A[r * BLPO_NYS_K + c];
          if (r == c)
            dia += m * m;
          else
            off += m * m;
        }
      /* NaN in M never converges, so it ends as an eigensolver failure */
      sh->stop = off <= BLPO_NYS_OFF_TOL * dia;
      sh->eig_fail = !sh->stop;
    }
    return;
  }
  const int t = j / 3, part = j % 3;
  if (part == 0) {
    for (int e = tid; e < half; e += BLPO_NYS_THREADS) {
      int p, q;
      blpo_nys_round_pair(kp, t, e, &p, &q);
      if (q >= k)
        sh->cs[e] = 1.0, sh->sn[e] = 0.0;
      else
        blpo_nys_angle(sh->A, p, q, &sh->cs[e], &sh->sn[e]);
    }
    return;
  }
  for (int e = tid; e < half * k; e += BLPO_NYS_THREADS) {
    int pr = e / k, l = e % k, p, q;
    blpo_nys_round_pair(kp, t, pr, &p, &q);
    double c = sh->cs[pr], s = sh->sn[pr];
    if (q >= k || s == 0.0)
      continue;
    if (part == 1) { /* rows p, q of M; columns p, q of V */
      double *mp = sh->A + p * BLPO_NYS_K + l, *mq = sh->A + q * BLPO_NYS_K + l;
      double x = *mp, w = *mq;
      *mp = c * x - s * w;
      *mq = s * x + c * w;
      double *vp = sh->V + l * BLPO_NYS_K + p, *vq = sh->V + l * BLPO_NYS_K + q;
      x = *vp, w = *vq;
      *vp = c * x - s * w;
      *vq = s * x + c * w;
    } else { /* columns p, q of M; the rotated pair's entries exactly 0 */
      double *mp = sh->A + l * BLPO_NYS_K + p, *mq = sh->A + l * BLPO_NYS_K + q;
      double x = *mp, w = *mq;
      *mp = c * x - s * w;
      *mq = s * x + c * w;
      if (l == p)
        *mq = 0.0;
      if (l == q)
        *mp = 0.0;
    }
  }
}

/* select: the CPU's cut-off on the eigenvalues rounded to float. */
BLPO_HD void blpo_nys_select(const blpo_nys_args *a, int p, int tid, blpo_nys_shared *sh) {
  if (tid != 0)
    return;
  const int k = a->lay.k;
  float *st = a->stats + (size_t)p * BLPO_STAT_COUNT;
  float lmax = 0.0f;
  for (int e = 0; e < k; e++)
    lmax = fmaxf(lmax, fabsf((float)sh->A[e * BLPO_NYS_K + e]));
  int r = 0;
  float lmin_kept = INFINITY;
  for (int e = 0; e < k && !sh->eig_fail; e++) {
    float l = (float)sh->A[e * BLPO_NYS_K + e];
    if (fabsf(l) > a->tol * lmax && lmax > 0.0f) {
      sh->lam[r] = l;
      sh->keep[r++] = e;
      lmin_kept = fminf(lmin_kept, fabsf(l));
    }
  }
  sh->r = r;
  sh->fault = r == 0;
  st[BLPO_STAT_RANK] += (float)r;
  st[BLPO_STAT_EIG_MAX] += lmax;
  st[BLPO_STAT_EIG_MIN] += r ? lmin_kept : 0.0f;
}

/* T = G U_r (k x r, in part) and y = U_r^T C v. */
BLPO_HD void blpo_nys_project(const blpo_nys_layout *y, int tid, blpo_nys_shared *sh) {
  const int k = y->k, r = sh->r;
  for (int e = tid; e < k * r + r; e += BLPO_NYS_THREADS) {
    if (e < k * r) {
      int q = e / r, b = e % r, kb = sh->keep[b];
      double acc = 0;
      for (int w = 0; w < k; w++)
        acc += sh->G[q * BLPO_NYS_GK + w] * sh->V[w * BLPO_NYS_K + kb];
      sh->part[q * r + b] = acc;
    } else {
      int ka = sh->keep[e - k * r];
      double acc = 0;
      for (int w = 0; w < k; w++)
        acc += sh->V[w * BLPO_NYS_K + ka] * sh->G[w * BLPO_NYS_GK + k];
      sh->y[e - k * r] = acc;
    }
  }
}

/* S = U_r^T T + rho (Lambda_r + ridge I), over M's storage. */
BLPO_HD void blpo_nys_system(const blpo_nys_args *a, int tid, blpo_nys_shared *sh) {
  const int k = a->lay.k, r = sh->r;
  for (int e = tid; e < r * r; e += BLPO_NYS_THREADS) {
    int i = e / r, b = e % r, ki = sh->keep[i];
    double acc = 0;
    for (int w = 0; w < k; w++)
      acc += sh->V[w * BLPO_NYS_K + ki] * sh->part[w * r + b];
    if (i == b)
      acc += (double)(a->rho * ((float)sh->lam[i] + a->ridge));
    sh->A[i * BLPO_NYS_K + b] = acc;
  }
}

/* Elimination step j, two phases: the pivot (row swap of S and y), then
 * rows below it (their column j is left as it is: only U is needed). */
BLPO_HD void blpo_nys_lu(int tid, int j, int part, blpo_nys_shared *sh) {
  const int r = sh->r;
  if (part == 0 && tid != 0) /* thread 0 alone reads and writes fault here */
    return;
  if (j >= r || sh->fault)
    return;
  double *S = sh->A;
  if (part == 0) {
    int piv = j;
    for (int i = j + 1; i < r; i++)
      if (fabs(S[i * BLPO_NYS_K + j]) > fabs(S[piv * BLPO_NYS_K + j]))
        piv = i;
    double d = S[piv * BLPO_NYS_K + j];
    if (d == 0.0 || !isfinite(d)) {
      sh->fault = 1;
      return;
    }
    if (piv != j) {
      for (int l = 0; l < r; l++) {
        double w = S[j * BLPO_NYS_K + l];
        S[j * BLPO_NYS_K + l] = S[piv * BLPO_NYS_K + l];
        S[piv * BLPO_NYS_K + l] = w;
      }
      double w = sh->y[j];
      sh->y[j] = sh->y[piv];
      sh->y[piv] = w;
    }
    return;
  }
  const int cols = r - j; /* columns j+1 .. r-1, then y */
  for (int e = tid; e < (r - 1 - j) * cols; e += BLPO_NYS_THREADS) {
    int i = j + 1 + e / cols, l = j + 1 + e % cols;
    double f = S[i * BLPO_NYS_K + j] / S[j * BLPO_NYS_K + j];
    if (l < r)
      S[i * BLPO_NYS_K + l] -= f * S[j * BLPO_NYS_K + l];
    else
      sh->y[i] -= f * sh->y[j];
  }
}

/* Back substitution (one thread: r <= 32), then z = U_r y. */
BLPO_HD void blpo_nys_back(int tid, blpo_nys_shared *sh) {
  if (tid != 0 || sh->fault)
    return;
  const double *S = sh->A;
  for (int i = sh->r - 1; i >= 0; i--) {
    double acc = sh->y[i];
    for (int l = i + 1; l < sh->r; l++)
      acc -= S[i * BLPO_NYS_K + l] * sh->y[l];
    sh->y[i] = acc / S[i * BLPO_NYS_K + i];
  }
}

BLPO_HD void blpo_nys_lift(const blpo_nys_layout *y, int tid, blpo_nys_shared *sh) {
  for (int q = tid; q < y->k; q += BLPO_NYS_THREADS) {
    double acc = 0;
    for (int b = 0; b < sh->r && !sh->fault; b++)
      acc += sh->V[q * BLPO_NYS_K + sh->keep[b]] * sh->y[b];
    sh->z[q] = acc;
  }
}

BLPO_HD void blpo_nys_final(const blpo_nys_args *a, int p, int tid, blpo_nys_shared *sh) {
  const blpo_nys_layout *y = &a->lay;
  const int k = y->k;
  const size_t np = y->np;
  const float *C = a->rows + (size_t)p * k * np;
  const float *v = a->v + (size_t)p * np;
  float *x = a->x + (size_t)p * np;
  const float inv_rho = 1.0f / a->rho;
  const int fault = sh->fault;
  for (size_t i = (size_t)tid; i < np; i += BLPO_NYS_THREADS) {
    if (fault) {
      x[i] = v[i] * inv_rho;
      continue;
    }
    double acc = v[i];
    for (int q = 0; q < k; q++)
      acc -= sh->z[q] * (double)C[(size_t)q * np + i];
    x[i] = (float)acc * inv_rho;
  }
  if (tid == 0 && fault)
    a->stats[(size_t)p * BLPO_STAT_COUNT + BLPO_STAT_CORE_FAULTS] += 1.0f;
}

/* Phase ph of agent p's solve, thread tid. */
BLPO_HD void blpo_nys_block(const blpo_nys_args *a, int p, int tid, int ph, blpo_nys_shared *sh) {
  const blpo_nys_layout *y = &a->lay;
  if (ph == 0)
    blpo_nys_init(a, p, tid, sh);
  else if (ph == 1)
    blpo_nys_gram_parts(a, p, tid, sh);
  else if (ph == 2)
    blpo_nys_gram_sum(y, tid, sh);
  else if (ph < y->ph_select)
    blpo_nys_jacobi(y, tid, (ph - y->ph_jacobi) % y->sweep_len, sh);
  else {
    int q = ph - y->ph_select;
    if (q == 0)
      blpo_nys_select(a, p, tid, sh);
    else if (q == 1)
      blpo_nys_project(y, tid, sh);
    else if (q == 2)
      blpo_nys_system(a, tid, sh);
    else if (q < 3 + 2 * y->k)
      blpo_nys_lu(tid, (q - 3) / 2, (q - 3) % 2, sh);
    else if (q == 3 + 2 * y->k)
      blpo_nys_back(tid, sh);
    else if (q == 4 + 2 * y->k)
      blpo_nys_lift(y, tid, sh);
    else
      blpo_nys_final(a, p, tid, sh);
  }
}

#endif
