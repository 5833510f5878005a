/* Agent i's numbers must not depend on the population it trains in: agent 2
 * of a P = 4 run (seed S) and a lone agent with seed S + 2 must report the
 * same metrics and end with bit-identical parameters, for a discrete and a
 * continuous task. */
#include <string.h>

#include "blpo/config_load.h"
#include "blpo/trainer.h"
#include "test_util.h"

static void run(const char *env, int algo) {
  blpo_config c;
  blpo_config_defaults(&c);
  snprintf(c.env_id, sizeof(c.env_id), "%s", env);
  c.algo = algo;
  c.num_envs = 8;
  c.num_steps = 16;
  c.num_minibatches = 4;
  c.total_steps = 8 * 16 * 3;
  c.seed = 11;
  blpo_backend *be = blpo_backend_cpu_create(0);
  char err[256];
  c.num_seeds = 4;
  blpo_trainer *big = blpo_trainer_create(&c, be, err, sizeof(err));
  blpo_config c1 = c;
  c1.num_seeds = 1;
  c1.seed = c.seed + 2;
  blpo_trainer *one = blpo_trainer_create(&c1, be, err, sizeof(err));
  CHECK(big && one, "trainer create: %s", err);
  if (!big || !one)
    return;
  blpo_iter_metrics mb[4], m1[1];
  for (int it = 0; it < 3; it++) {
    blpo_trainer_iterate(big, mb);
    blpo_trainer_iterate(one, m1);
    const blpo_iter_metrics *a = &mb[2], *b = &m1[0];
    CHECK(a->episodes == b->episodes, "%s it %d episodes %d vs %d", env, it, a->episodes,
          b->episodes);
    CHECK(memcmp(&a->ret_mean, &b->ret_mean, sizeof(float)) == 0, "%s it %d return %g vs %g", env,
          it, a->ret_mean, b->ret_mean);
    CHECK(a->pg_loss == b->pg_loss && a->v_loss == b->v_loss && a->entropy == b->entropy,
          "%s it %d losses differ: %g/%g %g/%g", env, it, a->pg_loss, b->pg_loss, a->v_loss,
          b->v_loss);
    CHECK(a->actor_gnorm == b->actor_gnorm && a->critic_gnorm == b->critic_gnorm,
          "%s it %d grad norms differ", env, it);
  }
  size_t na = blpo_trainer_actor_size(one), nc = blpo_trainer_critic_size(one);
  float *a1 = malloc(na * 4), *c1p = malloc(nc * 4), *a4 = malloc(na * 4), *c4 = malloc(nc * 4);
  blpo_trainer_get_params(one, 0, a1, c1p);
  blpo_trainer_get_params(big, 2, a4, c4);
  CHECK(memcmp(a1, a4, na * 4) == 0, "%s actor parameters differ", env);
  CHECK(memcmp(c1p, c4, nc * 4) == 0, "%s critic parameters differ", env);
  /* and the agents of the population differ from each other */
  blpo_trainer_get_params(big, 1, a4, c4);
  CHECK(memcmp(a1, a4, na * 4) != 0, "%s agents 1 and 2 identical", env);
  free(a1);
  free(c1p);
  free(a4);
  free(c4);
  blpo_trainer_destroy(big);
  blpo_trainer_destroy(one);
  be->destroy(be);
}

int main(void) {
  run("CartPole-v1", BLPO_ALGO_PPO);
  run("Pendulum-v1", BLPO_ALGO_PPO);
  return test_summary("test_population");
}
