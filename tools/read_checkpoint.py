#!/usr/bin/env python3
"""Reads a blpo-gpu checkpoint (safetensors) with NumPy, independently of blpo-gpu.

    python3 tools/read_checkpoint.py RUN_DIR_OR_FILE [--values]
    python3 tools/read_checkpoint.py CKPT --obs 0.01,-0.2,0.03,0.1 [--agent 0] [--json]

Without --obs it prints the metadata and every tensor (dtype, shape, a few
values; --values prints them all). With --obs it runs agent --agent's actor
MLP on that observation: tensors actor.layers.{l}.weight (P, d_out, d_in) and
actor.layers.{l}.bias (P, d_out) for l = 0..L-1, the hidden activation named
by the metadata key `activation` (tanh or relu), a linear head; it prints the
head output (logits, or the Gaussian mean) as comma-separated %.9g, or as a
JSON list with --json. The forward pass runs in float64 on the stored float32
weights.

Needs numpy and safetensors; when they are not importable the script runs
tools/setup_ckpt.sh (which installs them into tools/.venv-ckpt) and re-runs
itself with that environment's python.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def ensure_deps():
    try:
        import numpy  # noqa: F401
        import safetensors  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("BLPO_CKPT_REEXEC"):
        sys.exit("read_checkpoint.py: numpy/safetensors still missing after tools/setup_ckpt.sh")
    py = subprocess.run(["bash", os.path.join(HERE, "setup_ckpt.sh")], check=True,
                        stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
    env = dict(os.environ, BLPO_CKPT_REEXEC="1")
    os.execve(py, [py, os.path.abspath(__file__)] + sys.argv[1:], env)


def load(path):
    from safetensors import safe_open
    from safetensors.numpy import load_file
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.safetensors")
    tensors = load_file(path)
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
    return path, tensors, meta


def actor_forward(tensors, meta, obs, agent):
    import numpy as np
    act = meta.get("activation")
    if act not in ("tanh", "relu"):
        raise SystemExit(f"metadata 'activation' is {act!r}, expected tanh or relu")
    L = 0
    while f"actor.layers.{L}.weight" in tensors:
        L += 1
    if L == 0:
        raise SystemExit("no tensor actor.layers.0.weight in the checkpoint")
    h = np.asarray(obs, dtype=np.float64)
    for l in range(L):
        W = tensors[f"actor.layers.{l}.weight"]
        b = tensors.get(f"actor.layers.{l}.bias")
        if b is None:
            raise SystemExit(f"missing actor.layers.{l}.bias")
        if W.ndim != 3 or b.ndim != 2 or b.shape != W.shape[:2]:
            raise SystemExit(f"layer {l}: weight {W.shape} / bias {b.shape} are not "
                             "(P, d_out, d_in) / (P, d_out)")
        if not 0 <= agent < W.shape[0]:
            raise SystemExit(f"--agent {agent} out of range: the checkpoint has {W.shape[0]} agents")
        if W.shape[2] != h.shape[0]:
            what = "the observation has" if l == 0 else f"layer {l - 1} outputs"
            raise SystemExit(f"layer {l} expects {W.shape[2]} inputs but {what} {h.shape[0]}")
        h = W[agent].astype(np.float64) @ h + b[agent].astype(np.float64)
        if l < L - 1:
            h = np.tanh(h) if act == "tanh" else np.maximum(h, 0.0)
    return h


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="checkpoint.safetensors or a run directory holding one")
    ap.add_argument("--obs", help="comma-separated observation: run the actor on it")
    ap.add_argument("--agent", type=int, default=0, help="agent index (default 0)")
    ap.add_argument("--json", action="store_true", help="print the actor output as a JSON list")
    ap.add_argument("--values", action="store_true", help="print every tensor value")
    args = ap.parse_args()
    ensure_deps()
    import numpy as np

    path, tensors, meta = load(args.checkpoint)
    if args.obs is not None:
        try:
            obs = [float(x) for x in args.obs.split(",")]
        except ValueError:
            raise SystemExit(f"--obs: not a comma-separated list of numbers: {args.obs!r}")
        out = actor_forward(tensors, meta, obs, args.agent)
        if args.json:
            print(json.dumps([float(v) for v in out]))
        else:
            print(",".join("%.9g" % v for v in out))
        return
    print(f"{path}")
    print(f"metadata ({len(meta)}):")
    for k in sorted(meta):
        print(f"  {k} = {meta[k]!r}")
    print(f"tensors ({len(tensors)}):")
    opts = dict(threshold=sys.maxsize) if args.values else dict(threshold=6, edgeitems=3)
    with np.printoptions(precision=6, **opts):
        for name in sorted(tensors):
            t = tensors[name]
            print(f"  {name}: {t.dtype} {list(t.shape)}")
            vals = np.array2string(t.reshape(-1), separator=", ")
            print("    " + vals.replace("\n", "\n    "))


if __name__ == "__main__":
    main()
