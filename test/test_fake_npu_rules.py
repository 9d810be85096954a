"""The fake adapter holds every Session.run of an NPU session to the rules of the adapter's C++ graph passes and
GE (issue 23): each rule breaks a small graph that violates it and passes the same graph written the safe way."""
import numpy as np
import pytest

from common import npu_session
from common.npu_session import NpuOptions
from common.tf_compat import tf

v1 = tf.compat.v1


def _rule_error(rule):
    from npu_bridge.session_rules import GraphRuleError
    return pytest.raises(GraphRuleError, match="fake_npu rule %d:" % rule)


def _dataset(drop_remainder=True, n=10, batch=4):
    return tf.data.Dataset.from_tensor_slices(np.arange(n * 2, dtype=np.float32).reshape(n, 2)) \
        .batch(batch, drop_remainder=drop_remainder).repeat()


def _session(graph, **options):
    return npu_session.new_session(NpuOptions(**options), graph=graph)


def test_rule1_getnext_reading_its_iterator_directly_is_sunk(fake_npu):
    graph = tf.Graph()
    with graph.as_default():
        it = v1.data.make_initializable_iterator(_dataset())
        total = tf.reduce_sum(it.get_next())
    with _session(graph) as sess:
        sess.run(it.initializer)
        assert sess.run(total) == sum(range(8))


def test_rule1_string_handle_iterator_reads_the_empty_host_dataset(fake_npu):
    graph = tf.Graph()
    with graph.as_default():
        ds = _dataset()
        handle = v1.placeholder(tf.string, [])
        feedable = v1.data.Iterator.from_string_handle(handle, v1.data.get_output_types(ds),
                                                       v1.data.get_output_shapes(ds))
        it = v1.data.make_initializable_iterator(ds)
        total = tf.reduce_sum(feedable.get_next())
    with _session(graph) as sess:
        sess.run(it.initializer)
        value = sess.run(it.string_handle())
        with pytest.raises(tf.errors.OutOfRangeError, match="rule 1"):
            sess.run(total, {handle: value})


def test_rule1_cond_between_two_getnexts_reads_the_empty_host_dataset(fake_npu):
    graph = tf.Graph()
    with graph.as_default():
        a, b = v1.data.make_initializable_iterator(_dataset()), v1.data.make_initializable_iterator(_dataset())
        flag = v1.placeholder_with_default(False, [])
        total = tf.reduce_sum(tf.cond(flag, a.get_next, b.get_next))
    with _session(graph) as sess:
        sess.run([a.initializer, b.initializer])
        with pytest.raises(tf.errors.OutOfRangeError, match="Switch"):
            sess.run(total)


def _looped(drop_remainder):
    graph = tf.Graph()
    with graph.as_default():
        it = v1.data.make_initializable_iterator(_dataset(drop_remainder))
        var = v1.get_variable("w", [2], initializer=v1.zeros_initializer())
        train = v1.assign_add(var, tf.reduce_sum(it.get_next(), 0)).op
    sess = _session(graph, iterations_per_loop=2)
    sess.run([it.initializer, var.initializer])
    with graph.as_default():
        return sess, npu_session.set_iterations_per_loop(sess, train, NpuOptions(iterations_per_loop=2))


def test_rule3_a_looped_run_needs_known_shapes(fake_npu):
    sess, looped = _looped(drop_remainder=False)
    with sess, _rule_error(3):
        sess.run(looped)
    sess, looped = _looped(drop_remainder=True)
    with sess:
        sess.run(looped)


def test_rule4_unknown_dims_in_a_sunk_input(fake_npu):
    graph = tf.Graph()
    with graph.as_default():
        it = v1.data.make_initializable_iterator(_dataset(drop_remainder=False))
        total = tf.reduce_sum(it.get_next())
    with _session(graph) as sess, _rule_error(4):
        sess.run(it.initializer)
        sess.run(total)


def test_rule4_a_fed_input_changing_shape(fake_npu):
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 2])
        total = tf.reduce_sum(x)
    with _session(graph) as sess:
        sess.run(total, {x: np.ones([4, 2])})
        sess.run(total, {x: np.zeros([4, 2])})
        with _rule_error(4):
            sess.run(total, {x: np.ones([3, 2])})


def test_rule4_host_decoded_images_of_their_own_size(fake_npu):
    graph = tf.Graph()
    with graph.as_default():
        path = v1.placeholder(tf.string, [])
        image = tf.io.decode_png(tf.io.read_file(path), channels=3)
        small = tf.image.resize(tf.cast(image, tf.float32), [4, 4])
    with _session(graph) as sess, _rule_error(4):
        sess.run(small, {path: "any.png"})


def test_rule6_float64_on_the_device(fake_npu):
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [2])
        doubled = tf.reduce_sum(tf.cast(x, tf.float64) * 2.0)
        fine = tf.reduce_sum(x * 2.0)
    with _session(graph) as sess:
        assert sess.run(fine, {x: [1, 2]}) == 6
        with _rule_error(6):
            sess.run(doubled, {x: [1, 2]})


def test_rule7_overflow_saturates_and_the_loss_check_sees_it(fake_npu):
    """Ascend 910 saturates: a diverged loss reaches the host as +-max, never Inf/NaN, so an isfinite check alone
    (common.errors.check_finite, the only check before) lets a diverged run train on."""
    from common.errors import NonFiniteLossError, check_finite
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [])
        overflow = tf.exp(x) * 2.0
    with _session(graph) as sess:
        value = sess.run(overflow, {x: 100.0})
        assert value == np.finfo(np.float32).max and sess.run(tf.math.log(0.0)) == -np.finfo(np.float32).max
    assert check_finite(value, 3) == value          # what every trainer checked: blind to saturation
    with pytest.raises(NonFiniteLossError, match="loss is 3.403e\\+38 at step 3, at or past float16's largest"):
        npu_session.check_loss(value, 3)
    with pytest.raises(NonFiniteLossError, match="at or past float16"):
        npu_session.check_loss(65504.0, 3)      # an fp16 loss saturated on the device, cast to fp32
    assert npu_session.check_loss(65000.0, 3) == 65000.0


def test_rule7_off_ascend_a_large_finite_loss_is_not_an_overflow(no_npu):
    assert npu_session.check_loss(1e6, 3) == 1e6


def test_rule8_summaries_fetched_in_sess_run_mode(fake_npu):
    graph = tf.Graph()
    with graph.as_default():
        x = tf.constant(1.0)
        summary = v1.summary.scalar("x", x)
    with _session(graph) as sess:
        assert sess.run(x) == 1.0
        with _rule_error(8):
            sess.run(summary)


def test_rule9_v2_control_flow(fake_npu):
    graph = tf.Graph()
    v1.enable_control_flow_v2()
    try:
        with graph.as_default():
            n = tf.while_loop(lambda i: i < 3, lambda i: i + 1, [tf.constant(0)])
    finally:
        v1.disable_control_flow_v2()
    with graph.as_default():
        m = tf.while_loop(lambda i: i < 3, lambda i: i + 1, [tf.constant(0)])
    with _session(graph) as sess:
        assert sess.run(m) == 3
        with _rule_error(9):
            sess.run(n)


def test_keras_callables_are_checked_too(fake_npu):
    """Keras fit runs its steps through Session callables: a partial last batch is a new input shape."""
    graph = tf.Graph()
    with graph.as_default():
        sess = npu_session.keras_session(NpuOptions())
        model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
        model.compile("sgd", "mse")
        x, y = np.ones([8, 2], np.float32), np.ones([8, 1], np.float32)
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        with _rule_error(4):
            model.fit(np.ones([7, 2], np.float32), np.ones([7, 1], np.float32), batch_size=4, epochs=1, verbose=0)
        sess.close()
