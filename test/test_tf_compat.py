"""One import point for TensorFlow: common/tf_compat.py chooses the stack; nothing else imports tensorflow, but for
the SWA library's swa/_tf.py (swa installs without the project and must not switch TF 2.x to graph mode)."""
import os
import re
import subprocess

from conftest import REPO
from common import tf_compat
from common.tf_compat import tf

DIRECT = re.compile(r"^\s*(import tensorflow\b|from tensorflow\b)", re.M)


IMPORT_POINTS = ("common/tf_compat.py", "swa/_tf.py")
# Tests that write a peer's own script (keras.applications as its users run it) and run it in another process.
PEER_SCRIPTS = ("test/test_reproduce.py",)


def test_no_module_imports_tensorflow_but_tf_compat():
    files = subprocess.check_output(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
                                    cwd=REPO, universal_newlines=True).split()
    assert set(IMPORT_POINTS) <= set(files)
    offenders = [path for path in files if path not in IMPORT_POINTS + PEER_SCRIPTS
                 and DIRECT.search(open(os.path.join(REPO, path)).read())]
    assert offenders == []


def test_the_v1_graph_api_on_either_stack():
    assert tf_compat.VERSION[0] in (1, 2) and tf_compat.TF2 == (tf_compat.VERSION[0] == 2)
    assert not tf.executing_eagerly()
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 2])
        w = tf.compat.v1.get_variable("w", [2, 1])
        assert w.op.type == "VariableV2"      # reference variables, as TF 1.15 makes them
        y = tf.compat.v1.layers.dense(x, 1)
        assert y.shape.as_list() == [None, 1]


def test_op_seeds_follow_tensorflow_115():
    """TF 1.15: an op without its own seed takes the graph seed and the graph's last op id (TF 2.x alone would
    count random ops 0, 1, 2...), so a seeded graph draws the same numbers on both stacks."""
    with tf.Graph().as_default() as graph:
        tf.compat.v1.set_random_seed(7)
        for value in range(3):
            tf.constant(float(value))
        before = len(graph.get_operations())
        tf.random.uniform([2])
        (op,) = [op for op in graph.get_operations() if op.type == "RandomUniform"]
        assert op.get_attr("seed") == 7
        assert before <= op.get_attr("seed2") < len(graph.get_operations())
