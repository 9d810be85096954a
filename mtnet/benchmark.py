"""ms per meta-iteration of MT-net's seed configuration: this project's trainer (TensorFlow, one step or a loop of
--iterations_per_loop steps per session call, with or without --xla) against the same step written in JAX
(mtnet/bench/jax_maml.py: one jitted step per call, or a lax.scan loop of steps), issue 27.

    python mtnet/benchmark.py [--rounds=3] [--iterations=5000] [--loops=1,100] [--xla=off,on] \\
        [--variants=maml,mtnet] [--tf_python=.venv-tf2/bin/python[,.venv/bin/python]] \\
        [--jax_python=$MTNET_JAX_PYTHON] [--lock=FILE]

Every case runs in its own process, a whole training run of --iterations meta-iterations; cases are interleaved
(one run of each per round, the order reversed every other round) and the table shows the median over rounds.
Both sides report the trainer's `step_time_summary:` line (common/step_timer.py), read by one parser: the mean
time of the session call (JAX: the compiled call and the loss fetch) per meta-iteration after the warm-up steps
(graph build, XLA/JAX compilation), min(50, iterations // 10) steps rounded up to whole calls.
A case whose run stops with an `error:` line (e.g. a flag not built yet) or a run that did not loop when asked to
is skipped with the reason; JAX cases are skipped without --jax_python (a scratch interpreter with JAX: JAX is
never a project dependency). --xla=env times TensorFlow's auto-clustering through TF_XLA_FLAGS instead of --xla.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fcntl  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

from common.errors import ArgumentParser, UserError, main_guard, require  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JAX_SCRIPT = os.path.join(REPO, "mtnet", "bench", "jax_maml.py")
JAX_ENV = "MTNET_JAX_PYTHON"
VARIANTS = {"maml": ("MAML variant", {"use_T": False, "use_M": False, "share_M": False}),
            "mtnet": ("MT-net variant", {"use_T": True, "use_M": True, "share_M": True})}
# mtnet/test/seed_config.sh's flags but the variant's three and the iteration count
SEED_FLAGS = ["--datasource=sinusoid", "--meta_batch_size=4", "--meta_lr=0.001", "--update_lr=0.01", "--norm=None",
              "--update_batch_size=10", "--seed=1"]
XLA_MODES = ("off", "on", "env")
AUTO_JIT = "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"      # the TF_XLA_FLAGS row
NOT_LOOPED = "one step per run here"       # common/npu_session.describe() off Ascend before looping was built
SUMMARY = re.compile(r"^step_time_summary: mean_dt=(\S+) steps=(\d+) warmup=(\d+)", re.M)
FINAL = re.compile(r"^final: preloss \S+ postloss (\S+)", re.M)
SIMD = re.compile(r"^(sse4_2|avx|fma|amx|f16c)")


class Skipped(Exception):
    """A case that cannot be measured here (flag rejected, loop not built); said once, not retried."""


class Case(object):
    """One timed configuration: its row label, variant, and the command that runs it."""

    def __init__(self, label, variant, argv, env=None, loop=1, logdir=False):
        self.label, self.variant, self.argv, self.env, self.loop = label, variant, argv, env or {}, loop
        self.logdir = logdir            # pass --logdir=<a scratch directory of the run>
        self.ms, self.postloss, self.header = [], [], None
        self.skipped = self.failed = None


def step_ms(output):
    """ms per step from the last `step_time_summary:` line (common/step_timer.py's format) and its warm-up
    count; raises ValueError when there is none or it has no timed steps."""
    found = SUMMARY.findall(output)
    if not found:
        raise ValueError("no step_time_summary line")
    mean_dt, steps, warmup = found[-1]
    if int(steps) == 0 or not float(mean_dt) > 0:
        raise ValueError("no timed steps (%s)" % found[-1][0])
    return 1000.0 * float(mean_dt), int(warmup)


def cpu_description(path="/proc/cpuinfo"):
    """'model, N logical CPUs; SIMD flags: ...' from /proc/cpuinfo (what lscpu prints)."""
    model, count, flags = "unknown CPU", 0, []
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "processor":
                    count += 1
                elif key == "model name" and model == "unknown CPU":
                    model = value
                elif key == "flags" and not flags:
                    flags = [flag for flag in value.split() if SIMD.match(flag)]
    except (IOError, OSError):
        return "unknown CPU (no %s)" % path
    return "%s, %d logical CPUs; SIMD flags: %s" % (model, count, " ".join(flags) or "none listed")


def tf_cases(args, tf_python, tf_version):
    cases = []
    for variant in args.variants:
        switches = VARIANTS[variant][1]
        for loop in args.loops:
            for xla in args.xla:
                argv = [tf_python, os.path.join(REPO, "mtnet", "main.py")] + SEED_FLAGS + [
                    "--%s=%s" % (k, v) for k, v in sorted(switches.items())] + [
                    "--metatrain_iterations=%d" % args.iterations, "--log=False", "--resume=False",
                    "--print_interval=%d" % args.iterations, "--save_interval=%d" % args.iterations,
                    "--iterations_per_loop=%d" % loop] + (["--xla=True"] if xla == "on" else [])
                env = {"TF_XLA_FLAGS": AUTO_JIT} if xla == "env" else {}
                what = {"off": "", "on": ", --xla", "env": ", TF_XLA_FLAGS auto-jit"}[xla]
                cases.append(Case("this project, TF %s, N=%d%s" % (tf_version, loop, what), variant, argv, env,
                                  loop, logdir=True))
    return cases


def jax_cases(args, jax_python):
    cases = []
    for variant in args.variants:
        for mode in args.jax_modes:
            argv = [jax_python, JAX_SCRIPT, "--variant=" + variant, "--mode=" + mode,
                    "--iterations=%d" % args.iterations, "--loop=%d" % args.scan_loop]
            label = "JAX, jit of one meta-step" if mode == "jit" else \
                "JAX, %d meta-steps per call (lax.scan)" % args.scan_loop
            env = {"XLA_FLAGS": args.jax_xla_flags} if args.jax_xla_flags is not None else {}
            cases.append(Case(label, variant, argv, env, loop=args.scan_loop if mode == "scan" else 1))
    return cases


def run_case(case, workdir, timeout):
    """One run of the case; appends its ms per step or raises Skipped."""
    logdir = tempfile.mkdtemp(prefix="run-", dir=workdir)
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    for name in ("TF_XLA_FLAGS", "NPU_FALLBACK", "JOB_ID"):   # only what the case asks for
        env.pop(name, None)
    env.update(case.env)
    argv = case.argv + (["--logdir=" + logdir] if case.logdir else [])
    try:
        proc = subprocess.run(argv, cwd=logdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError("no result within %d s" % timeout)
    except OSError as err:
        raise RuntimeError("cannot run %s: %s" % (argv[0], err))
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    errors = [line for line in proc.stdout.splitlines() if line.startswith("error: ")]
    if proc.returncode != 0:
        if errors:
            raise Skipped("the run stopped with " + errors[-1])
        tail = proc.stdout.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError("exit status %d: %s" % (proc.returncode, tail[0]))
    ms, warmup = step_ms(proc.stdout)
    if case.loop > 1 and (NOT_LOOPED in proc.stdout or warmup % case.loop):
        raise Skipped("did not loop: N=%d ran one step per session call (looping off Ascend not built here)"
                      % case.loop)
    case.ms.append(ms)
    final = FINAL.findall(proc.stdout)
    case.postloss.append(float(final[-1]) if final else float("nan"))
    case.header = case.header or next((line for line in proc.stdout.splitlines() if line.startswith("jax ")), None)


def run_rounds(cases, rounds, timeout, printer):
    workdir = tempfile.mkdtemp(prefix="mtnet-bench-")
    try:
        for r in range(rounds):
            order = cases if r % 2 == 0 else list(reversed(cases))
            for case in order:
                if case.skipped or case.failed:
                    continue
                try:
                    run_case(case, workdir, timeout)
                except Skipped as why:
                    case.skipped = str(why)
                    printer("skipped %s (%s): %s" % (case.label, case.variant, why))
                except (RuntimeError, ValueError) as why:
                    case.failed = str(why)
                    printer("FAILED %s (%s): %s" % (case.label, case.variant, why))
                else:
                    printer("round %d: %s (%s): %.3f ms per meta-iteration (final postloss %.3f)"
                            % (r + 1, case.label, case.variant, case.ms[-1], case.postloss[-1]))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def cell(case):
    if case is None:
        return "—"
    if case.failed:           # not a median of fewer rounds
        return "failed"
    if case.ms:
        return "%.3f" % statistics.median(case.ms)
    return "skipped"


def table(cases, variants, rounds):
    """Markdown table like the issue's: one row per configuration, one column per variant (medians, ms)."""
    rows = []
    for case in cases:
        if case.label not in rows:
            rows.append(case.label)
    by_key = {(c.label, c.variant): c for c in cases}
    lines = ["| ms per meta-iteration, median of %d interleaved rounds | %s |"
             % (rounds, " | ".join(VARIANTS[v][0] for v in variants)),
             "|---|" + "---|" * len(variants)]
    for label in rows:
        lines.append("| %s | %s |" % (label, " | ".join(cell(by_key.get((label, v))) for v in variants)))
    return lines


def target_lines(cases, variants, scan_loop):
    """The issue's targets: N=1 with --xla against JAX's jitted step, N=100 with --xla against its scan."""
    out = []
    for variant in variants:
        mine = {(c.loop, c.label): c for c in cases if c.variant == variant and c.ms}
        jit = [c for c in cases if c.variant == variant and c.ms and c.label.startswith("JAX, jit")]
        scan = [c for c in cases if c.variant == variant and c.ms and c.label.startswith("JAX, %d" % scan_loop)]
        for (loop, label), case in sorted(mine.items()):
            if not label.endswith(", --xla"):
                continue
            ref = jit if loop == 1 else scan if loop == scan_loop else []
            if ref:
                ratio = statistics.median(case.ms) / statistics.median(ref[0].ms)
                verdict = "met" if ratio <= 1.0 else "not met"
                out.append("target %s: %s / %s = %.2f (%s)"
                           % (VARIANTS[variant][0], label, ref[0].label, ratio, verdict))
    return out


def tf_version(tf_python):
    proc = subprocess.run([tf_python, "-c", "from common.tf_compat import tf; print(tf.__version__)"],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    lines = proc.stdout.strip().splitlines()
    require(proc.returncode == 0 and lines, "--tf_python=%s cannot import TensorFlow through common.tf_compat: %s"
            % (tf_python, lines[-1] if lines else "no output"))
    return lines[-1]


def comma_list(text, allowed=None, kind=str):
    values = [kind(v) for v in text.split(",") if v.strip()]
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise ValueError()
    return values


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the table shows medians)")
    p.add_argument("--iterations", type=int, default=5000,
                   help="meta-iterations per run (a multiple of every --loops value and of --scan_loop)")
    p.add_argument("--loops", default="1,100", help="our --iterations_per_loop values, comma separated")
    p.add_argument("--xla", default="off,on", help="XLA modes of our runs: off, on (--xla), env (TF_XLA_FLAGS)")
    p.add_argument("--variants", default="maml,mtnet", help="maml, mtnet or both")
    p.add_argument("--jax_modes", default="jit,scan", help="jit, scan or both")
    p.add_argument("--scan_loop", type=int, default=100, help="meta-steps per JAX scan call")
    p.add_argument("--tf_python", default=os.path.join(REPO, ".venv-tf2", "bin", "python"),
                   help="interpreter(s) for our runs, comma separated (default: the repository's TF 2.x venv; "
                   "add .venv/bin/python for TF 1.15 rows in the same rounds)")
    p.add_argument("--jax_python", default=os.environ.get(JAX_ENV, ""),
                   help="scratch interpreter with JAX (default $%s; empty: JAX cases skipped)" % JAX_ENV)
    p.add_argument("--jax_xla_flags", default=None,
                   help="XLA_FLAGS of the JAX runs (default: this environment's), e.g. "
                   "'--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1': one thread, as our "
                   "regression runs have")
    p.add_argument("--timeout", type=int, default=900, help="seconds per run")
    p.add_argument("--lock", default="", help="hold this lock file (flock) while measuring")
    args = p.parse_args(argv)
    try:
        args.loops = comma_list(args.loops, kind=int)
        args.xla = comma_list(args.xla, XLA_MODES)
        args.variants = comma_list(args.variants, VARIANTS)
        args.jax_modes = comma_list(args.jax_modes, ("jit", "scan"))
    except ValueError:
        raise UserError("--loops takes positive integers; --xla off,on,env; --variants maml,mtnet; --jax_modes "
                        "jit,scan (comma separated)")
    require(args.rounds >= 1, "--rounds must be >= 1, got %d" % args.rounds)
    require(args.scan_loop >= 1 and args.loops and min(args.loops) >= 1, "--loops and --scan_loop must be >= 1")
    for n in args.loops + ([args.scan_loop] if "scan" in args.jax_modes else []):
        require(args.iterations >= 1 and args.iterations % n == 0,
                "--iterations=%d must be a positive multiple of %d (--loops, --scan_loop)" % (args.iterations, n))
    args.tf_python = [os.path.abspath(path) for path in args.tf_python.split(",") if path]
    args.jax_python = os.path.abspath(args.jax_python) if args.jax_python else ""
    require(args.tf_python, "--tf_python is empty")
    for name, paths in (("tf_python", args.tf_python), ("jax_python", [args.jax_python] if args.jax_python else [])):
        for path in paths:
            require(os.access(path, os.X_OK), "--%s=%s is not an executable interpreter" % (name, path))
    return args


@main_guard
def main(argv=None):
    args = parse_args(argv)
    printer = print
    cases = []
    for tf_python in args.tf_python:
        cases += tf_cases(args, tf_python, tf_version(tf_python))
    if args.jax_python:
        cases += jax_cases(args, args.jax_python)
    else:
        printer("skipped JAX cases: no --jax_python (set $%s to a scratch interpreter with JAX)" % JAX_ENV)
    lock = open(args.lock, "a") if args.lock else None
    try:
        if lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
        load = os.getloadavg()[0]
        run_rounds(cases, args.rounds, args.timeout, printer)
        loads = (load, os.getloadavg()[0])
    finally:
        if lock:
            lock.close()
    printer("")
    printer("cpu: %s" % cpu_description())
    printer("load average (1 min) before/after: %.2f / %.2f; %d meta-iterations per run" % (
        loads[0], loads[1], args.iterations))
    for header in sorted(set(case.header for case in cases if case.header)):
        printer(header)
    for line in table(cases, args.variants, args.rounds) + target_lines(cases, args.variants, args.scan_loop):
        printer(line)
    for case in cases:
        if case.skipped or case.failed:
            printer("%s %s (%s): %s" % ("skipped" if case.skipped else "FAILED", case.label, case.variant,
                                        case.skipped or case.failed))
    if any(case.failed for case in cases):
        sys.exit(1)


if __name__ == "__main__":
    main()
