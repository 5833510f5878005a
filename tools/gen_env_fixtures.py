#!/usr/bin/env python3
"""Writes tests/data/envs/<env id>.csv: single transitions of the five
classic-control tasks computed by real Gymnasium from injected states, the
reference that tests/test_env_fixture.c checks the float32 dynamics against.
Format: /work/shared/spec/envs.md ("Fixture files").

Runs itself inside a private virtual environment (default
tools/.venv-fixtures) with gymnasium from PyPI, so neither the build nor the
tests need Python packages.
"""
import argparse
import os
import subprocess
import sys
import venv

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REEXEC_FLAG = "BLPO_FIXTURES_IN_VENV"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", type=int, default=2000, help="transitions per env")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "envs"))
    ap.add_argument("--venv", default=os.path.join(HERE, ".venv-fixtures"),
                    help="virtual environment to create/use when gymnasium is missing")
    return ap.parse_args()


def ensure_gymnasium(args):
    try:
        import gymnasium  # noqa: F401
        import numpy  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get(REEXEC_FLAG):
        sys.exit("gymnasium still missing inside %s; remove it and retry" % args.venv)
    py = os.path.join(args.venv, "bin", "python")
    if not os.path.exists(py):
        print("creating virtual environment %s" % args.venv, file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(args.venv)
    check = subprocess.run([py, "-c", "import gymnasium"], capture_output=True)
    if check.returncode != 0:
        subprocess.check_call([py, "-m", "pip", "install", "--quiet", "gymnasium"])
    os.environ[REEXEC_FLAG] = "1"
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


def f32(x):
    """Round to float32 but keep float64: the state Gymnasium starts from is then
    exactly the one the C test loads, so only arithmetic differences remain."""
    import numpy as np
    return np.asarray(x, dtype=np.float32).astype(np.float64)


# ---- state/action samplers: broad coverage plus the boundaries -------------

def sample_cartpole(rng, i):
    import numpy as np
    x = rng.uniform(-2.4, 2.4)
    xd = rng.uniform(-3.0, 3.0)
    th = rng.uniform(-0.2095, 0.2095)
    thd = rng.uniform(-3.5, 3.5)
    kind = i % 4
    thr = 12 * 2 * np.pi / 360
    if kind == 1:  # cart near the track ends, moving either way
        x = rng.choice([-1, 1]) * rng.uniform(2.3, 2.4)
    elif kind == 2:  # pole near the termination angle
        th = rng.choice([-1, 1]) * rng.uniform(thr - 0.03, thr)
    elif kind == 3:  # land within a hair of the x threshold after the step
        sgn = rng.choice([-1, 1])
        xd = sgn * rng.uniform(0.5, 2.0)
        x = sgn * 2.4 - 0.02 * xd + rng.uniform(-1e-5, 1e-5)
    return f32([x, xd, th, thd]), [int(rng.integers(0, 2))]


def sample_acrobot(rng, i):
    import numpy as np
    v1, v2 = 4 * np.pi, 9 * np.pi
    s = [rng.uniform(-np.pi, np.pi), rng.uniform(-np.pi, np.pi),
         rng.uniform(-v1, v1), rng.uniform(-v2, v2)]
    kind = i % 5
    if kind == 1:  # angles near +-pi so the RK4 step wraps them
        s[0] = rng.choice([-1, 1]) * rng.uniform(np.pi - 0.3, np.pi)
        s[1] = rng.choice([-1, 1]) * rng.uniform(np.pi - 0.3, np.pi)
    elif kind == 2:  # speeds at or near the clamps
        s[2] = rng.choice([-1, 1]) * rng.uniform(v1 - 0.5, v1)
        s[3] = rng.choice([-1, 1]) * rng.uniform(v2 - 0.5, v2)
    elif kind == 3:  # the task's typical region: near the reset, slow
        s = list(rng.uniform(-0.5, 0.5, 2)) + list(rng.uniform(-2, 2, 2))
    elif kind == 4:  # near the termination height (tip just above/below 1)
        s[0] = rng.uniform(-np.pi, np.pi)
        s[1] = rng.uniform(-0.5, 0.5)
        s[2], s[3] = rng.uniform(-1, 1), rng.uniform(-1, 1)
    return f32(s), [int(rng.integers(0, 3))]


def sample_mountaincar(rng, i, goal=0.5):
    p = rng.uniform(-1.2, 0.6)
    v = rng.uniform(-0.07, 0.07)
    kind = i % 5
    if kind == 1:  # at or near the left wall moving left: clip and zeroed speed
        p = -1.2 if rng.uniform() < 0.5 else rng.uniform(-1.2, -1.13)
        v = rng.uniform(-0.07, 0.0)
    elif kind == 2:  # near the goal, either direction
        p = rng.uniform(goal - 0.08, goal + 0.02)
        v = rng.uniform(-0.02, 0.03)
    elif kind == 3:  # speeds at or near the clamps
        v = rng.choice([-1, 1]) * (0.07 if rng.uniform() < 0.3 else rng.uniform(0.066, 0.07))
    elif kind == 4:  # near the right wall
        p = rng.uniform(0.55, 0.6)
        v = rng.uniform(0.0, 0.07)
    return f32([p, v])


def sample_mc(rng, i):
    return sample_mountaincar(rng, i), [int(rng.integers(0, 3))]


def sample_mcc(rng, i):
    s = sample_mountaincar(rng, i, goal=0.45)
    a = rng.uniform(-1, 1) if i % 3 else rng.uniform(-3, 3)  # out-of-bounds too
    return s, [float(f32(a))]


def sample_pendulum(rng, i):
    import numpy as np
    th = rng.uniform(-np.pi, np.pi)
    thd = rng.uniform(-8, 8)
    kind = i % 4
    if kind == 1:  # near +-pi: the normalised angle wraps
        th = rng.choice([-1, 1]) * rng.uniform(np.pi - 0.1, np.pi + 0.1)
    elif kind == 2:  # unwrapped angles from long spinning episodes; speed clamp
        th = rng.uniform(-6 * np.pi, 6 * np.pi)
        thd = rng.choice([-1, 1]) * rng.uniform(7.5, 8.0)
    elif kind == 3:  # exactly at the speed limit
        thd = rng.choice([-8.0, 8.0])
    u = rng.uniform(-2, 2) if i % 3 else rng.uniform(-4, 4)  # out-of-bounds too
    return f32([th, thd]), [float(f32(u))]


TASKS = [
    # env id, sampler, discrete
    ("CartPole-v1", sample_cartpole, True),
    ("Acrobot-v1", sample_acrobot, True),
    ("MountainCar-v0", sample_mc, True),
    ("Pendulum-v1", sample_pendulum, False),
    ("MountainCarContinuous-v0", sample_mcc, False),
]


def fmt(x):
    return "%.17g" % float(x)


def generate(env_id, sampler, discrete, rng, rows, out_dir, seed):
    import gymnasium as gym
    import numpy as np

    env = gym.make(env_id)
    u = env.unwrapped  # bypass TimeLimit/OrderEnforcing/PassiveEnvChecker
    u.reset(seed=seed)
    state0, _ = sampler(rng, 0)
    n_s = len(state0)
    n_a = 1
    n_o = env.observation_space.shape[0]
    header = ([f"state_{k}" for k in range(n_s)] + [f"action_{k}" for k in range(n_a)] +
              [f"next_state_{k}" for k in range(n_s)] + [f"next_obs_{k}" for k in range(n_o)] +
              ["reward", "terminated"])
    lines = [",".join(header)]
    n_term = 0
    for i in range(rows):
        state, action = sampler(rng, i)
        u.state = np.array(state, dtype=np.float64)
        if hasattr(u, "steps_beyond_terminated"):
            # CartPole pays 0 when stepped past termination; each row is a fresh step.
            u.steps_beyond_terminated = None
        act = action[0] if discrete else np.array(action, dtype=np.float32)
        obs, reward, terminated, truncated, _ = u.step(act)
        next_state = np.asarray(u.state, dtype=np.float64).reshape(-1)
        assert next_state.shape[0] == n_s and np.asarray(obs).shape[0] == n_o
        n_term += bool(terminated)
        row = ([fmt(x) for x in state] + [fmt(a) for a in action] +
               [fmt(x) for x in next_state] + [fmt(x) for x in np.asarray(obs)] +
               [fmt(reward), "1" if terminated else "0"])
        lines.append(",".join(row))
    env.close()
    path = os.path.join(out_dir, env_id + ".csv")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%s: %d rows (%d terminal) -> %s" % (env_id, rows, n_term, os.path.relpath(path)))


def main():
    args = parse_args()
    ensure_gymnasium(args)
    import gymnasium
    import numpy as np

    os.makedirs(args.out, exist_ok=True)
    print("gymnasium %s, numpy %s" % (gymnasium.__version__, np.__version__))
    for k, (env_id, sampler, discrete) in enumerate(TASKS):
        rng = np.random.default_rng([args.seed, k])
        generate(env_id, sampler, discrete, rng, args.rows, args.out, args.seed)


if __name__ == "__main__":
    main()
