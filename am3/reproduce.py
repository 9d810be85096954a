"""AM3's paper tables (common/reproduce.py): train each variant with upstream's settings for the table's data set
and shots (the commands of ElementAI/am3's readme), then test it with the paper's protocol.

Upstream's readme gives commands for AM3-ProtoNets++ and AM3-TADAM; the bases ProtoNets++ and TADAM run the same
settings without the AM3-only flags (g, the mixing network and their dropout and decay).
"""
import os
import re

from am3 import cpu_cost
from am3.paper import ACCURACY
from common.ascend_flags import str2bool
from common.errors import UserError
from common.reproduce import Job, Measured

TABLES = {
    "mini-1shot": "AM3, miniImageNet 5-way 1-shot test accuracy (%), paper Table 1",
    "mini-5shot": "AM3, miniImageNet 5-way 5-shot test accuracy (%), paper Table 1",
    "tiered-1shot": "AM3, tieredImageNet 5-way 1-shot test accuracy (%), paper Table 2",
    "tiered-5shot": "AM3, tieredImageNet 5-way 5-shot test accuracy (%), paper Table 2",
}
DEFAULT_TABLE = "mini-1shot"
DIGITS = 2
MEASURED_ON = cpu_cost.MEASURED_ON
VARIANTS = ("protonet++", "AM3_protonet++", "tadam", "AM3_TADAM")
SCRIPTS = {name: name + ".py" for name in VARIANTS}

# Upstream readme, per table: AM3-ProtoNets++ and AM3-TADAM commands (flags beyond the scripts' defaults).
ONE_SHOT = dict(num_tasks_per_batch=5, num_shots_train=1, num_shots_test=1, train_batch_size=24)
TIERED = dict(num_steps_decay_pwc=10000, number_of_steps=80000)
AM3_MIXING = dict(mlp_dropout=0.7, att_input="word", task_encoder="self_att_mlp", mlp_type="non-linear",
                  mlp_weight_decay=0.001)
TADAM_MINI = dict(feat_extract_pretrain="multitask", encoder_classifier_link="cbn", num_cases_test=100000,
                  activation_mlp="relu", att_dropout=0.7, att_type="non-linear", att_weight_decay=0.001,
                  **AM3_MIXING)
TADAM_TIERED = dict(feat_extract_pretrain="multitask", encoder_classifier_link="cbn", num_cases_test=100000,
                    num_classes_pretrain=351, att_dropout=0.9, mlp_dropout=0.9, **TIERED)
UPSTREAM = {
    ("mini", 1, "AM3_protonet++"): dict(ONE_SHOT, **AM3_MIXING),
    ("tiered", 1, "AM3_protonet++"): dict(ONE_SHOT, **dict(TIERED, **AM3_MIXING)),
    ("mini", 5, "AM3_protonet++"): dict(AM3_MIXING),
    ("tiered", 5, "AM3_protonet++"): dict(TIERED, **AM3_MIXING),
    ("mini", 1, "AM3_TADAM"): dict(ONE_SHOT, metric_multiplier_init=5, **TADAM_MINI),
    ("tiered", 1, "AM3_TADAM"): dict(ONE_SHOT, metric_multiplier_init=5, **TADAM_TIERED),
    ("mini", 5, "AM3_TADAM"): dict(metric_multiplier_init=7, **TADAM_MINI),
    ("tiered", 5, "AM3_TADAM"): dict(metric_multiplier_init=7, **TADAM_TIERED),
}
AM3_ONLY = re.compile(r"^(mlp_|att_|activation_mlp$|task_encoder$)")
BASE_OF = {"protonet++": "AM3_protonet++", "tadam": "AM3_TADAM"}
UPSTREAM_TEST_QUERIES = 50000     # upstream's default num_cases_test (500 episodes of 100 queries)

# --quick: the same commands at toy scale (tiny backbone, a few steps, a few test episodes).
QUICK = dict(number_of_steps=4, num_filters=4, num_blocks=2, num_units_in_block=1, num_max_pools=2,
             cbn_num_layers=2, num_tasks_per_batch=1, train_batch_size=4, pre_train_batch_size=8,
             eval_interval_steps=0, eval_interval_fine_steps=0, log_interval_steps=1, num_steps_decay_pwc=1,
             eval_batch_size=5, num_cases_test=20, save_checkpoint_steps=4, seed=1)


def add_arguments(parser):
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated rows to run, of %s (default all)" % ", ".join(VARIANTS))
    parser.add_argument("--upstream_eval", type=str2bool, default=False,
                        help="also test each TADAM-based variant as upstream did (FiLM multipliers and "
                             "power_weight1 left at their initial values; see am3/README.md)")


def table_key(name):
    dataset, shots = name.split("-")
    return dataset, int(shots[0])


def settings(dataset, shots, variant):
    """Upstream's flags of one row (without the data and log folders)."""
    if variant in BASE_OF:
        flags = {k: v for k, v in UPSTREAM[(dataset, shots, BASE_OF[variant])].items() if not AM3_ONLY.match(k)}
    else:
        flags = dict(UPSTREAM[(dataset, shots, variant)])
    flags.setdefault("num_cases_test", UPSTREAM_TEST_QUERIES)
    return flags


def _argv(flags):
    return ["--%s=%s" % (k, v) for k, v in sorted(flags.items())]


def _data_dir(args, dataset):
    sub = os.path.join(args.data_path, "mini-imagenet" if dataset == "mini" else "tiered-imagenet")
    return sub if os.path.isdir(sub) else args.data_path


TEST_LINE = re.compile(r"^accuracy_target_tst: ([0-9.]+) \+- ([0-9.]+) \(95% confidence interval; "
                       r"(\d+)-way (\d+)-shot, (\d+) episodes x (\d+) queries(.*)$", re.M)


def parse(output):
    """{evaluation: Measured} from the test lines: ours, and upstream's when it ran (percent)."""
    found = {}
    for m in TEST_LINE.finditer(output):
        name = "upstream's evaluation (FiLM off)" if "upstream's evaluation" in m.group(7) else "ours"
        found[name] = Measured(100 * float(m.group(1)), 100 * float(m.group(2)),
                               "%s episodes x %s queries" % (m.group(5), m.group(6)))
    return found


def jobs(args):
    dataset, shots = table_key(args.table)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise UserError("--variants: unknown %s (choose from %s)" % (", ".join(unknown) or "none", ", ".join(VARIANTS)))
    out = []
    for variant in variants:
        flags = settings(dataset, shots, variant)
        if args.quick:
            flags.update(QUICK)
            flags.pop("num_classes_pretrain", None)     # tiny data: the default 64 covers its classes
        log_dir = "%s/am3_%s_%s" % (args.out, args.table, variant)
        common = ["--data_dir=%s" % _data_dir(args, dataset), "--log_dir=%s" % log_dir] + _argv(flags)
        commands = [[SCRIPTS[variant]] + common, [SCRIPTS[variant], "--mode=test"] + common]
        if args.upstream_eval and flags.get("encoder_classifier_link") == "cbn":
            commands.append([SCRIPTS[variant], "--mode=test", "--upstream_eval=True"] + common)
        shown = " ".join(a for a in _argv(flags))
        out.append(Job(variant, ACCURACY[(dataset, shots)][variant], commands, parse, shown))
    return out


def estimate(args, jobs):
    phases = []
    for job in jobs:
        flags = dict(a[2:].split("=", 1) for a in job.commands[0][1:] if a.startswith("--"))
        queries = int(flags.get("eval_batch_size", 100))
        tests = len(job.commands) - 1
        phases += cpu_cost.estimate(train_steps=int(flags.get("number_of_steps", 30000)),
                                    num_filters=int(flags.get("num_filters", 64)), eval_batch_size=queries,
                                    num_cases_test=tests * int(flags["num_cases_test"]), validate=1)
    return phases
