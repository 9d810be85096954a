"""Test-only hook (never a production flag): run a model's entry script with one layer of its graph planted.

    python test/precision_plant.py MODEL KIND SCRIPT [ARGS...]

MODEL is am3, mtnet, mobilenetv3 or swa; KIND is `epsilon` (that layer's batch-norm epsilon 1e-3 -> 0.5, the
changed epsilon of issue 26), `nan` (that layer's output goes through the log of a negative value) or both,
`epsilon,nan` (one run serves both tests: the changed batch norm runs first, the Log right after it). As the
script builds its graph, a line `planted KIND in: NAME,NAME...` names the graph nodes (for Keras, the layer: the
nodes under its scope) the plant made, so a test can check that `common.precision compare` / `numerics` name
one of them.
"""
import os
import runpy
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLANTED_EPSILON = 0.5
# The layer each model gets planted: one batch norm in the middle of the forward pass (AM3's second block's conv,
# MT-net's second hidden layer, MobileNetV3's first bottleneck's depthwise conv, SWA's one BN layer). Not AM3's
# first conv: it sees raw pixels (variance ~800), beside which an epsilon of 0.5 changes nothing measurable.
TARGETS = {"am3": "conv1_0/bn", "mtnet": 1, "mobilenetv3": "bneck1/depthwise"}


def _say(kind, names):
    print("planted %s in: %s" % (kind, ",".join(sorted(names))), flush=True)


def _log_of_negative(y):
    from common.tf_compat import tf
    return tf.math.log(y - tf.reduce_max(y) - 1.0, name="planted_log")    # every value NaN, from finite inputs


def _recorded(kind, build):
    """Call build() (which makes the planted layer), name the nodes it made, add the NaN when kind has nan."""
    from common.tf_compat import tf
    graph = tf.compat.v1.get_default_graph()
    before = {op.name for op in graph.get_operations()}
    y = build()
    if "nan" in kind:
        y = _log_of_negative(y)
    _say(kind, [op.name for op in graph.get_operations() if op.name not in before])
    return y


def _swapped_epsilon(module, kind):
    """A context that sets module.BN_EPSILON to the planted value while one layer is built (kind epsilon)."""
    class Swap(object):
        def __enter__(self):
            self.saved = module.BN_EPSILON
            if "epsilon" in kind:
                module.BN_EPSILON = PLANTED_EPSILON

        def __exit__(self, *exc):
            module.BN_EPSILON = self.saved
    return Swap()


def plant_am3(kind):
    from am3 import model
    original = model._bn

    def _bn(x, training, name):
        if not name.endswith(TARGETS["am3"]):
            return original(x, training, name)
        epsilon = PLANTED_EPSILON if "epsilon" in kind else 1e-3
        return _recorded(kind, lambda: model.v1.layers.batch_normalization(
            x, momentum=0.95, epsilon=epsilon, training=training, name=name))
    model._bn = _bn


def plant_mtnet(kind):
    from mtnet import model
    original = model.MetaLearner._norm_act

    def _norm_act(self, x, index, stat_axes):
        if index != TARGETS["mtnet"]:
            return original(self, x, index, stat_axes)
        with _swapped_epsilon(model, kind):
            return _recorded(kind, lambda: original(self, x, index, stat_axes))
    model.MetaLearner._norm_act = _norm_act


def plant_mobilenetv3(kind):
    from common.tf_compat import tf
    from mobilenetv3 import model
    original = model._Builder.bn

    def bn(self, x):
        if not tf.compat.v1.get_variable_scope().name.endswith(TARGETS["mobilenetv3"]):
            return original(self, x)
        with _swapped_epsilon(model, kind):
            return _recorded(kind, lambda: original(self, x))
    model._Builder.bn = bn


def plant_swa(kind):
    from common.tf_compat import tf
    from swa import model

    def build_model(input_dim=2, hidden_units=50, num_classes=3, batch_norm=True):
        epsilon = PLANTED_EPSILON if "epsilon" in kind else 1e-3
        bn = tf.keras.layers.BatchNormalization(epsilon=epsilon)    # Keras's own name, as the clean run's
        layers = [tf.keras.layers.Dense(hidden_units, activation="relu", input_shape=(input_dim,)), bn]
        if "nan" in kind:
            layers.append(tf.keras.layers.Lambda(_log_of_negative, name="planted_nan"))
        layers.append(tf.keras.layers.Dense(num_classes, activation="softmax"))
        _say(kind, [layer.name for layer in layers[1:-1]])     # layers: their ops are the nodes under their scope
        return tf.keras.Sequential(layers)
    model.build_model = build_model


def main(argv):
    name, kind, script = argv[:3]
    sys.path.insert(0, REPO)
    {"am3": plant_am3, "mtnet": plant_mtnet, "mobilenetv3": plant_mobilenetv3, "swa": plant_swa}[name](kind)
    sys.argv = [script] + argv[3:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
