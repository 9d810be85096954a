"""Paired SWA-vs-SGD accuracy over many initialisation/shuffle seeds: runs the seed script once per seed (its
SWA run and plain-SGD baseline start from the same weights and see the same batch order) and summarises the
per-seed differences: mean with a 95% t interval, wins/ties/losses and a two-sided sign test.

    python swa/compare_seeds.py --seeds=2-21 [--jobs=2 | --lock=/tmp/bench.lock] [--log_dir=DIR] [-- script flags]
"""
import concurrent.futures
import fcntl
import json
import math
import os
import subprocess
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))

from common.errors import ArgumentParser, main_guard  # noqa: E402  (after the repository joins sys.path)

SCRIPT = os.path.join(_HERE, "train-tf.keras-npu.py")
# (label, key of the SWA accuracy, key of the SGD accuracy) in the seed script's `results:` line
METRICS = (("test split", "test_accuracy_swa", "test_accuracy_sgd"),
           ("fresh points", "population_accuracy_swa", "population_accuracy_sgd"))


def parse_seeds(text):
    """'2-21' or '2,5,7-9' -> sorted list of distinct ints."""
    seeds = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError(part)
                seeds.update(range(lo, hi + 1))
            else:
                seeds.add(int(part))
        except ValueError:
            raise SystemExit("error: --seeds must look like 2-21 or 2,5,7-9, got %r" % text)
    if not seeds:
        raise SystemExit("error: --seeds is empty")
    return sorted(seeds)


def sign_test(wins, losses):
    """Two-sided exact sign test p-value (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.factorial(n) // (math.factorial(i) * math.factorial(n - i)) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def paired_summary(swa, sgd):
    """Mean paired difference swa - sgd, its 95% t interval, wins/ties/losses and the sign-test p-value."""
    diffs = [a - b for a, b in zip(swa, sgd)]
    n = len(diffs)
    mean = sum(diffs) / n
    if n > 1:
        from scipy import stats      # a Keras dependency, so always present
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    else:
        sd, half = float("nan"), float("nan")
    wins = sum(d > 0 for d in diffs)
    losses = sum(d < 0 for d in diffs)
    return {"n": n, "mean_swa": sum(swa) / n, "mean_sgd": sum(sgd) / n, "mean_diff": mean, "sd_diff": sd,
            "ci95": (mean - half, mean + half), "wins": wins, "ties": n - wins - losses, "losses": losses,
            "sign_test_p": sign_test(wins, losses)}


def _results_line(text):
    lines = [line for line in text.splitlines() if line.startswith("results: ")]
    return json.loads(lines[-1][len("results: "):]) if lines else None


def run_seed(seed, extra_args, lock, log_dir, reuse=False):
    """One seed-script run (under the lock if given); returns its `results:` dictionary. With `reuse`, a
    finished log of this seed in log_dir is read instead (to resume an interrupted comparison)."""
    log = os.path.join(log_dir, "seed_%d.log" % seed) if log_dir else None
    if reuse and log and os.path.exists(log):
        with open(log) as f:
            text = f.read()
        if "command: %s\n" % " ".join(extra_args) in text and _results_line(text) is not None:
            return _results_line(text)
    cmd = [sys.executable, SCRIPT, "--seed=%d" % seed] + list(extra_args)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    lock_file = open(lock, "a") if lock else None
    try:
        if lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                              universal_newlines=True)
    finally:
        if lock_file:
            lock_file.close()       # releases the lock
    if log:
        with open(log, "w") as f:
            f.write("command: %s\n" % " ".join(extra_args) + proc.stdout)
    result = _results_line(proc.stdout)
    if proc.returncode != 0 or result is None:
        tail = "\n".join(proc.stdout.splitlines()[-5:])
        raise SystemExit("error: the seed script failed for --seed=%d (exit %d):\n%s" % (seed, proc.returncode, tail))
    return result


def report(rows, printer=print):
    """Print every pair and the paired summary per metric; returns {label: summary}."""
    summaries = {}
    for label, swa_key, sgd_key in METRICS:
        pairs = [(r["seed"], r[swa_key], r[sgd_key]) for r in rows if swa_key in r and sgd_key in r]
        if not pairs:
            continue
        printer("\n%s accuracy (seed: swa sgd swa-sgd)" % label)
        for seed, a, b in pairs:
            printer("  seed %3d: %.5f %.5f %+.5f" % (seed, a, b, a - b))
        s = paired_summary([a for _, a, _ in pairs], [b for _, _, b in pairs])
        summaries[label] = s
        printer("  %s: mean swa %.5f, sgd %.5f; paired difference %+.5f, 95%% CI [%+.5f, %+.5f]; "
                "wins/ties/losses %d/%d/%d; sign test p=%.3f"
                % (label, s["mean_swa"], s["mean_sgd"], s["mean_diff"], s["ci95"][0], s["ci95"][1],
                   s["wins"], s["ties"], s["losses"], s["sign_test_p"]))
    return summaries


@main_guard
def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2-21", help="seeds to run, e.g. 2-21 or 2,5,7-9")
    parser.add_argument("--population_samples", type=int, default=1000000,
                        help="fresh points of the same blobs each model is also scored on (0: off)")
    parser.add_argument("--lock", default="", help="hold this lock file (flock) during each run")
    parser.add_argument("--log_dir", default="", help="keep each run's log here; a rerun reuses finished ones")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at the same time (not with --lock)")
    parser.add_argument("script_args", nargs="*", help="after --: more flags for train-tf.keras-npu.py")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)
    extra = ["--population_samples=%d" % args.population_samples] + args.script_args
    if args.jobs < 1 or (args.jobs > 1 and args.lock):
        raise SystemExit("error: --jobs must be >= 1, and 1 with --lock (timed runs must not overlap)")
    rows = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = [pool.submit(run_seed, seed, extra, args.lock, args.log_dir, True) for seed in seeds]
        for seed, future in zip(seeds, runs):
            result = future.result()
            result["seed"] = seed
            rows.append(result)
            _print_seed(seed, result)
    report(rows)
    if args.log_dir:
        with open(os.path.join(args.log_dir, "results.json"), "w") as f:
            json.dump(rows, f, indent=1, sort_keys=True)


def _print_seed(seed, result):
    fresh = ""
    if "population_accuracy_swa" in result:
        fresh = "; fresh points swa=%.5f sgd=%.5f bayes=%.5f" % (
            result["population_accuracy_swa"], result["population_accuracy_sgd"], result["population_accuracy_bayes"])
    print("seed %d: test swa=%.5f sgd=%.5f bayes=%.5f%s" % (
        seed, result["test_accuracy_swa"], result["test_accuracy_sgd"], result["test_accuracy_bayes"], fresh),
        flush=True)


if __name__ == "__main__":
    main()
