"""Graph-mode engine of the SWA callback (TF 1.15, and TF 2.x with v2 behaviour off, as the project's scripts run):
Keras's session-based training function gets the next batch's rate as an extra fetch, and is swapped for a
forward pass that collects exact batch-norm statistics. Only imported once a graph-mode fit starts."""
import warnings

import numpy as np

from swa._tf import tf
from swa.core import ExactMoments, SWAError, _batches, batch_norm_layers


def _depends_on(tensor, sources):
    """Whether `tensor` is computed from any of the `sources` tensors (walks the graph backwards)."""
    targets = {s.name for s in sources}
    seen, stack = set(), [tensor.op]
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        if any(out.name in targets for out in op.outputs):
            return True
        stack.extend(t.op for t in op.inputs)
    return False


def _layer_input(layer, model_inputs):
    """The input tensor of `layer` in the graph of the model fed by `model_inputs`."""
    candidates = []
    for node in getattr(layer, "_inbound_nodes", []):
        tensors = node.input_tensors
        tensors = tensors if isinstance(tensors, (list, tuple)) else [tensors]
        if len(tensors) == 1:
            candidates.append(tensors[0])
    for tensor in reversed(candidates):
        if _depends_on(tensor, model_inputs):
            return tensor
    raise SWAError("cannot find the input of batch normalization layer %r in the model's graph: subclassed models, "
                   "and with standalone Keras BN layers inside a nested model, are not supported" % layer.name)


class BatchNormStatistics(ExactMoments):
    """ExactMoments fed by graph tensors: per BN layer the count, mean and sum of squared deviations of its input
    in one batch (`self.tensors`, fetched with the model's inputs by a backend function)."""

    def __init__(self, model, layers=None):
        self.layers = list(layers if layers is not None else batch_norm_layers(model))
        self.tensors = []
        model_inputs = list(model.inputs)
        for layer in self.layers:
            x = _layer_input(layer, model_inputs)
            ndim = len(x.shape)
            axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
            axis = sorted(a % ndim for a in axis)
            reduce_axes = [a for a in range(ndim) if a not in axis]
            with x.graph.as_default(), tf.name_scope("swa_bn_statistics"):
                xf = tf.cast(x, tf.float32)
                mean, var = tf.nn.moments(xf, reduce_axes)
                count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(xf), reduce_axes)), tf.float32)
                self.tensors.extend([count, mean, var * count])
        super(BatchNormStatistics, self).__init__(self.layers)

    def assign(self, backend):
        """Write the accumulated statistics into the layers' moving mean and variance."""
        pairs = []
        for layer, mean, var in self.statistics():
            shape = backend.int_shape(layer.moving_mean)
            pairs.append((layer.moving_mean, np.reshape(mean, shape)))
            pairs.append((layer.moving_variance, np.reshape(var, shape)))
        backend.batch_set_value(pairs)


def _learning_phase_feed(backend):
    """[(placeholder, 1)] when the learning phase is a graph input, [] when it is fixed."""
    phase = backend.learning_phase()
    return [] if isinstance(phase, int) else [(phase, 1)]


def recompute_bn_statistics(model, x, backend, batch_size=32, steps=None):
    """Set every BN layer's moving mean/variance to the exact statistics of its input over `x`.

    x: numpy array (or list of arrays for several inputs), or a generator / keras Sequence yielding inputs
    or (inputs, targets[, weights]) tuples; `steps` limits how many batches are taken from a generator.
    Returns the number of samples seen. Use after setting averaged weights outside of `fit`.
    """
    stats = BatchNormStatistics(model)
    if not stats.layers:
        return 0
    feeds = list(model.inputs)
    phase = _learning_phase_feed(backend)
    fn = backend.function(feeds + [p for p, _ in phase], stats.tensors)
    for batch in _batches(x, batch_size, steps):
        if len(batch) != len(feeds):
            raise SWAError("the model has %d input(s) but the data gives %d" % (len(feeds), len(batch)))
        stats.add(fn(batch + [v for _, v in phase]))
    stats.assign(backend)
    return stats.samples


def _rate_setter(backend, variable):
    """A fast `set(value)` for a scalar rate variable, which the cyclic schedule calls on every batch: one cached
    session callable instead of backend.set_value's per-call work. Eager: set_value."""
    try:
        if tf.executing_eagerly():
            raise RuntimeError("eager")
        with variable.graph.as_default():
            value = tf.compat.v1.placeholder(variable.dtype.base_dtype, shape=variable.shape)
            assign = variable.assign(value, read_value=False)
        run = backend.get_session().make_callable(assign, feed_list=[value], accept_options=True)
    except Exception:  # not a plain graph variable: use the backend's own route
        return lambda rate: backend.set_value(variable, rate)
    # Run the tiny assign in the calling thread: no hand-off to the inter-op pool, which costs milliseconds
    # right after a training step on a loaded CPU.
    inline = tf.compat.v1.RunOptions(inter_op_thread_pool=-1)
    return lambda rate: run(rate, options=inline)


class _RateFeed(object):
    """The cyclic rate of the next batch, set by the training step itself instead of a session call per batch.

    An assign of the learning-rate variable from a placeholder, run after the step's updates (control
    dependency on the training function's update op, so the step still reads the old rate), is added to the
    graph-mode Keras training function as an extra fetch, its value fed through the function's feed_dict, the
    mechanism Keras provides for callbacks (`fetches`, `feed_dict`, `fetch_callbacks`). A fetch callback
    confirms after each step that the assign ran. Only used when the function has no feed_dict of its own.
    """

    def __init__(self, fn, placeholder, fetch):
        self.fn, self.placeholder, self.fetch = fn, placeholder, fetch
        self.value = None
        self.armed = False
        self._ran = False
        self._saved = None

    @classmethod
    def attach(cls, fn, variable, rate, cache=None):
        """Install on training function `fn`, the variable holding `rate` (reusing `cache` if built for the
        same fn); None when not possible."""
        needed = ("fetches", "feed_dict", "updates_op", "fetch_callbacks", "_fetches")
        if fn is None or variable is None or tf.executing_eagerly() or not all(hasattr(fn, a) for a in needed) \
                or fn.feed_dict or not isinstance(fn.fetches, list):
            return None
        if cache is not None and cache.fn is fn:
            feed = cache
        else:
            try:
                graph = fn.updates_op.graph
                if getattr(variable, "graph", None) is not graph:
                    return None
                with graph.as_default(), tf.name_scope("swa_next_rate"):
                    placeholder = tf.compat.v1.placeholder(variable.dtype.base_dtype, shape=variable.shape)
                    with tf.control_dependencies([fn.updates_op]):
                        fetch = tf.identity(variable.assign(placeholder))
            except Exception:  # not a plain graph variable: keep the per-batch session call
                return None
            feed = cls(fn, placeholder, fetch)
        feed._saved = (fn.fetches, fn.feed_dict)
        # New list and dict objects: Keras rebuilds its cached callable when the fetches change.
        fn.fetches = list(fn.fetches) + [feed.fetch]
        fn.feed_dict = {feed.placeholder: rate}
        fn.fetch_callbacks[feed.fetch] = feed._on_fetch
        return feed

    def _on_fetch(self, value):
        self._ran = True

    def arm(self, value):
        """The next step leaves `value` in the rate variable."""
        self.fn.feed_dict[self.placeholder] = value
        self.value = value
        self.armed = True
        self._ran = False

    def took_effect(self):
        self.armed = False
        return self._ran

    def detach(self):
        """Give the training function back its own fetches and feed_dict."""
        if self._saved is None:
            return
        self.fn.fetches, self.fn.feed_dict = self._saved
        self.fn.fetch_callbacks.pop(self.fetch, None)
        self._saved = None
        self.armed = False


def start_forward_only(model, backend, layers, flavour):
    """For one epoch, the fit loop's training function computes the loss and the BN statistics of each batch
    without applying any update (weights stay at the average, momentum is not used). Returns a `finish()`
    that restores the function and gives the statistics, or None when the function cannot be intercepted."""
    fn = getattr(model, "train_function", None)
    if fn is None or not hasattr(fn, "inputs") or not hasattr(fn, "outputs"):
        warnings.warn("SWA: cannot intercept %s's training function; the last epoch trains normally and BN "
                      "statistics must be recomputed with recompute_bn_statistics(model, x)" % flavour)
        return None
    stats = BatchNormStatistics(model, layers)
    n_out = len(fn.outputs)
    forward = backend.function(list(fn.inputs), list(fn.outputs) + stats.tensors)
    original_class = type(fn)

    class ForwardOnly(original_class):
        def __call__(self, inputs):
            values = forward(inputs)
            stats.add(values[n_out:])
            return values[:n_out]

    fn.__class__ = ForwardOnly

    def finish():
        fn.__class__ = original_class
        return stats

    return finish
