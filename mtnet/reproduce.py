"""MT-net's paper tables (common/reproduce.py): upstream's experiment scripts (experiments/*.sh of
yoonholee/MT-net) for MAML, T-net and MT-net, then test mode (600 tasks; mean and 95% CI per inner step).

The sinusoid frequency is drawn from --sine_freq (default upstream's [0.8, 1.2], which the paper's code used;
MAML's paper fixes it at 1: --sine_freq=1).
"""
import re

from common.errors import UserError
from common.reproduce import Job, Measured
from mtnet import cpu_cost
from mtnet import paper

TABLES = {
    "sinusoid": "MT-net, sinusoid regression test MSE (K = 5, 10, 20), paper Table 1",
    "omniglot-5way": "MT-net, Omniglot 5-way 1- and 5-shot test accuracy (%), paper Table 2",
    "omniglot-20way": "MT-net, Omniglot 20-way 1- and 5-shot test accuracy (%), paper Table 2",
    "miniimagenet": "MT-net, miniImageNet 5-way 1-shot test accuracy (%), paper Table 2",
}
DEFAULT_TABLE = "sinusoid"
DIGITS = 3
MEASURED_ON = cpu_cost.MEASURED_ON
VARIANTS = {"MAML": dict(use_T=False, use_M=False, share_M=False),
            "T-net": dict(use_T=True, use_M=False, share_M=False),
            "MT-net": dict(use_T=True, use_M=True, share_M=True)}

# experiments/sine.sh (update_lr .01 of its .01/.04/.1), omniglot.sh, miniimagenet.sh (5 inner steps)
SINE = dict(datasource="sinusoid", metatrain_iterations=60000, meta_batch_size=4, update_lr=0.01, norm="None")
OMNIGLOT = {5: dict(datasource="omniglot", metatrain_iterations=40000, meta_batch_size=32, num_classes=5,
                    num_updates=1, update_lr=0.4),
            20: dict(datasource="omniglot", metatrain_iterations=40000, meta_batch_size=16, num_classes=20,
                     num_updates=1, update_lr=0.1)}
MINI = dict(datasource="miniimagenet", metatrain_iterations=60000, meta_batch_size=4, num_classes=5,
            num_updates=5, update_lr=0.01, num_filters=32, max_pool=True)
QUICK_SINE = dict(metatrain_iterations=20, meta_batch_size=2, num_test_tasks=20, print_interval=10)
QUICK_IMAGES = dict(metatrain_iterations=2, meta_batch_size=1, num_filters=4, num_test_tasks=4, print_interval=1,
                    test_num_updates=2)


def add_arguments(parser):
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated rows: MAML, T-net, MT-net (default all)")
    parser.add_argument("--sine_freq", default="0.8,1.2",
                        help="sinusoid frequency range (upstream's default), or 1 as in the MAML paper")
    parser.add_argument("--omniglot_train_chars", type=int, default=1100,
                        help="omniglot characters of meta-training (upstream 1100; lower it for a small folder)")
    parser.add_argument("--omniglot_test_chars", type=int, default=100,
                        help="omniglot characters of the test split (upstream 100)")


UPDATE_LINE = re.compile(r"^update(\d+): mean (\S+) std \S+ ci95 (\S+)$", re.M)


def _parser(steps, scale, what):
    """Reads test mode's per-step lines: the named inner steps, scaled (accuracy to %)."""
    def parse(output):
        lines = {int(m.group(1)): (float(m.group(2)), float(m.group(3))) for m in UPDATE_LINE.finditer(output)}
        found = {}
        for step in steps(max(lines) if lines else 0):
            if step in lines:
                mean, ci = lines[step]
                found["%s after %d inner step%s" % (what, step, "" if step == 1 else "s")] = Measured(
                    scale * mean, scale * ci, None)
        return found
    return parse


def _argv(flags):
    return ["--%s=%s" % (k, v) for k, v in sorted(flags.items())]


def _variants(args):
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise UserError("--variants: unknown %s (choose from %s)" % (", ".join(unknown) or "none",
                                                                     ", ".join(VARIANTS)))
    return names


def _rows(args):
    """(row name, paper, flags, parse) of the table."""
    if args.table == "sinusoid":
        parse = _parser(lambda last: (1, last), 1.0, "MSE")
        return [("%s K=%d" % (v, k), paper.SINUSOID[(v, k)],
                 dict(SINE, update_batch_size=k, sine_freq=args.sine_freq, **VARIANTS[v]), parse)
                for k in (5, 10, 20) for v in _variants(args)]
    parse = _parser(lambda last: (last,), 100.0, "accuracy")
    if args.table == "miniimagenet":
        return [("%s 5-way 1-shot" % v, paper.classification("miniimagenet", 5, 1, v),
                 dict(MINI, update_batch_size=1, data_path=args.data_path, test_set=True, **VARIANTS[v]), parse)
                for v in _variants(args)]
    ways = int(args.table.split("-")[1][:-3])
    return [("%s %d-way %d-shot" % (v, ways, shots), paper.classification("omniglot", ways, shots, v),
             dict(OMNIGLOT[ways], update_batch_size=shots, data_path=args.data_path, test_set=True,
                  omniglot_train_chars=args.omniglot_train_chars, omniglot_test_chars=args.omniglot_test_chars,
                  **VARIANTS[v]), parse)
            for shots in (1, 5) for v in _variants(args)]


def jobs(args):
    out = []
    for name, paper_row, flags, parse in _rows(args):
        if args.quick:
            flags.update(QUICK_SINE if args.table == "sinusoid" else QUICK_IMAGES)
        flags["logdir"] = "%s/mtnet_%s" % (args.out, args.table)     # upstream's experiment names tell rows apart
        train = ["main.py"] + _argv(flags)
        test = ["main.py", "--train=False"] + _argv(flags)
        shown = " ".join(a for a in _argv(flags) if not a.startswith(("--logdir", "--data_path")))
        out.append(Job(name, paper_row, [train, test], parse, shown))
    return out


def estimate(args, jobs):
    """CPU time of the sinusoid rows (mtnet/cpu_cost.py); the image tables' step times are not measured here."""
    phases = []
    if args.table != "sinusoid":
        return phases
    for job in jobs:
        flags = dict(a[2:].split("=", 1) for a in job.commands[0][1:])
        phases += cpu_cost.estimate(train_steps=int(flags["metatrain_iterations"]),
                                    meta_batch_size=int(flags["meta_batch_size"]))
    return phases
