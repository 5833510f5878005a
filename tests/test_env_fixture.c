/* test_env_fixture <env id> <fixture.csv>: replays every transition of a
 * Gymnasium fixture (tools/gen_env_fixtures.py; format in envs.md) through
 * blpo_env_transition and the obs function, and compares with tolerance.
 * Gymnasium computes in float64 from the same (float32-representable) state,
 * so the differences measured here are float32 rounding only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/env.h"
#include "envs.h"

#define MAX_COLS 64
#define MAX_REPORTED 20

/* Relative tolerance with an absolute floor of the same size near zero. */
static const double REL_TOL = 1e-4;

static double tol_of(double b) { return REL_TOL * fmax(1.0, fabs(b)); }

/* Acrobot's RK4 step of 0.2 s is ill-conditioned at high speeds (|dtheta2|
 * near its 9*pi clamp): Gymnasium's own float64 step moves by up to ~1e-2
 * when its input is perturbed by one float32 ulp, so no float32
 * implementation can stay within 1e-4 there. Rather than a blanket floor, each
 * Acrobot row measures that conditioning: the loaded state is nudged by one
 * ulp up and down per component and the spread of our outputs is taken.
 * Over seeds 0-3 (8000 rows) every error above 1e-4 was at most 1.03x that
 * spread; 4x leaves margin without excusing real errors (those are O(1)).
 * The other tasks are well-conditioned (errors ~1e-7) and keep 1e-4. */
static const double SPREAD_FACTOR = 4.0;

/* Angles (Acrobot state 0,1) compared on the circle. */
static double circ_diff(int id, int col, double a, double b) {
  double d = fabs(a - b);
  if (id == BLPO_ENV_ACROBOT && col < 2 && d > BLPO_PI)
    d = fabs(d - 2.0 * BLPO_PI);
  return d;
}

/* Per-output spread under one-ulp perturbations of the input state. */
static void ulp_spread(int id, int S, int O, const float *s0, const float *act, double *spread_s,
                       double *spread_o) {
  float base[4] = {0, 0, 0, 0}, base_obs[BLPO_ENV_MAX_OBS], r;
  int term;
  memcpy(base, s0, sizeof base);
  blpo_env_transition(id, base, act, &r, &term);
  blpo_env_obs_from_state(id, base, base_obs);
  for (int k = 0; k < S; k++)
    spread_s[k] = 0.0;
  for (int k = 0; k < O; k++)
    spread_o[k] = 0.0;
  for (int i = 0; i < S; i++)
    for (int dir = -1; dir <= 1; dir += 2) {
      float q[4], obs[BLPO_ENV_MAX_OBS];
      memcpy(q, s0, sizeof q);
      q[i] = nextafterf(q[i], dir > 0 ? INFINITY : -INFINITY);
      blpo_env_transition(id, q, act, &r, &term);
      blpo_env_obs_from_state(id, q, obs);
      for (int k = 0; k < S; k++)
        spread_s[k] = fmax(spread_s[k], circ_diff(id, k, q[k], base[k]));
      for (int k = 0; k < O; k++)
        spread_o[k] = fmax(spread_o[k], fabs((double)obs[k] - base_obs[k]));
    }
}

typedef struct {
  int id;
  const blpo_env_info *info;
  long rows, mismatches, boundary, wrapped;
  long loose; /* values that passed only thanks to the Acrobot conditioning allowance */
  double max_err_state, max_err_obs, max_err_reward; /* |a-b| / max(1,|b|) */
} checker;

static void report(checker *c, long line, const char *what, double got, double want) {
  c->mismatches++;
  if (c->mismatches <= MAX_REPORTED)
    printf("  line %ld: %s: got %.9g, want %.17g (|diff| %.3g)\n", line, what, got, want,
           fabs(got - want));
}

/* Distance between our value and Gymnasium's. Acrobot wraps its angles into
 * [-pi, pi] with strict comparisons, so a next angle within rounding of +-pi
 * may land on opposite ends in float32 vs float64: only there, and only when
 * both values sit at the seam, the comparison is modulo 2*pi. */
static double angle_aware_diff(checker *c, int col, double a, double b, double tol) {
  double d = fabs(a - b);
  if (c->id == BLPO_ENV_ACROBOT && col < 2 && fabs(fabs(b) - BLPO_PI) <= tol &&
      fabs(fabs(a) - BLPO_PI) <= tol && d > BLPO_PI) {
    c->wrapped++;
    d = fabs(d - 2.0 * BLPO_PI);
  }
  return d;
}

/* Is the reference next state within tolerance of a termination threshold?
 * Then float32 and float64 may legitimately disagree on `terminated`. */
static int near_termination_boundary(int id, const double *ns, double angle_tol) {
  switch (id) {
  case BLPO_ENV_CARTPOLE:
    return fabs(fabs(ns[0]) - 2.4) <= tol_of(2.4) ||
           fabs(fabs(ns[2]) - 12.0 * 2.0 * BLPO_PI / 360.0) <= tol_of(ns[2]);
  case BLPO_ENV_ACROBOT: {
    /* d(-cos t1 - cos(t1+t2)) is bounded by 3x the angle error. */
    double q = -cos(ns[0]) - cos(ns[1] + ns[0]);
    return fabs(q - 1.0) <= 3.0 * angle_tol;
  }
  case BLPO_ENV_MOUNTAINCAR:
    return fabs(ns[0] - 0.5) <= tol_of(0.5) || fabs(ns[1]) <= tol_of(0.0);
  case BLPO_ENV_MOUNTAINCAR_CONTINUOUS:
    return fabs(ns[0] - 0.45) <= tol_of(0.45) || fabs(ns[1]) <= tol_of(0.0);
  default:
    return 0; /* Pendulum never terminates */
  }
}

/* Reward added on the terminal step, to re-derive Gymnasium's reward for our
 * termination decision in a boundary row. */
static double terminal_bonus(int id) {
  switch (id) {
  case BLPO_ENV_ACROBOT:
    return 1.0; /* -1 becomes 0 */
  case BLPO_ENV_MOUNTAINCAR_CONTINUOUS:
    return 100.0;
  default:
    return 0.0;
  }
}

static int check_header(const checker *c, char *line) {
  const blpo_env_info *in = c->info;
  char expect[2048] = "", name[64];
  const int groups[4] = {in->state_dim, in->action_dim, in->state_dim, in->obs_dim};
  const char *prefix[4] = {"state", "action", "next_state", "next_obs"};
  for (int g = 0; g < 4; g++)
    for (int k = 0; k < groups[g]; k++) {
      snprintf(name, sizeof name, "%s_%d,", prefix[g], k);
      strcat(expect, name);
    }
  strcat(expect, "reward,terminated");
  line[strcspn(line, "\r\n")] = '\0';
  if (strcmp(line, expect) != 0) {
    fprintf(stderr, "header mismatch for %s:\n  got:  %s\n  want: %s\n", in->name, line, expect);
    return 0;
  }
  return 1;
}

static void check_row(checker *c, long line_no, const double *v) {
  const blpo_env_info *in = c->info;
  const int S = in->state_dim, A = in->action_dim, O = in->obs_dim;
  const double *state = v, *action = v + S, *next_state = v + S + A;
  const double *next_obs = v + 2 * S + A;
  const double want_reward = v[2 * S + A + O];
  const int want_term = v[2 * S + A + O + 1] != 0.0;
  float s[4] = {0, 0, 0, 0}, act[BLPO_ENV_MAX_ACT] = {0}, obs[BLPO_ENV_MAX_OBS], reward;
  int term;
  char what[64];

  for (int k = 0; k < S; k++)
    s[k] = (float)state[k];
  for (int k = 0; k < A; k++)
    act[k] = (float)action[k];
  blpo_env_transition(c->id, s, act, &reward, &term);
  blpo_env_obs_from_state(c->id, s, obs);

  double tol_s[4], tol_o[BLPO_ENV_MAX_OBS], spread_s[4] = {0, 0, 0, 0};
  double spread_o[BLPO_ENV_MAX_OBS] = {0, 0, 0, 0, 0, 0};
  if (c->id == BLPO_ENV_ACROBOT) {
    float s0[4] = {0, 0, 0, 0};
    for (int k = 0; k < S; k++)
      s0[k] = (float)state[k];
    ulp_spread(c->id, S, O, s0, act, spread_s, spread_o);
  }
  for (int k = 0; k < S; k++)
    tol_s[k] = fmax(tol_of(next_state[k]), SPREAD_FACTOR * spread_s[k]);
  for (int k = 0; k < O; k++)
    tol_o[k] = fmax(tol_of(next_obs[k]), SPREAD_FACTOR * spread_o[k]);

  for (int k = 0; k < S; k++) {
    double d = angle_aware_diff(c, k, s[k], next_state[k], tol_s[k]);
    c->max_err_state = fmax(c->max_err_state, d / fmax(1.0, fabs(next_state[k])));
    if (d > tol_of(next_state[k]) && d <= tol_s[k])
      c->loose++;
    if (!(d <= tol_s[k])) {
      snprintf(what, sizeof what, "next_state_%d", k);
      report(c, line_no, what, s[k], next_state[k]);
    }
  }
  for (int k = 0; k < O; k++) {
    double d = fabs(obs[k] - next_obs[k]);
    c->max_err_obs = fmax(c->max_err_obs, d / fmax(1.0, fabs(next_obs[k])));
    if (d > tol_of(next_obs[k]) && d <= tol_o[k])
      c->loose++;
    if (!(d <= tol_o[k])) {
      snprintf(what, sizeof what, "next_obs_%d", k);
      report(c, line_no, what, obs[k], next_obs[k]);
    }
  }
  double expect_reward = want_reward;
  if (term != want_term) {
    if (near_termination_boundary(c->id, next_state, fmax(tol_s[0], tol_s[1]))) {
      c->boundary++;
      printf("  line %ld: boundary: terminated %d vs Gymnasium %d within rounding of the "
             "threshold\n",
             line_no, term, want_term);
      expect_reward += terminal_bonus(c->id) * (double)(term - want_term);
    } else {
      report(c, line_no, "terminated", term, want_term);
    }
  }
  double dr = fabs(reward - expect_reward);
  c->max_err_reward = fmax(c->max_err_reward, dr / fmax(1.0, fabs(expect_reward)));
  if (!(dr <= tol_of(expect_reward)))
    report(c, line_no, "reward", reward, expect_reward);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s <env id> <fixture.csv>\n", argv[0]);
    return 2;
  }
  checker c;
  memset(&c, 0, sizeof c);
  c.id = blpo_env_from_name(argv[1]);
  if (c.id < 0) {
    fprintf(stderr, "unknown env id '%s'\n", argv[1]);
    return 2;
  }
  c.info = blpo_env_get_info((blpo_env_id)c.id);
  FILE *f = fopen(argv[2], "r");
  if (!f) {
    perror(argv[2]);
    return 2;
  }
  static char line[8192];
  if (!fgets(line, sizeof line, f) || !check_header(&c, line)) {
    fclose(f);
    return 1;
  }
  const int ncols = 2 * c.info->state_dim + c.info->action_dim + c.info->obs_dim + 2;
  long line_no = 1;
  int status = 0;
  while (fgets(line, sizeof line, f)) {
    line_no++;
    if (line[strspn(line, " \t\r\n")] == '\0')
      continue;
    double v[MAX_COLS];
    int n = 0, ok = 1;
    char *p = line, *end;
    for (;;) {
      if (n == MAX_COLS) {
        ok = 0;
        break;
      }
      v[n++] = strtod(p, &end);
      if (end == p) {
        ok = 0;
        break;
      }
      if (*end != ',')
        break;
      p = end + 1;
    }
    ok = ok && n == ncols && end[strspn(end, " \t\r\n")] == '\0';
    if (!ok) {
      fprintf(stderr, "%s:%ld: expected %d numeric columns\n", argv[2], line_no, ncols);
      status = 1;
      break;
    }
    c.rows++;
    check_row(&c, line_no, v);
  }
  fclose(f);
  if (c.rows == 0) {
    fprintf(stderr, "%s: no rows\n", argv[2]);
    status = 1;
  }
  printf("%s: %ld rows checked, %ld mismatches (%ld boundary, %ld wrapped angles, %ld values "
         "passed on the Acrobot conditioning allowance)\n",
         c.info->name, c.rows, c.mismatches, c.boundary, c.wrapped, c.loose);
  printf("  max error / max(1,|ref|): state %.3g, obs %.3g, reward %.3g (tolerance %.0e)\n",
         c.max_err_state, c.max_err_obs, c.max_err_reward, REL_TOL);
  return (status || c.mismatches) ? 1 : 0;
}
