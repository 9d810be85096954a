"""MAML, T-net and MT-net learners (Lee & Choi, ICML 2018): weights, forward passes and the inner loop.

One builder covers the three methods; they differ only by options:
  MAML    use_T=False use_M=False   inner step  W' = W - a * dL/dW
  T-net   use_T=True                each layer's output goes through a matrix T learned in the outer loop only
  MT-net  use_T=True  use_M=True    inner step  W' = W - a * (M * dL/dW), M a 0/1 mask drawn per task by
                                    Gumbel-softmax with a straight-through gradient to the mask logits
With share_M one mask logit per unit (output column of W, its bias); otherwise one per weight entry.

The fully connected net adapts all tasks of a meta-batch at once: its fast weights carry a leading task
axis [B, ...], so one batched matmul replaces a per-task loop, and d(sum of task losses)/d(fast weights)
is each task's own gradient. The conv net adapts task by task (statically unrolled).
This module only builds the graph: no flags, no session, no file I/O.
"""
import numpy as np
from common.tf_compat import tf

tf1 = tf.compat.v1

BN_EPSILON = 1e-3      # tf.contrib.layers.batch_norm's default, as upstream uses it
LN_EPSILON = 1e-12     # tf.contrib.layers.layer_norm's default
NORMS = ("batch_norm", "layer_norm", "None")
# Conv meta-batches up to this size are unrolled task by task (several times faster per step than a while loop);
# larger ones (omniglot's 32) go through map_fn so the graph stays one task big.
UNROLL_MAX_TASKS = 8


class ModelSpec(object):
    """Everything the learner needs; built by the trainer from the flags.

    kind: 'fc' (regression, or classification with conv=False) or 'conv'.
    dim_hidden: list of hidden widths (fc) ; num_filters: conv channels; flatten: miniImagenet head (flatten
    the last feature map) instead of omniglot's spatial mean; loss: 'mse' or 'xent'.
    """

    def __init__(self, kind, dim_input, dim_output, dim_hidden=(40, 40), num_filters=64, channels=1, img_size=28,
                 max_pool=False, flatten=False, norm="None", use_T=False, use_M=False, share_M=False, temp=1.0,
                 logit_init=0.0, update_lr=0.01, stop_grad=False, loss="mse", update_batch_size=10):
        self.kind = kind
        self.dim_input = int(dim_input)
        self.dim_output = int(dim_output)
        self.dim_hidden = list(dim_hidden)
        self.num_filters = int(num_filters)
        self.channels = int(channels)
        self.img_size = int(img_size)
        self.max_pool = bool(max_pool)
        self.flatten = bool(flatten)
        self.norm = norm
        self.use_T = bool(use_T)
        self.use_M = bool(use_M)
        self.share_M = bool(share_M)
        self.temp = float(temp)
        self.logit_init = float(logit_init)
        self.update_lr = float(update_lr)
        self.stop_grad = bool(stop_grad)
        self.loss = loss
        self.update_batch_size = int(update_batch_size)
        if kind not in ("fc", "conv"):
            raise ValueError("kind must be fc or conv, got %r" % kind)
        if norm not in NORMS:
            raise ValueError("norm must be one of %s, got %r" % (NORMS, norm))


def straight_through_mask(logits, noise_shape, temp):
    """Binary Gumbel-softmax sample of P(mask=1) = sigmoid(logits): exactly 0/1 forward, soft gradient back.

    Sampling [logit, 0] + Gumbel noise and taking the argmax is the same as logit + Logistic noise > 0;
    the soft relaxation is sigmoid((logit + noise) / temp). `soft - stop_gradient(soft)` is exactly zero
    in the forward pass, so the mask is exactly 0 or 1 there while its gradient is the soft one's.
    """
    u = tf1.random_uniform(noise_shape, minval=1e-20, maxval=1.0)
    noise = tf.math.log(u) - tf.math.log1p(-u + 1e-20)
    y = logits + noise
    hard = tf.cast(y > 0, tf.float32)
    soft = tf.sigmoid(y / temp)
    return hard + (soft - tf.stop_gradient(soft))


class MetaLearner(object):
    """Builds the weights once, then any number of meta-batches (train and eval graphs share the weights)."""

    def __init__(self, spec):
        self.spec = spec
        self.classification = spec.loss == "xent"
        with tf1.variable_scope("model"):
            self.weights = self._fc_weights() if spec.kind == "fc" else self._conv_weights()
            self.norm_vars = self._norm_weights()
        # fast-adapted weights: everything but mask logits (_prob) and transforms (_f)
        self.train_keys = sorted(k for k in self.weights if not k.endswith("_prob") and not k.endswith("_f"))

    # ---- weights -------------------------------------------------------------------------------------------
    def _layer_widths(self):
        s = self.spec
        if s.kind == "fc":
            return [s.dim_input] + s.dim_hidden + [s.dim_output]
        return None

    def _fc_weights(self):
        dims = self._layer_widths()
        w = {}
        init = tf1.truncated_normal_initializer(stddev=0.01)
        for i in range(1, len(dims)):
            w["w%d" % i] = tf1.get_variable("w%d" % i, [dims[i - 1], dims[i]], initializer=init)
            w["b%d" % i] = tf1.get_variable("b%d" % i, [dims[i]], initializer=tf1.zeros_initializer())
            self._mask_and_transform(w, "w%d" % i, "b%d" % i, [dims[i - 1], dims[i]], dims[i], stddev=0.1,
                                     transform_shape=[dims[i], dims[i]])
        return w

    def _conv_weights(self):
        s = self.spec
        w = {}
        conv_init = tf.compat.v1.glorot_uniform_initializer()   # = contrib's xavier_initializer, same draws
        cin = s.channels
        for i in range(1, 5):
            shape = [3, 3, cin, s.num_filters]
            w["conv%d" % i] = tf1.get_variable("conv%d" % i, shape, initializer=conv_init)
            w["b%d" % i] = tf1.get_variable("b%d" % i, [s.num_filters], initializer=tf1.zeros_initializer())
            self._mask_and_transform(w, "conv%d" % i, "b%d" % i, shape, s.num_filters, stddev=0.01,
                                     transform_shape=[1, 1, s.num_filters, s.num_filters])
            cin = s.num_filters
        if s.flatten:
            side = s.img_size
            for _ in range(4):
                side = side // 2 if s.max_pool else (side + 1) // 2
            feat = s.num_filters * side * side
            head_init = tf.compat.v1.glorot_uniform_initializer()
        else:
            feat = s.num_filters
            head_init = tf1.random_normal_initializer(stddev=1.0)  # upstream's omniglot head
        w["w5"] = tf1.get_variable("w5", [feat, s.dim_output], initializer=head_init)
        w["b5"] = tf1.get_variable("b5", [s.dim_output], initializer=tf1.zeros_initializer())
        self._mask_and_transform(w, "w5", "b5", [feat, s.dim_output], s.dim_output, stddev=0.01,
                                 transform_shape=[s.dim_output, s.dim_output])
        return w

    def _mask_and_transform(self, w, wkey, bkey, wshape, units, stddev, transform_shape):
        s = self.spec
        if s.use_M and s.share_M:
            w[wkey + "_prob"] = tf1.get_variable(wkey + "_prob", [units],
                                                 initializer=tf1.constant_initializer(s.logit_init))
        elif s.use_M:
            init = tf1.truncated_normal_initializer(stddev=stddev)
            w[wkey + "_prob"] = tf1.get_variable(wkey + "_prob", wshape, initializer=init)
            w[bkey + "_prob"] = tf1.get_variable(bkey + "_prob", [units], initializer=init)
        if s.use_T:
            eye = np.eye(transform_shape[-1], dtype=np.float32).reshape(transform_shape)
            w[wkey + "_f"] = tf1.get_variable(wkey + "_f", initializer=eye)

    def _norm_weights(self):
        """Normalisation offsets/scales: learned in the outer loop only, like upstream's contrib layers."""
        s = self.spec
        if s.norm == "None":
            return {}
        widths = s.dim_hidden if s.kind == "fc" else [s.num_filters] * 4
        out = {}
        for i, width in enumerate(widths):
            out["beta%d" % i] = tf1.get_variable("norm%d/beta" % i, [width], initializer=tf1.zeros_initializer())
            if s.norm == "layer_norm":
                out["gamma%d" % i] = tf1.get_variable("norm%d/gamma" % i, [width],
                                                      initializer=tf1.ones_initializer())
        return out

    # ---- forward passes -------------------------------------------------------------------------------------
    def _norm_act(self, x, index, stat_axes):
        s = self.spec
        if s.norm == "batch_norm":
            mean, var = tf.nn.moments(x, stat_axes, keep_dims=True)
            x = (x - mean) * tf.math.rsqrt(var + BN_EPSILON) + self.norm_vars["beta%d" % index]
        elif s.norm == "layer_norm":
            axes = list(range(stat_axes[-1] + 1, len(x.shape)))
            mean, var = tf.nn.moments(x, axes, keep_dims=True)
            x = (x - mean) * tf.math.rsqrt(var + LN_EPSILON) * self.norm_vars["gamma%d" % index] \
                + self.norm_vars["beta%d" % index]
        return tf.nn.relu(x)

    def forward(self, x, weights):
        """Logits/predictions. fc: x [B, n, dim_input] with weights [B, ...]; conv: x [n, dim_input]."""
        return self._forward_fc(x, weights) if self.spec.kind == "fc" else self._forward_conv(x, weights)

    def _forward_fc(self, x, weights):
        s = self.spec
        layers = len(s.dim_hidden) + 1
        h = x
        for i in range(1, layers + 1):
            h = _batch_matmul(h, weights["w%d" % i]) + weights["b%d" % i]
            if s.use_T:
                h = _batch_matmul(h, weights["w%d_f" % i])
            if i < layers:
                h = self._norm_act(h, i - 1, stat_axes=[len(h.shape) - 2])  # per task, over its samples
        return h

    def _forward_conv(self, x, weights):
        s = self.spec
        h = tf.reshape(x, [-1, s.img_size, s.img_size, s.channels])
        for i in range(1, 5):
            stride = 1 if s.max_pool else 2
            h = tf.nn.conv2d(h, weights["conv%d" % i], [1, stride, stride, 1], "SAME") + weights["b%d" % i]
            if s.use_T:
                h = tf.nn.conv2d(h, weights["conv%d_f" % i], [1, 1, 1, 1], "SAME")
            h = self._norm_act(h, i - 1, stat_axes=[0, 1, 2])
            if s.max_pool:
                h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        if s.flatten:
            h = tf.reshape(h, [-1, int(np.prod(h.shape.as_list()[1:]))])
        else:
            h = tf.reduce_mean(h, [1, 2])
        h = tf.matmul(h, weights["w5"]) + weights["b5"]
        if s.use_T:
            h = tf.matmul(h, weights["w5_f"])
        return h

    # ---- losses ---------------------------------------------------------------------------------------------
    def task_loss(self, pred, label):
        """Per-task loss: [B] for batched fc, scalar for one conv task. xent is summed / update_batch_size."""
        sample_axis = len(pred.shape) - 2
        if self.spec.loss == "mse":
            return tf.reduce_mean(tf.square(pred - label), axis=[sample_axis, sample_axis + 1])
        xent = tf.nn.softmax_cross_entropy_with_logits_v2(labels=tf.stop_gradient(label), logits=pred)
        return tf.reduce_sum(xent, axis=sample_axis) / float(self.spec.update_batch_size)

    @staticmethod
    def task_accuracy(pred, label):
        sample_axis = len(pred.shape) - 2
        hits = tf.cast(tf.equal(tf.argmax(pred, -1), tf.argmax(label, -1)), tf.float32)
        return tf.reduce_mean(hits, axis=sample_axis)

    # ---- inner loop -----------------------------------------------------------------------------------------
    def sample_masks(self, fast, batch):
        """Masks for the fast-weight keys: shared (per-unit) masks are drawn once per task and reused for every
        inner step; per-entry masks (share_M=False) are drawn again at each step, as upstream does."""
        s = self.spec
        if not s.use_M:
            return None
        masks = {}
        if s.share_M:
            for wkey in [k for k in self.train_keys if not k.startswith("b")]:
                logits = self.weights[wkey + "_prob"]
                shape = [batch, 1, logits.shape[0]] if batch else logits.shape
                mask = straight_through_mask(logits, shape, s.temp)
                masks[wkey] = mask
                masks[_bias_key(wkey)] = mask
        else:
            for key in self.train_keys:
                masks[key] = straight_through_mask(self.weights[key + "_prob"], tf.shape(fast[key]), s.temp)
        return masks

    def _adapt(self, inputa, labela, inputb, labelb, fast, num_steps, batch):
        """Inner loop for one conv task (batch=None) or a whole fc meta-batch (batch=B)."""
        s = self.spec
        masks = self.sample_masks(fast, batch)
        outputa = self.forward(inputa, fast)
        lossa = self.task_loss(outputa, labela)
        out = {"outputa": outputa, "lossa": lossa, "outputbs": [], "lossesb": [], "masks": masks, "step_masks": [],
               "outputb_pre": self.forward(inputb, fast)}
        inner_loss = lossa
        for step in range(num_steps):
            if step > 0:
                inner_loss = self.task_loss(self.forward(inputa, fast), labela)
                if masks is not None and not s.share_M:
                    # as upstream: per-entry masks are drawn anew for every inner step (shared ones once per task)
                    masks = self.sample_masks(fast, batch)
            out["step_masks"].append(masks)
            params = [fast[k] for k in self.train_keys]
            grads = tf.gradients(tf.reduce_sum(inner_loss), params)
            fast = dict(fast)
            for key, grad in zip(self.train_keys, grads):
                if s.stop_grad:
                    grad = tf.stop_gradient(grad)
                if masks is not None:
                    grad = masks[key] * grad
                fast[key] = fast[key] - s.update_lr * grad
            outputb = self.forward(inputb, fast)
            out["outputbs"].append(outputb)
            out["lossesb"].append(self.task_loss(outputb, labelb))
        out["fast_weights"] = fast
        if self.classification:
            out["accuracya"] = self.task_accuracy(outputa, labela)
            out["accuraciesb"] = [self.task_accuracy(o, labelb) for o in out["outputbs"]]
        return out

    def build(self, inputa, labela, inputb, labelb, num_steps):
        """Adapt on (inputa, labela) for num_steps inner steps, evaluating on (inputb, labelb) after each.

        Inputs are [B, n, dim]. Returns per-task tensors: lossa [B], lossesb[j] [B] (after j+1 steps),
        outputa, outputbs[j], outputb_pre (query predictions before adaptation), masks, fast_weights, and
        for classification accuracya/accuraciesb.
        """
        if self.spec.kind == "fc":
            batch = inputa.shape[0].value
            if batch is None:
                raise ValueError("the meta-batch size must be static")
            fast = {}
            for key, var in self.weights.items():
                if key in self.train_keys or key.endswith("_f"):
                    expanded = var[None] if len(var.shape) == 2 else var[None, None]
                    fast[key] = tf.tile(expanded, [batch] + [1] * (len(expanded.shape) - 1))
                else:
                    fast[key] = var
            return self._adapt(inputa, labela, inputb, labelb, fast, num_steps, batch)
        batch = inputa.shape[0].value
        if batch is not None and batch <= UNROLL_MAX_TASKS:
            per_task = [self._adapt(inputa[t], labela[t], inputb[t], labelb[t], dict(self.weights), num_steps, None)
                        for t in range(batch)]
            return _stack_tasks(per_task)
        return self._adapt_each_task(inputa, labela, inputb, labelb, num_steps)

    def _adapt_each_task(self, inputa, labela, inputb, labelb, num_steps):
        """Conv net, large meta-batch: a map_fn (while loop) over tasks, as upstream."""
        keys = ["outputa", "lossa", "outputb_pre"] + (["accuracya"] if self.classification else [])
        lists = ["outputbs", "lossesb"] + (["accuraciesb"] if self.classification else [])
        mask_keys = self.train_keys if self.spec.use_M else []

        def one_task(elems):
            out = self._adapt(*(elems + (dict(self.weights), num_steps, None)))
            return ([out[k] for k in keys], [out[k] for k in lists], [out["masks"][k] for k in mask_keys])

        dtypes = ([tf.float32] * len(keys), [[tf.float32] * num_steps] * len(lists), [tf.float32] * len(mask_keys))
        singles, series, masks = tf.map_fn(one_task, (inputa, labela, inputb, labelb), dtype=dtypes,
                                           parallel_iterations=int(inputa.shape[0].value or 1))
        out = dict(zip(keys, singles))
        out.update(zip(lists, series))
        out["masks"] = dict(zip(mask_keys, masks)) if self.spec.use_M else None
        out["fast_weights"] = None     # per-task conv weights are not kept (memory)
        return out

    def mask_keep_probability(self):
        """Mean P(mask=1) per masked layer, for TensorBoard (upstream logs the complement, 'change probs')."""
        keys = sorted(k for k in self.weights if k.endswith("_prob"))
        return {k: tf.reduce_mean(tf.sigmoid(self.weights[k])) for k in keys}


def _batch_matmul(a, b):
    """[B, n, k] x [B, k, m]. The V1 op: equal batch sizes need none of V2's broadcasting ops (graph and step)."""
    return tf.raw_ops.BatchMatMul(x=a, y=b)


def _bias_key(weight_key):
    """'w2' -> 'b2', 'conv3' -> 'b3': a layer's bias shares its weight's unit mask."""
    return "b" + "".join(c for c in weight_key if c.isdigit())


def _stack_tasks(per_task):
    out = {}
    for key in ("outputa", "lossa", "outputb_pre", "accuracya"):
        if key in per_task[0]:
            out[key] = tf.stack([t[key] for t in per_task])
    for key in ("outputbs", "lossesb", "accuraciesb"):
        if key in per_task[0]:
            out[key] = [tf.stack([t[key][j] for t in per_task]) for j in range(len(per_task[0][key]))]
    masks = per_task[0]["masks"]
    out["masks"] = None if masks is None else {k: tf.stack([t["masks"][k] for t in per_task]) for k in masks}
    out["fast_weights"] = {k: tf.stack([t["fast_weights"][k] for t in per_task]) for k in per_task[0]["fast_weights"]}
    return out
