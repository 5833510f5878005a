#!/usr/bin/env python3
"""Every CUDA kernel's resources as ptxas reports them, per architecture, and
the checks that a launch will not fail for resources on a real device.

Runs without a GPU (nvcc and ptxas only), so CI checks the kernels' resource
use on every commit although it cannot launch them. For each kernels/*.cu and
each architecture it compiles the file to PTX, assembles it with `ptxas -v`,
and reads per kernel: registers, spill bytes, stack frame, static shared
memory and the launch bound (`.maxntid`, from __launch_bounds__).

Checks (each failure names the kernel, the file and the architecture):
  - a kernel without __launch_bounds__ uses at most 64 registers, so that any
    block size up to 1024 threads fits a multiprocessor's 65536 registers
    (with a bound, ptxas itself holds the registers to it);
  - registers x bound fit 65536 (ptxas guarantees it; checked in case);
  - no register spills, except the kernels listed in SPILL_ALLOWED with the
    most bytes tolerated and why;
  - the same for the device functions kernels call out of line (__noinline__,
    or too large to inline): ptxas reports their spills and stack apart from
    the kernel's, so a kernel at 0 may still spill inside its callee. Their
    registers count in the kernel's own (ptxas allocates the call tree as one),
    so only spills and stack are theirs; libdevice's internal helpers are
    listed in the table but held to nothing (their callers' saves around them
    are the callers' spills);
  - static shared memory at most 48 KiB (more needs dynamic shared memory and
    the opt-in attribute, which the launchers set for their dynamic part);
  - a kernel that synchronises its grid (cooperative groups' grid.sync(),
    seen in the PTX as the grid workspace's %envreg read and the barrier's
    release atomic; run.grid_sync's kernels) reads nothing, in itself or in
    any device function it calls, through the non-coherent read-only path
    (ld.global.nc / ldu, what __ldg and const __restrict__ pointers may
    compile to): that path is not kept coherent with the kernel's own
    writes, and such a kernel reads after a grid barrier what other blocks
    wrote before it (parameters, partial sums, moments);
  - from sm_90 on, the kernel starts with kernels/pdl_cuda.h's
    griddepcontrol.wait (then launch_dependents): in the PTX only parameter
    loads, moves, address conversions and register arithmetic, unpredicated,
    come before it (an allow-list: no memory access, barrier, branch, call or
    return however spelled), so that under programmatic dependent launch
    (run.pdl) no block touches memory, or exits, before the kernel ahead of
    it has finished. (PTX, not SASS: ptxas keeps memory operations on their
    side of the wait, which is what the instruction is for.)

Usage: kernel_resources.py [--nvcc PATH] [--arch 90 ...] [--table FILE]
                           [-I DIR ...] [-D NAME=VALUE ...] SOURCE.cu ...
       kernel_resources.py --self-test   (the PTX rules on made-up kernels)
Exit status 0 when every check passes, 1 when one fails, 2 on a compiler
error.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

REGS_PER_SM = 65536
STATIC_SMEM_MAX = 48 * 1024
# Kernels whose spills are known, with the most bytes (stores + loads) held
# to and why. Any other kernel must not spill at all.
SPILL_ALLOWED = {
    # sm_80..89 (12 + 12 bytes): the calling convention's saves around the
    # call into libdevice's non-inlined __internal_accurate_pow (Adam's bias
    # corrections), not register pressure
    "acb_kernel": (32, "call saves around __internal_accurate_pow"),
    "mbf_rows_kernel": (32, "call saves around __internal_accurate_pow"),
    # sm_90 (28 + 32 bytes at 48 registers of the 255 its bound allows): a
    # few words of the eigensolver's locals; one block per agent runs it once
    # per minibatch, so they cannot cost anything measurable
    "nys_fused_kernel": (64, "eigensolver locals, one block per agent"),
}

ENTRY_RE = re.compile(r"^(?:\.visible\s+)?\.entry (\S+)\((.*?)\)\s*((?:\.\w+[^\n{]*\n\s*)*)\{",
                      re.S | re.M)
MAXNTID_RE = re.compile(r"\.maxntid\s+(\d+),\s*(\d+),\s*(\d+)")
PTXAS_RE = re.compile(
    r"Compiling entry function '(\S+)' for 'sm_(\d+)'\n"
    r"(?:ptxas info\s*: Function properties for \S+\n)?"
    r"\s*(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads\n"
    r"ptxas info\s*: Used (\d+) registers([^\n]*)")
SMEM_RE = re.compile(r"(\d+) bytes smem")
# Every function's properties, entries and callees alike.
PROPS_RE = re.compile(
    r"Function properties for (\S+)\n"
    r"\s*(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
# libdevice's internal out-of-line helpers (__internal_accurate_pow, ...):
# their frames are the library's; tabled, not checked.
LIBRARY_FN_RE = re.compile(r"^__internal_|^__nv_|^__cuda_")
# What may come before griddepcontrol.wait: parameter loads, address
# conversions, moves and register arithmetic, unpredicated (an allow-list, so
# that any memory access, barrier, branch, call or return, however spelled,
# fails; nvcc 13 emits only ld.param, cvta, mov and add there).
PDL_BEFORE_WAIT = {"mov", "cvta", "cvt", "add", "sub", "mul", "mad", "shl", "shr", "and", "or",
                   "xor", "not", "neg", "min", "max", "abs", "setp", "selp"}


FUNC_RE = re.compile(r"^(?:\.visible\s+|\.weak\s+)?\.func\s+(?:\([^)]*\)\s*)?([\w$]+)\s*\(",
                     re.M)
# the read-only (non-coherent) cache path: ld.global[.cop].nc..., ldu.global
NC_LOAD_RE = re.compile(r"\bld\.global(?:\.(?:ca|cg|cs|lu|cv))?\.nc\b|\bldu\.")
# a kernel ptxas reported whose PTX body the scan did not find: a failure
UNSCANNED = "not found in the PTX"


def func_bodies(text):
    """{name: body} of the device functions the PTX defines (declarations
    end in ';' after their parameters and directives, definitions open a
    body with '{')."""
    bodies = {}
    for m in FUNC_RE.finditer(text):
        close = text.find(")", m.end())
        if close < 0:
            continue
        brace, semi = text.find("{", close), text.find(";", close)
        if brace < 0 or (0 <= semi < brace):
            continue
        end = text.find("\n}", brace)
        bodies[m.group(1)] = text[brace:end if end >= 0 else len(text)]
    return bodies


def grid_sync_state(body, funcs):
    """'-' for a kernel that does not synchronise its grid; else 'ok', or
    where it reads through the non-coherent path."""
    # the kernel's body and every function it calls, transitively
    seen, todo, bodies = set(), [("kernel", body)], []
    while todo:
        name, b = todo.pop()
        bodies.append((name, b))
        for f, fb in funcs.items():
            if f not in seen and re.search(r"(?<![\w$])" + re.escape(f) + r"(?![\w$])", b):
                seen.add(f)
                todo.append((f, fb))
    text = "\n".join(b for _, b in bodies)
    if not (re.search(r"%envreg[12]\b", text) and "atom.add.release.gpu" in text):
        return "-"
    for name, b in bodies:
        m = NC_LOAD_RE.search(b)
        if m:
            return f"{m.group(0)} in {name}"
    return "ok"


def pdl_entry_state(body):
    """'ok', 'missing', or the first instruction that comes before the wait."""
    if "griddepcontrol.wait" not in body:
        return "missing"
    waited = False
    for line in body.splitlines():
        s = line.strip()
        if not s or s.startswith("//") or s.startswith("."):
            continue
        if s.startswith("griddepcontrol.wait"):
            waited = True
            continue
        if s.startswith("griddepcontrol.launch_dependents"):
            return "ok" if waited else "launch_dependents before the wait"
        if waited:
            return "no launch_dependents right after the wait"
        op = s.split()[0]
        if not (op.startswith("ld.param.") or op.split(".")[0] in PDL_BEFORE_WAIT):
            return "before the wait: " + s.rstrip(";")
    return "missing"


def demangle(names):
    """Short names: c++filt, anonymous namespaces and arguments dropped."""
    filt = shutil.which("c++filt")
    if not filt:
        return {n: n for n in names}
    out = subprocess.run([filt], input="\n".join(names), capture_output=True, text=True,
                         check=True).stdout.splitlines()
    short = {}
    for n, d in zip(names, out):
        d = d.replace("(anonymous namespace)::", "").split("(")[0]
        d = re.sub(r".*::", "", d)
        short[n] = d
    return short


def callees_of(ptxas_out, entries):
    """[(mangled, {stack, spill})] of the non-entry functions ptxas reports."""
    found = []
    for m in PROPS_RE.finditer(ptxas_out):
        if m.group(1) in entries:
            continue
        found.append((m.group(1), {"stack": int(m.group(2)),
                                   "spill": int(m.group(3)) + int(m.group(4))}))
    return found


def kernels_of(nvcc, ptxas, src, arch, includes, defines, tmp):
    """([(mangled, resources dict)] of src's kernels compiled for sm_<arch>,
    [(mangled, {stack, spill})] of the device functions they call out of
    line)."""
    ptx = os.path.join(tmp, f"{os.path.basename(src)}.{arch}.ptx")
    cmd = [nvcc, "-O3", "-DNDEBUG", f"-arch=compute_{arch}", "-ptx", src, "-o", ptx]
    for inc in includes:
        cmd += ["-I", inc]
    for d in defines:
        cmd += ["-D", d]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(f"kernel_resources: {' '.join(cmd)} failed:\n{r.stderr}")
        sys.exit(2)
    r = subprocess.run([ptxas, f"-arch=sm_{arch}", "-O3", "-v", ptx, "-o", os.devnull],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(f"kernel_resources: ptxas on {ptx} failed:\n{r.stderr}")
        sys.exit(2)
    text = open(ptx).read()
    bounds, pdl, grid = {}, {}, {}
    funcs = func_bodies(text)
    for m in ENTRY_RE.finditer(text):
        b = MAXNTID_RE.search(m.group(3))
        bounds[m.group(1)] = int(b.group(1)) * int(b.group(2)) * int(b.group(3)) if b else None
        end = text.find("\n}", m.end())
        body = text[m.end():end if end >= 0 else len(text)]
        pdl[m.group(1)] = (pdl_entry_state(body)
                           if int(re.match(r"\d+", arch).group()) >= 90 else "-")
        g = grid_sync_state(body, funcs)
        if " in _Z" in g:  # the function's short name
            op, fn = g.split(" in ", 1)
            g = f"{op} in {demangle([fn])[fn]}"
        grid[m.group(1)] = g
    found = []
    for m in PTXAS_RE.finditer(r.stdout + r.stderr):
        smem = SMEM_RE.search(m.group(7))
        found.append((m.group(1), {
            "stack": int(m.group(3)),
            "spill": int(m.group(4)) + int(m.group(5)),
            "regs": int(m.group(6)),
            "smem": int(smem.group(1)) if smem else 0,
            "bound": bounds.get(m.group(1)),
            "pdl": pdl.get(m.group(1), "missing"),
            "grid": grid.get(m.group(1), UNSCANNED),
        }))
    if len(found) != len(bounds):
        sys.stderr.write(f"kernel_resources: {src} sm_{arch}: ptxas reported {len(found)} "
                         f"kernels, the PTX has {len(bounds)} (output format changed?)\n")
        sys.exit(2)
    callees = callees_of(r.stdout + r.stderr, set(bounds))
    # every device function the PTX defines must have been reported (a
    # format change would otherwise pass every callee unchecked)
    missing = sorted(set(funcs) - {c for c, _ in callees})
    if missing:
        sys.stderr.write(f"kernel_resources: {src} sm_{arch}: ptxas reported no properties for "
                         f"the PTX's device functions {', '.join(missing[:3])} "
                         "(output format changed?)\n")
        sys.exit(2)
    # a source that synchronises a grid must yield a kernel found doing so
    # (a changed spelling of the barrier would otherwise pass the rule)
    if "this_grid()" in open(src).read() and all(g == "-" for g in grid.values()):
        sys.stderr.write(f"kernel_resources: {src} sm_{arch}: the source calls this_grid() but "
                         "no kernel's PTX has the grid barrier (its spelling changed?)\n")
        sys.exit(2)
    return found, callees


def callee_problems_of(name, k):
    if LIBRARY_FN_RE.match(name):
        return []
    allowed, _ = SPILL_ALLOWED.get(name, (0, ""))
    if k["spill"] > allowed:
        return [f"{k['spill']} bytes of register spills in this out-of-line device function "
                f"(allowed {allowed})"]
    return []


def problems_of(name, k):
    out = []
    # registers are allocated per warp in units of 256
    per_warp = (k["regs"] * 32 + 255) // 256 * 256
    most = min(1024, REGS_PER_SM // per_warp * 32)  # threads of the largest block that fits
    if k["bound"] is None and most < 1024:
        out.append(f"{k['regs']} registers without __launch_bounds__: a block of more than "
                   f"{most} threads cannot launch; give the kernel the launch bound its "
                   "launcher uses")
    if k["bound"] is not None:
        if (k["bound"] + 31) // 32 * per_warp > REGS_PER_SM:
            out.append(f"{k['regs']} registers x {k['bound']} threads exceed {REGS_PER_SM}")
    allowed, _ = SPILL_ALLOWED.get(name, (0, ""))
    if k["spill"] > allowed:
        out.append(f"{k['spill']} bytes of register spills (allowed {allowed})")
    if k["smem"] > STATIC_SMEM_MAX:
        out.append(f"{k['smem']} bytes of static shared memory (at most {STATIC_SMEM_MAX})")
    if k["grid"] == UNSCANNED:
        out.append("its PTX body was not found, so the grid-barrier rule was not checked")
    elif k["grid"] not in ("ok", "-"):
        out.append(f"synchronises its grid but reads through the non-coherent path "
                   f"({k['grid']}): what other blocks wrote before a grid barrier may be "
                   "read stale; use plain loads (no __ldg, no const __restrict__) in a "
                   "grid-synchronising kernel and what it calls")
    if k["pdl"] not in ("ok", "-"):
        out.append("programmatic dependent launch: "
                   + ("no griddepcontrol.wait; make blpo_pdl_enter() (kernels/pdl_cuda.h) the "
                      "kernel's first statement" if k["pdl"] == "missing" else k["pdl"]))
    return out


def self_test():
    """The wait rule on made-up PTX bodies and the out-of-line function rule on
    a made-up ptxas report, so that their failing sides are tested too (the
    real kernels all pass them)."""
    head = "\n\t.reg .b64 %rd<4>;\n\tld.param.u64 %rd1, [k_param_0];\n"
    pair = "\tgriddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;\n"
    cases = [
        (head + pair + "\tld.global.f32 %f1, [%rd1];\n\tret;\n", "ok"),
        (head + "\tcvta.to.global.u64 %rd2, %rd1;\n" + pair + "\tret;\n", "ok"),
        (head + "\tld.global.f32 %f1, [%rd1];\n\tret;\n", "missing"),
        (head + "\tsetp.ge.s32 %p1, %r1, %r2;\n\t@%p1 bra $L__BB0_2;\n" + pair, "before"),
        (head + "\tbra.uni $L__BB0_2;\n" + pair, "before"),
        (head + "\tld.global.f32 %f1, [%rd1];\n" + pair, "before"),
        (head + "\tld.f32 %f1, [%rd1];\n" + pair, "before"),
        (head + "\tst.shared.f32 [%rd1], %f1;\n" + pair, "before"),
        (head + "\tbar.sync 0;\n" + pair, "before"),
        (head + "\tret;\n" + pair, "before"),
        (head + "\tldu.global.f32 %f1, [%rd1];\n" + pair, "before"),
        (head + "\tldmatrix.sync.aligned.m8n8.x4.shared.b16 {%r1, %r2, %r3, %r4}, [%r5];\n"
         + pair, "before"),
        (head + "\twgmma.fence.sync.aligned;\n" + pair, "before"),
        (head + "\tmultimem.st.global.f32 [%rd1], %f1;\n" + pair, "before"),
        (head + "\tdiscard.global.L2 [%rd1], 128;\n" + pair, "before"),
        (head + "\tcp.async.ca.shared.global [%r1], [%rd1], 16;\n" + pair, "before"),
        (head + "\tmov.u32 %r1, %ctaid.x;\n\tmad.lo.s32 %r2, %r1, %r3, %r4;\n" + pair, "ok"),
        (head + "\tgriddepcontrol.launch_dependents;\n\tgriddepcontrol.wait;\n", "launch_dependents"),
        (head + "\tgriddepcontrol.wait;\n\tld.global.f32 %f1, [%rd1];\n", "no launch_dependents"),
    ]
    bad = 0
    for body, want in cases:
        got = pdl_entry_state(body)
        if not got.startswith(want):
            print(f"FAIL self-test: want {want!r}, got {got!r} for:{body}")
            bad += 1
    # the out-of-line function rule on a made-up ptxas report: the entry is
    # not a callee, a spilling callee fails, libdevice's helpers do not
    report = ("ptxas info    : Compiling entry function 'k' for 'sm_90'\n"
              "ptxas info    : Function properties for k\n"
              "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
              "ptxas info    : Used 40 registers\n"
              "ptxas info    : Function properties for _Z5phasei\n"
              "    24 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads\n"
              "ptxas info    : Function properties for __internal_accurate_pow\n"
              "    16 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\n")
    callees = dict(callees_of(report, {"k"}))
    fn_cases = [
        (sorted(callees) == ["_Z5phasei", "__internal_accurate_pow"], "callees: the two functions"),
        (callees.get("_Z5phasei") == {"stack": 24, "spill": 16}, "callee's stack and spills"),
        (len(callee_problems_of("phase", callees.get("_Z5phasei", {"spill": 16}))) == 1,
         "a spilling callee fails"),
        (not callee_problems_of("__internal_accurate_pow", {"stack": 16, "spill": 8}),
         "libdevice's helper passes"),
    ]
    # the grid-barrier rule on made-up PTX: a kernel with the barrier's
    # workspace read and release atomic, with and without a non-coherent
    # load, in itself or in a function it calls
    sync = ("\tmov.u32 %r1, %envreg1;\n\tatom.add.release.gpu.u32 %r2, [%rd1], %r3;\n"
            "\tcall.uni _Z5phasei, (%r1);\n")
    plain = {"_Z5phasei": "{\n\tld.global.f32 %f1, [%rd2];\n"}
    nc = {"_Z5phasei": "{\n\tld.global.nc.v4.f32 {%f1, %f2, %f3, %f4}, [%rd2];\n"}
    fn_cases += [
        (grid_sync_state(sync, plain) == "ok", "grid barrier, plain loads: ok"),
        (grid_sync_state(sync, nc).startswith("ld.global.nc in _Z5phasei"),
         "grid barrier, a callee's ld.global.nc: flagged"),
        (grid_sync_state(sync + "\tldu.global.u32 %r4, [%rd1];\n", plain).startswith("ldu."),
         "grid barrier, the kernel's own ldu: flagged"),
        (grid_sync_state("\tld.global.nc.f32 %f1, [%rd1];\n", nc) == "-",
         "no grid barrier: .nc allowed"),
        (func_bodies(".func _Z1fi(\n\t.param .b32 p\n)\n;\n.func _Z1gi(\n\t.param .b32 p\n)\n"
                     "{\n\tret;\n}\n") .keys() == {"_Z1gi"}, "function bodies, not declarations"),
    ]
    for ok, what in fn_cases:
        if not ok:
            print(f"FAIL self-test: {what}")
            bad += 1
    cases += fn_cases
    print(f"kernel_resources self-test: {len(cases) - bad} of {len(cases)} cases right")
    return 1 if bad else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nvcc", default=shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc")
    ap.add_argument("--arch", action="append", help="compute capability, e.g. 90 (repeatable)")
    ap.add_argument("--table", help="write the resource table (markdown) here")
    ap.add_argument("-I", dest="includes", action="append", default=[])
    ap.add_argument("-D", dest="defines", action="append", default=[],
                    help="a macro definition the build uses (a tile variant's)")
    ap.add_argument("sources", nargs="+")
    a = ap.parse_args()
    archs = a.arch or ["80", "86", "89", "90"]
    ptxas = os.path.join(os.path.dirname(a.nvcc), "ptxas")
    if not os.path.exists(ptxas):
        ptxas = shutil.which("ptxas") or "ptxas"

    rows, fn_rows, failures = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for src in a.sources:
            for arch in archs:
                found, callees = kernels_of(a.nvcc, ptxas, src, arch, a.includes, a.defines, tmp)
                short = demangle([n for n, _ in found] + [n for n, _ in callees])
                for mangled, k in found:
                    name = short[mangled]
                    rows.append((os.path.basename(src), arch, name, k))
                    for p in problems_of(name, k):
                        failures.append(f"{os.path.basename(src)}: {name} (sm_{arch}): {p}")
                for mangled, k in callees:
                    name = short[mangled]
                    fn_rows.append((os.path.basename(src), arch, name, k))
                    for p in callee_problems_of(name, k):
                        failures.append(f"{os.path.basename(src)}: {name} (sm_{arch}): {p}")

    # a kernel defined in a header appears once per file that includes it
    seen, table = set(), []
    for src, arch, name, k in sorted(rows, key=lambda r: (r[1], r[0], r[2])):
        if (arch, name, tuple(sorted(k.items()))) in seen:
            continue
        seen.add((arch, name, tuple(sorted(k.items()))))
        table.append(f"| sm_{arch} | {src} | {name} | {k['regs']} | "
                     f"{k['bound'] if k['bound'] else '-'} | {k['smem']} | {k['stack']} | "
                     f"{k['spill']} | {k['pdl']} | {k['grid']} |")
    head = ("| arch | file | kernel | registers | launch bound | static smem (B) | "
            "stack (B) | spill (B) | waits first (pdl) | grid barrier, coherent loads |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---|---|\n")
    fn_seen, fn_table = set(), []
    for src, arch, name, k in sorted(fn_rows, key=lambda r: (r[1], r[0], r[2])):
        key = (arch, name, k["stack"], k["spill"])
        if key in fn_seen:
            continue
        fn_seen.add(key)
        fn_table.append(f"| sm_{arch} | {src} | {name} | {k['stack']} | {k['spill']} |")
    fn_head = ("\nDevice functions called out of line (their registers are their "
               "callers'):\n\n| arch | file | function | stack (B) | spill (B) |\n"
               "|---|---|---|---:|---:|\n")
    if a.table:
        tmp_path = a.table + ".tmp"
        with open(tmp_path, "w") as f:
            f.write(head + "\n".join(table) + "\n")
            if fn_table:
                f.write(fn_head + "\n".join(fn_table) + "\n")
        os.replace(tmp_path, a.table)
    n_kernels = len({(r[0], r[2]) for r in rows})
    n_fns = len({(r[0], r[2]) for r in fn_rows})
    print(f"kernel_resources: {n_kernels} kernels and {n_fns} out-of-line device functions in "
          f"{len(a.sources)} files, architectures {', '.join('sm_' + x for x in archs)}")
    for f in failures:
        print("FAIL " + f)
    if failures:
        return 1
    print("kernel_resources: every kernel fits its launch (registers, spills, static smem), "
          "no device function it calls out of line spills, no grid-synchronising kernel reads "
          "through the non-coherent path, and from sm_90 on every kernel waits for the kernel "
          "ahead of it before anything else")
    return 0


if __name__ == "__main__":
    sys.exit(main())
