"""Porting precision (common/precision.py): reference dumps named as Ascend's tools read them, the same
deterministic step on TF 1.15 and TF 2.x comparing as PASS for every model, a planted change named as the first
failing op, identical dumps from two deterministic runs, a planted NaN traced to its op, and the precision
controls on both routes."""
import csv
import os
import json
import re
import shutil
import sys

import numpy as np
import pytest

from common import fallback, npu_session, precision, precision_compare
from common.errors import UserError
from common.tf_compat import tf
from conftest import REPO, run, run_python

STACKS = {"tf1": os.path.join(REPO, ".venv", "bin", "python"), "tf2": os.path.join(REPO, ".venv-tf2", "bin", "python")}
# MindStudio "Dump File Naming Conventions": {op_name}.{output_index}.{timestamp}.npy, op_name in [A-Za-z0-9_-],
# a 16-digit timestamp.
ASCEND_NPY = re.compile(r"^[A-Za-z0-9_-]+\.[0-9]+\.[0-9]{16}\.npy$")


def tiny_graph(directory, step=0, epsilon=1e-3, nan=False):
    """A dense layer, batch norm and a loss trained 2 steps in-process; dumps `step` into directory."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(1)
        x = tf.compat.v1.placeholder(tf.float32, [4, 3], name="x")
        h = tf.compat.v1.layers.dense(x, 5, name="dense")
        if nan:
            h = tf.math.log(h - 1e3, name="planted_log")   # log of a negative number
        h = tf.compat.v1.layers.batch_normalization(h, epsilon=epsilon, training=True, name="bn")
        loss = tf.reduce_mean(tf.square(tf.nn.relu(h)), name="loss")
        train = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(loss)
        init = tf.compat.v1.global_variables_initializer()
    dump = precision.StepDump(str(directory), step)
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(init)
        for i in range(2):
            dump.run(sess, [loss, train], i, {x: np.arange(12.0).reshape(4, 3) * (i + 1)}, loss=loss)
    return directory


def compare(reference, candidate, tmp_path, *extra):
    return run_python(["-m", "common.precision", "compare", reference, candidate,
                       "--output", tmp_path / "result.csv"] + list(extra), check=False)


def test_dump_files_are_named_as_ascends_comparison_tool_reads_them(tmp_path):
    tiny_graph(tmp_path / "d")
    names = sorted(os.listdir(str(tmp_path / "d")))
    npys = [n for n in names if n.endswith(".npy")]
    assert names == sorted(npys + ["manifest.csv"])     # one flat directory: no tfdbg tree left behind
    assert npys and all(ASCEND_NPY.match(n) for n in npys), npys
    with open(str(tmp_path / "d" / "manifest.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["order"]) for r in rows] == list(range(len(rows)))
    assert sorted(r["file"] for r in rows) == npys
    by_tensor = {r["tensor"]: r for r in rows}
    # the node name with '/' -> '_', its output index; executed after its inputs; the loss marked
    mm = by_tensor["dense/BiasAdd:0"]    # what ran: grappler fuses MatMul and BiasAdd on the CPU
    assert mm["file"].startswith("dense_BiasAdd.0.") and mm["op_type"].endswith(("BiasAdd", "FusedMatMul"))
    assert mm["shape"] == "4x5" and mm["dtype"] == "float32" and mm["step"] == "0"
    assert mm["tf_version"] == tf.__version__
    for name in mm["inputs"].split(";"):
        if name in by_tensor:
            assert int(by_tensor[name]["order"]) < int(mm["order"])
    assert by_tensor["loss:0"]["role"] == "loss"
    np.testing.assert_array_equal(np.load(str(tmp_path / "d" / mm["file"])).shape, (4, 5))


def test_a_second_dump_into_the_same_directory_is_refused(tmp_path):
    tiny_graph(tmp_path / "d")
    with pytest.raises(UserError, match="already holds a dump"):
        tiny_graph(tmp_path / "d")


def test_identical_dumps_pass_and_a_changed_epsilon_is_named_first(tmp_path):
    tiny_graph(tmp_path / "a")
    tiny_graph(tmp_path / "b")
    same = compare(tmp_path / "a", tmp_path / "b", tmp_path)
    assert same.returncode == 0 and "PASS" in same.stdout, same.stdout
    tiny_graph(tmp_path / "eps", epsilon=0.5)
    changed = compare(tmp_path / "a", tmp_path / "eps", tmp_path)
    assert changed.returncode == 1, changed.stdout
    first = changed.stdout.split("FAIL: first op past the thresholds, in the reference's execution order: ")[1]
    assert first.startswith("bn/batchnorm/add/y:0 (Const")      # the epsilon constant itself
    assert "spreads to the loss loss:0" in changed.stdout
    with open(str(tmp_path / "result.csv")) as f:
        header = next(csv.reader(f))
    assert header[:9] == ["Index", "OpType", "NPUDump", "DataType", "Address", "GroundTruth", "DataType",
                          "TensorIndex", "Shape"]
    assert header[9:19] == list(precision_compare.METRICS)


def test_one_op_computing_otherwise_is_named_with_agreeing_inputs(tmp_path):
    """The candidate's Relu output is changed, its input is not: that op is the first failing one."""
    tiny_graph(tmp_path / "a")
    tiny_graph(tmp_path / "b")
    manifest = {r["tensor"]: r for r in csv.DictReader(open(str(tmp_path / "b" / "manifest.csv")))}
    target = str(tmp_path / "b" / manifest["Relu:0"]["file"])
    np.save(target, np.load(target) * 1.5 + 0.5)
    proc = compare(tmp_path / "a", tmp_path / "b", tmp_path)
    assert proc.returncode == 1
    assert "execution order: Relu:0 (Relu" in proc.stdout, proc.stdout
    assert "its inputs agree (bn/batchnorm/add_1:0: cosine 1.000000, max abs error 0)" in proc.stdout


def test_metrics_follow_msaccucmps_definitions():
    g = np.array([1.0, 2.0, 0.0, -4.0])
    a = np.array([1.0, 2.5, 0.0, -4.0])
    m = precision_compare.metrics(a, g)
    assert m["CosineSimilarity"] == pytest.approx(np.dot(a, g) / np.linalg.norm(a) / np.linalg.norm(g))
    assert m["MaxAbsoluteError"] == pytest.approx(0.5)
    assert m["RelativeEuclideanDistance"] == pytest.approx(0.5 / np.linalg.norm(g))
    assert m["MeanAbsoluteError"] == pytest.approx(0.125)
    assert m["RootMeanSquareError"] == pytest.approx(np.sqrt(0.25 / 4))
    assert m["MaxRelativeError"] == pytest.approx(0.25)          # zeros of the reference are left out
    assert m["MeanRelativeError"] == pytest.approx(0.25 / 3)
    assert m["AccumulatedRelativeError"] == pytest.approx(0.25)
    assert precision_compare.metrics(g, g)["KullbackLeiblerDivergence"] == pytest.approx(0.0, abs=1e-12)
    assert precision_compare.metrics(np.zeros(3), np.zeros(3))["CosineSimilarity"] == 1.0


def test_an_msaccucmp_result_gives_its_first_failing_row(tmp_path):
    path = tmp_path / "result_20240101.csv"
    with open(str(path), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Index", "OpType", "NPUDump", "DataType", "Address", "GroundTruth", "DataType", "TensorIndex",
                    "Shape", "CosineSimilarity", "RelativeEuclideanDistance"])
        w.writerow([0, "Conv2D", "conv1", "float16", "NaN", "conv1", "float32", "conv1:output:0", "[1]", "0.9999",
                    "0.001"])
        w.writerow([1, "Add", "add_1", "float16", "NaN", "*", "NaN", "add_1:output:0", "[1]", "NaN", "NaN"])
        w.writerow([2, "BNTrainingUpdate", "bn/FusedBatchNormV3", "float16", "NaN", "bn/FusedBatchNormV3",
                    "float32", "bn/FusedBatchNormV3:output:0", "[1]", "0.93", "0.2"])
        w.writerow([3, "Relu", "relu", "float16", "NaN", "relu", "float32", "relu:output:0", "[1]", "0.5", "0.9"])
    proc = run_python(["-m", "common.precision", "compare", path], check=False)
    assert proc.returncode == 1
    assert "first failing row: Index 2, OpType BNTrainingUpdate, NPUDump bn/FusedBatchNormV3" in proc.stdout


@pytest.mark.parametrize("args,message", [
    (["compare", "/nonexistent", "/nonexistent2"], "error: /nonexistent is not a dump directory"),
    (["compare", "/nonexistent.csv"], "error: compare: give REFERENCE and CANDIDATE"),
    (["compare", "a", "b", "--cosine=2"], "error: --cosine must be in (0, 1]"),
    (["frobnicate"], "error: python -m common.precision: argument command: invalid choice"),
    (["numerics", "/nonexistent"], "error: /nonexistent is not a dump directory"),
])
def test_bad_input_is_one_line_with_status_2(args, message):
    proc = run_python(["-m", "common.precision"] + args, check=False)
    assert proc.returncode == 2 and message in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stdout


def test_a_planted_nan_is_traced_to_the_op_that_made_it(tmp_path):
    tiny_graph(tmp_path / "d", nan=True)
    proc = run_python(["-m", "common.precision", "numerics", tmp_path / "d"], check=False)
    assert proc.returncode == 1
    assert "first non-finite output: planted_log:0 (Log, #" in proc.stdout, proc.stdout
    assert "input sub:0: float32 [4, 5], [" in proc.stdout      # its input's range, all finite
    clean = run_python(["-m", "common.precision", "numerics", tiny_graph(tmp_path / "ok")], check=False)
    assert clean.returncode == 0 and "is finite" in clean.stdout


def test_a_constant_holding_nan_and_what_passes_it_on_are_not_the_first_non_finite_op(tmp_path):
    """TF 2.x's sparse softmax cross-entropy keeps a NaN constant (and a BroadcastTo of it, which grappler may fold
    into a Const) for labels out of range: in every step's dump, made by no op; the op that made a NaN is named."""
    directory = tmp_path / "d"
    directory.mkdir()
    values = [("xent/Const:0", "Const", "", np.array(np.nan, np.float32)),
              ("xent/BroadcastTo:0", "BroadcastTo", "xent/Const:0", np.array([np.nan] * 2, np.float32)),
              ("sub:0", "Sub", "", np.array([-2.0, -1.0], np.float32)),
              ("planted_log:0", "Log", "sub:0", np.array([np.nan, np.nan], np.float32)),
              ("relu:0", "Relu", "planted_log:0", np.array([np.nan, np.nan], np.float32))]
    rows = []
    for order, (tensor, op_type, inputs, value) in enumerate(values):
        name = precision.npy_name(tensor.split(":")[0], 0, 1700000000000000 + order)
        np.save(str(directory / name), value)
        rows.append({"order": order, "file": name, "tensor": tensor, "op_type": op_type, "dtype": "float32",
                     "shape": str(value.size), "inputs": inputs, "role": "", "step": 0, "tf_version": "2.15.1",
                     "route": "CPU", "precision": "fp32"})
    precision.write_manifest(str(directory), rows)
    proc = run_python(["-m", "common.precision", "numerics", directory], check=False)
    assert proc.returncode == 1
    assert "first non-finite output: planted_log:0 (Log, #3)" in proc.stdout, proc.stdout
    assert "left out 2 outputs holding NaN/Inf from graph constants (made by no op of the step): xent/Const:0, " \
        "xent/BroadcastTo:0\n" in proc.stdout
    del rows[2:]
    precision.write_manifest(str(directory), rows)
    proc = run_python(["-m", "common.precision", "numerics", directory], check=False)
    assert proc.returncode == 0 and "is finite" in proc.stdout, proc.stdout


def test_fp32_values_beyond_fp16_are_listed(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    np.save(str(directory / "big.0.1700000000000001.npy"), np.array([1.0, 7e4], np.float32))
    np.save(str(directory / "small.0.1700000000000002.npy"), np.array([1.0, 6e4], np.float32))
    proc = run_python(["-m", "common.precision", "numerics", directory], check=False)
    assert "1 fp32 tensors exceed fp16's range" in proc.stdout and "big:0" in proc.stdout
    assert "small:0" not in proc.stdout


# --- every model: the same deterministic step on TF 1.15 and TF 2.x, and twice on one stack -------------------

def _python(stack):
    if not os.path.exists(STACKS[stack]):
        pytest.skip("no %s stack at %s" % (stack, STACKS[stack]))
    return STACKS[stack]


def _am3_data(root):
    from conftest import make_am3_data as make_data
    return make_data(str(root / "am3data"))


def _mnv3_data(root):
    from conftest import make_image_folder as make_folder
    make_folder(root / "mnv3" / "train", 8)
    make_folder(root / "mnv3" / "validation", 2, seed=1)
    return str(root / "mnv3")


def _am3(root, run_dir, steps):
    from conftest import AM3_TINY as TINY
    return ["am3/AM3_protonet++.py", "--data_path", _am3_data(root), "--log_dir", run_dir,
            "--train_steps=%d" % steps] + TINY


def _mtnet(root, run_dir, steps):
    return ["mtnet/main.py", "--logdir=%s" % run_dir, "--metatrain_iterations=%d" % steps, "--print_interval=1",
            "--log=False", "--meta_batch_size=2", "--update_batch_size=5", "--seed=1"]


def _mnv3(root, run_dir, steps):
    # RMSProp (the paper recipe): Adam turns round-off in gradients that are zero in exact arithmetic (a BN
    # beta before another BN) into whole updates, so the stacks' updates of those betas point elsewhere.
    return ["mobilenetv3/train_cls.py", "--data_path=" + _mnv3_data(root), "--image_size=32", "--batch=4",
            "--max_step=%d" % steps, "--save_interval=1", "--log_every=1", "--recipe=paper", "--modeldir=%s" % run_dir]


def _swa(root, run_dir, steps):
    return ["swa/train-tf.keras-npu.py", "--train_epochs=2", "--batch_size=512",
            "--num_samples=3000", "--swa_start=1", "--swa_freq=1", "--baseline=False", "--model_dir=%s" % run_dir]


# model: (arguments, checkpointed steps both stacks resume from (0: both start from the seeded initialiser)).
# AM3 and MobileNetV3 initialise differently on the two stacks: like Ascend's workflow, both start from one
# checkpoint (trained here on TF 1.15) and dump the next step.
MODELS = {"am3": (_am3, 2), "mtnet": (_mtnet, 0), "mobilenetv3": (_mnv3, 1), "swa": (_swa, 0)}


def _dump(model, stack, tmp_path, name, base=None, step=None, plant=None, check=True):
    """Run `model` on `stack` with --deterministic and dump the step after its checkpoint (or step 1); plant
    (KIND) runs it through test/precision_plant.py with one layer planted."""
    build, resume = MODELS[model]
    run_dir = tmp_path / ("run_" + name)
    if base is not None:
        shutil.copytree(str(base), str(run_dir))
    step = (resume or 1) if step is None else step
    hook = [os.path.join(REPO, "test", "precision_plant.py"), model, plant] if plant else []
    proc = run([_python(stack)] + hook + build(tmp_path, run_dir, step + 1)
               + ["--deterministic", "--reference_dump=%s" % (tmp_path / name), "--reference_dump_step=%d" % step],
               timeout=900, check=check)
    out = proc.stdout
    assert "deterministic run: seed " in out and "reference dump: step %d, " % step in out, out[-3000:]
    if plant:
        planted = set()
        for line in re.findall(r"^planted %s in: (.*)$" % plant, out, re.M):
            planted.update(line.split(","))
        assert planted, out[-3000:]
        return tmp_path / name, planted
    return tmp_path / name


def _base(model, tmp_path):
    build, resume = MODELS[model]
    if not resume:
        return None
    run([_python("tf1")] + build(tmp_path, tmp_path / "base", resume) + ["--deterministic"], timeout=900)
    return tmp_path / "base"


@pytest.mark.parametrize("model", sorted(MODELS))
def test_the_same_deterministic_step_on_tf115_and_tf2_compares_as_pass(tmp_path, model):
    base = _base(model, tmp_path)
    reference = _dump(model, "tf1", tmp_path, "tf1", base)
    candidate = _dump(model, "tf2", tmp_path, "tf2", base)
    proc = compare(reference, candidate, tmp_path)
    assert proc.returncode == 0 and "\nPASS: every compared tensor" in proc.stdout, proc.stdout
    compared = int(proc.stdout.split("compared ")[1].split()[0])
    counts = proc.stdout.split("(")[1].split(")")[0].split()
    # most of the step is compared, not skipped (TF 1.15 writes each map_fn iteration of MT-net, TF 2.x fewer)
    assert compared > 0.6 * min(int(counts[0]), int(counts[4])), proc.stdout
    rows = list(csv.DictReader(open(str(reference / "manifest.csv"))))
    assert any(r["role"] == "loss" for r in rows) and {r["tf_version"] for r in rows} == {"1.15.5"}


def _tensors(directory):
    """The dump's values by (tensor, occurrence), but assignments' outputs: the variable itself when dumped,
    before or after the other tower's update of a shared BN (compare leaves them out too)."""
    rows = [r for r in csv.DictReader(open(str(directory / "manifest.csv")))
            if r["op_type"] not in precision_compare.ALIASING_UPDATES]
    seen, values = {}, {}
    for row in rows:
        n = seen[row["tensor"]] = seen.get(row["tensor"], -1) + 1
        values[(row["tensor"], n)] = np.load(str(directory / row["file"]))
    return values


@pytest.mark.parametrize("model", sorted(MODELS))
def test_two_deterministic_runs_give_identical_dumps(tmp_path, model):
    stack = _this_stack()
    first, second = _tensors(_dump(model, stack, tmp_path, "a")), _tensors(_dump(model, stack, tmp_path, "b"))
    assert sorted(first) == sorted(second)
    differing = [key for key in first if (first[key].dtype, first[key].shape, first[key].tobytes())
                 != (second[key].dtype, second[key].shape, second[key].tobytes())]     # bit for bit
    assert not differing, differing[:5]


def _this_stack():
    return "tf2" if sys.version_info >= (3, 8) else "tf1"


# --- every model: a planted change and a planted NaN in its real training step (test/precision_plant.py) ------

@pytest.fixture(scope="module")
def first_step(tmp_path_factory):
    """first_step(model, plant=None): (dump, planted node names) of the model's first training step on this stack,
    clean or with one layer planted, each made once for the module. Step 0: both runs start from the same seeded
    weights (a planted change leaves the graph's op count, hence the initialisers' op seeds, as they are); after
    it their weights differ."""
    made = {}

    def get(model, plant=None):
        if (model, plant) not in made:
            root = made.setdefault(model, tmp_path_factory.mktemp("first_step_" + model))
            if plant:
                made[model, plant] = _dump(model, _this_stack(), root, plant, step=0, plant=plant, check=False)
            else:
                made[model, plant] = (_dump(model, _this_stack(), root, "clean", step=0), set())
        return made[model, plant]
    return get


def _planted_node(tensor, planted):
    node = tensor.rpartition(":")[0]
    return any(node == name or node.startswith(name + "/") for name in planted)


# MobileNetV3's runs take about half a minute each (its 2800-output dumps): kept out of the default run.
PLANTED = [pytest.param(m, marks=pytest.mark.slow) if m == "mobilenetv3" else m for m in sorted(MODELS)]


@pytest.mark.parametrize("model", PLANTED)
def test_a_planted_epsilon_in_one_layer_of_the_training_step_is_named_first(first_step, tmp_path, model):
    """One batch norm's epsilon 1e-3 -> 0.5 in the model's real training step: compare against the clean
    deterministic dump names an op of that layer as the first failing one, with its inputs agreeing."""
    (clean, _), (planted, nodes) = first_step(model), first_step(model, "epsilon")
    proc = compare(clean, planted, tmp_path)
    assert proc.returncode == 1, proc.stdout
    first = proc.stdout.split("FAIL: first op past the thresholds, in the reference's execution order: ")[1]
    tensor = first.split(" (")[0]
    assert _planted_node(tensor, nodes), (tensor, sorted(nodes)[:20], proc.stdout)
    assert "input mismatch" not in proc.stdout, proc.stdout     # what fed it agreed: that op is the cause


@pytest.mark.parametrize("model", PLANTED)
def test_a_planted_nan_in_the_training_step_is_traced_to_its_op(first_step, model):
    """That layer's output through the log of a negative value: numerics names that Log (or the op grappler
    fused it into, reading the planted layer), with its input's finite range; the clean dump is finite."""
    (clean, _), (planted, nodes) = first_step(model), first_step(model, "nan")
    proc = run_python(["-m", "common.precision", "numerics", clean], check=False)
    assert proc.returncode == 0 and "is finite" in proc.stdout, proc.stdout
    proc = run_python(["-m", "common.precision", "numerics", planted], check=False)
    assert proc.returncode == 1, proc.stdout
    line = re.search(r"^first non-finite output: (\S+) \((\w+), #.*\n  input (\S+): float32 \[.*, 0 non-finite$",
                     proc.stdout, re.M)
    assert line, proc.stdout
    tensor, op_type, source = line.groups()
    if op_type == "_UnaryOpsComposition":   # grappler's arithmetic optimizer fuses Log with the Relu after it
        assert _planted_node(source, nodes), (source, nodes)
    else:
        assert op_type == "Log" and tensor.startswith("planted_log:") or "/planted_log:" in tensor, proc.stdout
        assert _planted_node(tensor, nodes), (tensor, nodes)


# --- the NPU half and the precision controls ------------------------------------------------------------------

def _options(argv):
    import argparse
    from common.ascend_flags import add_ascend_arguments, npu_options_from
    return npu_options_from(add_ascend_arguments(argparse.ArgumentParser()).parse_args(argv))


def _params(config):
    (custom,) = config.graph_options.rewrite_options.custom_optimizers
    return custom.parameter_map


def _run_one_op(config):
    with tf.Graph().as_default() as graph:
        value = tf.constant(1.0) + 1.0
        with tf.compat.v1.Session(graph=graph, config=config) as sess:
            return sess.run(value)


def _controls(tmp_path):
    mixlist = tmp_path / "mixlist.json"
    mixlist.write_text(json.dumps({"black-list": {"to-add": ["Exp"]}}))
    fusion = tmp_path / "fusion_switch.cfg"
    fusion.write_text(json.dumps({"Switch": {"GraphFusion": {"ALL": "off"}, "UBFusion": {"ALL": "off"}}}))
    dtypes = tmp_path / "customize_dtypes.cfg"
    dtypes.write_text("OpType::Exp:InputDtype:float32,OutputDtype:float32\n")
    return ["--precision_mode_v2=mixed_float16", "--modify_mixlist=%s" % mixlist,
            "--op_select_implmode=high_precision", "--customize_dtypes=%s" % dtypes,
            "--fusion_switch_file=%s" % fusion]


def test_on_ascend_the_reference_dump_flags_set_the_adapters_dump_of_that_step(fake_npu, tmp_path):
    options = _options(["--reference_dump=%s" % (tmp_path / "npu"), "--reference_dump_step=3", "--deterministic"])
    config = npu_session.session_config(options)
    params = _params(config)
    assert params["enable_dump"].b is True and params["dump_mode"].s == b"output"
    assert params["dump_path"].s == str(tmp_path / "npu").encode() and params["dump_step"].s == b"3"
    assert params["deterministic"].i == 1
    assert _run_one_op(config) == 2.0        # the (fake) adapter's dump checks pass: the directory was made
    assert not precision.StepDump.from_options(options).enabled     # the adapter writes it, not tfdbg


def test_the_precision_controls_reach_the_adapter(fake_npu, tmp_path):
    config = npu_session.session_config(_options(_controls(tmp_path)))
    params = _params(config)
    assert params["precision_mode_v2"].s == b"mixed_float16" and "precision_mode" not in params
    assert params["modify_mixlist"].s == str(tmp_path / "mixlist.json").encode()
    assert params["op_select_implmode"].s == b"high_precision"
    assert params["customize_dtypes"].s == str(tmp_path / "customize_dtypes.cfg").encode()
    assert params["fusion_switch_file"].s == str(tmp_path / "fusion_switch.cfg").encode()
    assert _run_one_op(config) == 2.0
    line = npu_session.describe(_options(_controls(tmp_path)))
    assert "precision_mode_v2=mixed_float16" in line and "op_select_implmode=high_precision" in line


def test_the_fake_adapter_refuses_what_the_real_one_refuses(fake_npu):
    config = tf.compat.v1.ConfigProto()
    custom = config.graph_options.rewrite_options.custom_optimizers.add()
    custom.name = "NpuOptimizer"
    custom.parameter_map["precision_mode"].s = b"allow_fp32_to_fp16"
    custom.parameter_map["precision_mode_v2"].s = b"origin"
    with pytest.raises(tf.errors.InternalError, match="can not be assigned at the same time"):
        _run_one_op(config)
    del custom.parameter_map["precision_mode_v2"]
    custom.parameter_map["modify_mixlist"].s = b"/nonexistent.json"
    with pytest.raises(tf.errors.InternalError, match="modify_mixlist is assigned"):
        _run_one_op(config)


@pytest.mark.parametrize("argv,message", [
    (["--precision_mode_v2=bf32"], "unknown precision_mode_v2 'bf32'"),
    (["--op_select_implmode=fast"], "unknown op_select_implmode 'fast'"),
    (["--fusion_switch_file=/nonexistent.json"], "fusion_switch_file: no such file /nonexistent.json"),
    (["--modify_mixlist=%s" % os.path.join(REPO, "setup.cfg"), "--precision_mode=allow_mix_precision"],
     "is not a readable JSON file"),
    (["--reference_dump=x", "--data_dump_flag=True"], "reference_dump and data_dump_flag both set"),
    (["--reference_dump_step=-1"], "reference_dump_step must be a step number >= 0"),
])
def test_bad_precision_flags_are_one_line_errors(argv, message):
    with pytest.raises(UserError, match=re.escape(message)):
        _options(argv)


def test_off_ascend_the_controls_are_refused_except_origin(no_npu, tmp_path):
    with pytest.raises(UserError, match="--op_select_implmode=high_precision.*need the NPU route"):
        npu_session.session_config(_options(["--op_select_implmode=high_precision"]))
    config = npu_session.session_config(_options(["--precision_mode_v2=origin",
                                                  "--precision_mode=allow_mix_precision"]))
    assert not config.graph_options.rewrite_options.custom_optimizers
    assert fallback.fallback_precision(_options(["--precision_mode_v2=origin"]))[0] == "fp32"


def test_a_script_off_ascend_refuses_a_control_in_one_line():
    proc = run_python(["swa/train-tf.keras-npu.py", "--train_epochs=2", "--swa_start=1", "--swa_freq=1",
                       "--num_samples=3000", "--batch_size=512", "--op_select_implmode=high_precision"], check=False)
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("error: --op_select_implmode=high_precision: Ascend's")
    assert "Traceback" not in proc.stdout


def test_wrappers_pass_the_precision_flags_with_absolute_paths(fake_model, tmp_path):
    (tmp_path / "fusion.json").write_text("{}")
    proc = run(["bash", str(fake_model / "test" / "train_full_1p.sh"), "--reference_dump=dumps",
                "--reference_dump_step=3", "--deterministic=True", "--fusion_switch_file=fusion.json",
                "--precision_mode_v2=origin"], cwd=tmp_path, OUTPUT_ROOT=tmp_path / "out")
    for pair in [("reference_dump", str(tmp_path / "dumps")), ("reference_dump_step", "3"),
                 ("deterministic", "True"), ("fusion_switch_file", str(tmp_path / "fusion.json")),
                 ("precision_mode_v2", "origin")]:
        assert repr(pair) in proc.stdout, proc.stdout
    bad = run(["bash", str(fake_model / "test" / "train_full_1p.sh"), "--reference_dump_step=last"], cwd=tmp_path,
              check=False, OUTPUT_ROOT=tmp_path / "out2")
    assert bad.returncode == 2
    assert bad.stdout.strip() == "train_full_1p.sh: --reference_dump_step must be a whole number, got 'last'"


def test_a_truncated_dump_file_is_one_line(tmp_path):
    tiny_graph(tmp_path / "a")
    shutil.copytree(str(tmp_path / "a"), str(tmp_path / "b"))
    victim = sorted(p for p in os.listdir(str(tmp_path / "b")) if p.endswith(".npy"))[0]
    path = tmp_path / "b" / victim
    path.write_bytes(path.read_bytes()[:20])
    proc = compare(tmp_path / "a", tmp_path / "b", tmp_path)
    assert proc.returncode == 2 and "error: cannot read %s" % path in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stdout
