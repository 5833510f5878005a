/* The config keys. Defaults are the reference implementation's values
 * (PureJaxRL / CleanRL ppo.py and the BLPO paper's scripts; see
 * /work/shared/spec/blpo.md). Sections must stay contiguous and a section's
 * subsections must follow its own keys: the writer emits them in this order. */
#include <stddef.h>

#include "blpo/config_load.h"

#define FIELD(f) offsetof(blpo_config, f), sizeof(((blpo_config *)0)->f)

static const char *const algo_names[] = {"ppo", "nested", "blpo", NULL};
static const char *const hg_names[] = {"nystrom", "cg", "exact", NULL};
static const char *const act_names[] = {"tanh", "relu", NULL};
static const char *const precision_names[] = {"fp32", "tf32", NULL};

/* 2^53: every integer up to here is exact in the double bounds. */
#define I53 9007199254740992.0

const blpo_config_key blpo_config_keys[] = {
    /* env */
    {"env.id", BLPO_KEY_STRING, FIELD(env_id), 0, 1, 0, 0, 0, 0, NULL, "CartPole-v1",
     "Gymnasium task id: CartPole-v1, Acrobot-v1, MountainCar-v0, Pendulum-v1 or "
     "MountainCarContinuous-v0."},
    {"env.num_envs", BLPO_KEY_INT, FIELD(num_envs), 0, 1, 16777216, 0, 0, 0, NULL, "4",
     "Parallel environments per agent (N)."},
    {"env.num_steps", BLPO_KEY_INT, FIELD(num_steps), 0, 1, 1000000, 0, 0, 0, NULL, "128",
     "Rollout length per iteration (T); one iteration is N*T env steps per agent."},
    {"env.normalize_obs", BLPO_KEY_TRISTATE, FIELD(normalize_obs), 0, 0, 0, 0, 0, 0, NULL, "auto",
     "Running observation normalisation; auto = on for continuous-action tasks."},
    {"env.normalize_reward", BLPO_KEY_TRISTATE, FIELD(normalize_reward), 0, 0, 0, 0, 0, 0, NULL,
     "auto",
     "Scale rewards by the running std of the discounted return; auto = on for "
     "continuous-action tasks."},
    {"env.bootstrap_truncated", BLPO_KEY_BOOL, FIELD(bootstrap_truncated), 0, 0, 0, 0, 0, 0, NULL,
     "false", "Bootstrap V(s) at time-limit truncations (the reference treats them as terminal)."},

    /* run */
    {"run.total_steps", BLPO_KEY_INT64, FIELD(total_steps), 0, 1, 1e15, 0, 0, 0, NULL, "500000",
     "Env steps per agent; the run does floor(total_steps / (N*T)) iterations."},
    {"run.num_seeds", BLPO_KEY_INT, FIELD(num_seeds), 0, 1, 4096, 0, 0, 0, NULL, "1",
     "Agents trained side by side (P), agent i with seed run.seed + i."},
    {"run.seed", BLPO_KEY_INT64, FIELD(seed), 0, 0, I53, 0, 0, 0, NULL, "0",
     "Base seed of the run."},
    {"run.out_dir", BLPO_KEY_STRING, FIELD(out_dir), 0, 1, 0, 0, 0, 0, NULL, "runs",
     "Parent directory of the run directories (--out names one exactly instead)."},
    {"run.name", BLPO_KEY_STRING, FIELD(name), 0, 0, 0, 0, 0, 0, NULL, "",
     "Run directory name prefix; empty = the config file's stem."},
    {"run.log_every", BLPO_KEY_INT, FIELD(log_every), 0, 1, 1e9, 0, 0, 0, NULL, "10",
     "Iterations between progress lines when stdout is not a terminal."},
    {"run.threads", BLPO_KEY_INT, FIELD(threads), 0, 0, 4096, 0, 0, 0, NULL, "0",
     "CPU backend threads; 0 = all cores."},
    {"run.checkpoint_every", BLPO_KEY_INT, FIELD(checkpoint_every), 0, 0, 1e9, 0, 0, 0, NULL, "50",
     "Iterations between checkpoints in the run directory (one is always written at the end); "
     "0 = only at the end."},
    {"run.debug_nan_iteration", BLPO_KEY_INT, FIELD(debug_nan_iteration), 0, 0, 1e9, 0, 0, 0, NULL,
     "0",
     "Testing hook: after this iteration, poison the critic with NaN so the next one faults; "
     "0 = off."},
    {"run.cuda_graph", BLPO_KEY_BOOL, FIELD(cuda_graph), 0, 0, 0, 0, 0, 0, NULL, "true",
     "CUDA backend: record the second iteration as a CUDA graph and replay it for every later "
     "one (one launch per iteration instead of thousands; same results). Off in profile and "
     "check mode; if the capture fails the run says why and launches kernel by kernel. No "
     "effect on the CPU."},
    {"run.precision", BLPO_KEY_ENUM, FIELD(precision), 0, 0, 0, 0, 0, 0, precision_names, "fp32",
     "GEMM precision on the CUDA backend: fp32, or tf32 (tensor cores, 10-bit mantissa "
     "inputs, fp32 accumulation): cuBLAS's GEMMs, and in the fused update kernels the hidden "
     "layers whose widths are multiples of 16 (compute capability 8.0+). The CPU always "
     "computes in fp32."},
    {"run.pdl", BLPO_KEY_BOOL, FIELD(pdl), 0, 0, 0, 0, 0, 0, NULL, "false",
     "CUDA backend, compute capability 9.0+ (Hopper): programmatic dependent launch, each "
     "kernel scheduled while the one before it is still running and waiting at its start for "
     "that one's results, so that launch latency overlaps work (same results). Off by default "
     "until measured (tools/bench_suite.sh has the row); where the device cannot, the run says "
     "so and launches as usual. No effect on the CPU."},
    {"run.grid_sync", BLPO_KEY_BOOL, FIELD(grid_sync), 0, 0, 0, 0, 0, 0, NULL, "false",
     "CUDA backend, with the fused update: each PPO minibatch update, and the nested "
     "critic's algo.nested_updates steps (nested, blpo), as one cooperative kernel whose "
     "blocks synchronise the grid between the gradient, its norms and the Adam step, instead "
     "of three kernels per minibatch and two per nested step (same results, bit for bit). Off "
     "by default until measured (tools/bench_suite.sh has the row); where the device cannot "
     "launch cooperatively the run says so and launches as usual, and a grid too large to be "
     "resident at once (many agents) takes the separate kernels. No effect on the CPU."},
    {"run.fused_rollout", BLPO_KEY_TRISTATE, FIELD(fused_rollout), 0, 0, 0, 0, 0, 0, NULL, "auto",
     "One kernel per rollout step (actor and critic forward, sampling, env step) instead of "
     "separate GEMM, sampling and env launches; auto = when both networks fit (hidden widths "
     "<= 128, parameters in shared memory). Both backends."},
    {"run.fused_update", BLPO_KEY_TRISTATE, FIELD(fused_update), 0, 0, 0, 0, 0, 0, NULL, "auto",
     "PPO: each minibatch update (gathers, both networks' forward and backward passes, loss, "
     "norm clip, Adam) as one backend op instead of 15; nested/blpo: each nested critic step "
     "(forward, value loss, backward, Adam) as one op instead of 4; blpo: the Nystrom solve "
     "as one kernel instead of the cuSOLVER/cuBLAS path (rank <= 32), the Hessian rows as two "
     "kernels and the critic tangents as one instead of the cuBLAS passes. auto = where the "
     "backend has it: the CPU's PPO op (one parallel region, each row chunk's passes on one "
     "core, the same bits); CUDA's (a few kernels with the rows in shared memory, the "
     "same results up to float rounding, for networks whose weights fit in shared memory)."},
    {"run.debug_emulate_replay", BLPO_KEY_BOOL, FIELD(debug_emulate_replay), 0, 0, 0, 0, 0, 0, NULL,
     "false",
     "Testing hook: run every iteration after the first with the trainer's host state frozen "
     "as a graph replay would (any backend)."},

    /* algo */
    {"algo.name", BLPO_KEY_ENUM, FIELD(algo), 0, 0, 0, 0, 0, 0, algo_names, "ppo",
     "ppo (CleanRL baseline), nested (nested critic, plain actor gradient) or blpo "
     "(nested critic plus hypergradient)."},
    {"algo.gamma", BLPO_KEY_FLOAT, FIELD(gamma), 0, 0, 1, 0, 0, 0, NULL, "0.99",
     "Discount factor."},
    {"algo.gae_lambda", BLPO_KEY_FLOAT, FIELD(gae_lambda), 0, 0, 1, 0, 0, 0, NULL, "0.95",
     "GAE lambda."},
    {"algo.num_epochs", BLPO_KEY_INT, FIELD(num_epochs), 0, 1, 10000, 0, 0, 0, NULL, "4",
     "Passes over each rollout (E)."},
    {"algo.num_minibatches", BLPO_KEY_INT, FIELD(num_minibatches), 0, 1, 16777216, 0, 0, 0, NULL,
     "4",
     "Minibatches per epoch (M): must divide N*T for ppo (flat samples) and N for "
     "nested/blpo (whole trajectories)."},
    {"algo.clip_eps", BLPO_KEY_FLOAT, FIELD(clip_eps), 0, 0, 10, 1, 0, 0, NULL, "0.2",
     "Ratio clip epsilon of the surrogate (and of the ppo value loss)."},
    {"algo.vf_coef", BLPO_KEY_FLOAT, FIELD(vf_coef), 0, 0, 1000, 0, 0, 0, NULL, "0.5",
     "Value loss weight of the combined ppo loss."},
    {"algo.ent_coef", BLPO_KEY_FLOAT, FIELD(ent_coef), 0, 0, 1000, 0, 0, 0, NULL, "0.01",
     "Entropy bonus weight of the ppo loss."},
    {"algo.max_grad_norm", BLPO_KEY_FLOAT, FIELD(max_grad_norm), 0, 0, 1e9, 0, 0, 0, NULL, "0.5",
     "Global gradient-norm clip of the ppo update; 0 = off."},
    {"algo.norm_adv", BLPO_KEY_BOOL, FIELD(norm_adv), 0, 0, 0, 0, 0, 0, NULL, "true",
     "Per-minibatch advantage normalisation (ppo)."},
    {"algo.clip_value", BLPO_KEY_BOOL, FIELD(clip_value), 0, 0, 0, 0, 0, 0, NULL, "true",
     "Clipped value loss (ppo)."},
    {"algo.actor_lr", BLPO_KEY_FLOAT, FIELD(actor_lr), 0, 0, 10, 1, 0, 0, NULL, "2.5e-4",
     "Actor Adam learning rate."},
    {"algo.critic_lr", BLPO_KEY_FLOAT, FIELD(critic_lr), 0, 0, 10, 1, 0, 0, NULL, "2.5e-4",
     "Critic Adam learning rate."},
    {"algo.anneal_lr", BLPO_KEY_BOOL, FIELD(anneal_lr), 0, 0, 0, 0, 0, 0, NULL, "true",
     "Anneal both learning rates linearly to 0 over the run."},
    {"algo.adam_eps", BLPO_KEY_FLOAT, FIELD(adam_eps), 0, 0, 1, 1, 0, 0, NULL, "1e-5",
     "Adam epsilon of both optimisers."},
    {"algo.nested_updates", BLPO_KEY_INT, FIELD(nested_updates), 0, 1, 1000, 0, 0, 0, NULL, "5",
     "Critic Adam steps per minibatch before the actor step (K_c; nested and blpo)."},

    /* algo.hypergrad */
    {"algo.hypergrad.method", BLPO_KEY_ENUM, FIELD(hg_method), 0, 0, 0, 0, 0, 0, hg_names,
     "nystrom",
     "Inverse-HVP solver of blpo: nystrom, cg (conjugate gradient) or exact (dense; "
     "small critics only)."},
    {"algo.hypergrad.rank", BLPO_KEY_INT, FIELD(hg_rank), 0, 1, 100000, 0, 0, 0, NULL, "5",
     "Nystrom sketch size k (sampled critic parameter indices); at most the critic's size."},
    {"algo.hypergrad.rho", BLPO_KEY_FLOAT, FIELD(hg_rho), 0, 0, 1e12, 1, 0, 0, NULL, "50",
     "Shift rho of (H + rho I)^-1 v."},
    {"algo.hypergrad.ridge", BLPO_KEY_FLOAT, FIELD(hg_ridge), 0, 0, 1e12, 0, 0, 0, NULL, "1",
     "Core ridge gamma of the Woodbury solve; 1 = the reference, 0 = exact Nystrom Woodbury."},
    {"algo.hypergrad.cutoff", BLPO_KEY_FLOAT, FIELD(hg_cutoff), 0, 0, 1e12, 0, 0, 0, NULL, "1e-6",
     "Core eigenvalue cut-off: keep |lambda| > cutoff * k * max|lambda|."},
    {"algo.hypergrad.ihvp_bound", BLPO_KEY_FLOAT, FIELD(hg_ihvp_bound), 0, 0, 1e9, 0, 0, 0, NULL,
     "1", "Norm bound beta: the mixed term is scaled to at most beta * |g_theta|."},
    {"algo.hypergrad.clip_f", BLPO_KEY_FLOAT, FIELD(hg_clip_f), 0, 0, 1, 0, 0, 0, NULL, "0.5",
     "Clip epsilon of the mixed term's surrogate (eps_f)."},
    {"algo.hypergrad.fixed_indices", BLPO_KEY_BOOL, FIELD(hg_fixed_indices), 0, 0, 0, 0, 0, 0, NULL,
     "false",
     "Reuse one Nystrom index draw for the whole run (the reference's discrete "
     "script) instead of a fresh draw per solve."},
    {"algo.hypergrad.cg_iters", BLPO_KEY_INT, FIELD(hg_cg_iters), 0, 1, 100000, 0, 0, 0, NULL, "20",
     "Conjugate-gradient iterations (method cg)."},
    {"algo.hypergrad.cg_tol", BLPO_KEY_FLOAT, FIELD(hg_cg_tol), 0, 0, 1e12, 0, 0, 0, NULL, "1e-10",
     "Conjugate-gradient residual tolerance (method cg)."},
    {"algo.hypergrad.exact_max_params", BLPO_KEY_INT, FIELD(hg_exact_max_params), 0, 1, 50000, 0, 0,
     0, NULL, "20000",
     "Largest critic (parameters) for which a dense Hessian is built (method exact, check)."},
    {"algo.hypergrad.check", BLPO_KEY_BOOL, FIELD(hg_check), 0, 0, 0, 0, 0, 0, NULL, "false",
     "Also solve exactly with the dense Hessian and report the relative error (slow)."},

    /* net */
    {"net.actor_hidden", BLPO_KEY_INT_LIST, FIELD(actor_hidden),
     offsetof(blpo_config, actor_num_hidden), 1, 4096, 0, 1, BLPO_MAX_HIDDEN, NULL, "[64, 64]",
     "Actor hidden layer widths."},
    {"net.critic_hidden", BLPO_KEY_INT_LIST, FIELD(critic_hidden),
     offsetof(blpo_config, critic_num_hidden), 1, 4096, 0, 1, BLPO_MAX_HIDDEN, NULL, "[64, 64]",
     "Critic hidden layer widths."},
    {"net.activation", BLPO_KEY_ENUM, FIELD(activation), 0, 0, 0, 0, 0, 0, act_names, "tanh",
     "Hidden-layer activation of both networks: tanh or relu."},
};

const int blpo_config_num_keys = (int)(sizeof(blpo_config_keys) / sizeof(blpo_config_keys[0]));

_Static_assert(sizeof(blpo_config_keys) / sizeof(blpo_config_keys[0]) <= BLPO_CONFIG_MAX_KEYS,
               "raise BLPO_CONFIG_MAX_KEYS");
