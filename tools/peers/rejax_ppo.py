"""rejax's PPO on a gymnax task with blpo-gpu's PPO settings, timed.

The peer of issue "GPU throughput" item 6: rejax (a pure-JAX, vmappable PPO
on gymnax environments, from the package index) run with the task, sizes and
step budget that blpo-gpu's PPO gets in tools/peers/compare.sh. Prints one
JSON object: compile time, training time, env steps per second of training
(compile excluded, which favours the peer) and the mean return of rejax's
own final evaluation (128 episodes, sampled actions).

Peer code is installed by tools/peers/setup.sh into tools/.venv-peers and is
never committed.
"""

import argparse
import importlib.metadata
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="CartPole-v1", help="gymnax task id")
    ap.add_argument("--num-envs", type=int, default=1024)
    ap.add_argument("--num-steps", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--minibatches", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--ent-coef", type=float, default=0.0)
    ap.add_argument("--total-steps", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="timed runs after the compile run; the fastest is reported")
    args = ap.parse_args()

    import jax
    from rejax import PPO

    algo = PPO.create(
        env=args.env,
        num_envs=args.num_envs,
        num_steps=args.num_steps,
        num_epochs=args.epochs,
        num_minibatches=args.minibatches,
        learning_rate=args.lr,
        max_grad_norm=0.5,
        gamma=0.99,
        gae_lambda=0.95,
        clip_eps=0.2,
        vf_coef=0.5,
        ent_coef=args.ent_coef,
        total_timesteps=args.total_steps,
        # one evaluation, at the end: rejax evaluates inside the compiled run
        eval_freq=args.total_steps,
        skip_initial_evaluation=True,
        normalize_observations=False,
        agent_kwargs={"activation": "tanh", "hidden_layer_sizes": [64, 64]},
    )
    train = jax.jit(algo.train)
    rng = jax.random.PRNGKey(args.seed)

    t0 = time.perf_counter()
    compiled = train.lower(rng).compile()
    compile_s = time.perf_counter() - t0

    best = None
    for _ in range(max(1, args.repeats)):
        t0 = time.perf_counter()
        ts, (lengths, returns) = compiled(rng)
        jax.block_until_ready(returns)
        dt = time.perf_counter() - t0
        best = dt if best is None or dt < best else best

    # rejax rounds the budget up to whole iterations
    it_steps = args.num_envs * args.num_steps
    steps = -(-args.total_steps // it_steps) * it_steps
    out = {
        "peer": "rejax",
        "rejax_version": importlib.metadata.version("rejax"),
        "jax_version": jax.__version__,
        "jax_backend": jax.default_backend(),
        "env": args.env,
        "num_envs": args.num_envs,
        "num_steps": args.num_steps,
        "env_steps": steps,
        "compile_s": round(compile_s, 3),
        "train_s": round(best, 3),
        "env_steps_per_s": round(steps / best, 1),
        "final_return_mean": float(returns[-1].mean()),
        "cpu_threads": os.cpu_count(),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
