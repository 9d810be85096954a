"""ProtoNets++, TADAM and AM3 graphs (TF 1.15): layers only; no flags, sessions or files.

One builder serves the four upstream scripts; they differ by two options of the config object:
  encoder_classifier_link: 'prototypical' (ProtoNets++: logits = -||q - p||) or 'cbn' (TADAM: task-conditioned
      FiLM layers in the backbone and a scaled metric);
  task_encoder: 'class_mean' (visual prototypes only), 'self_att_mlp' (AM3: p' = lam*p + (1-lam)*g(e) with an
      adaptive lam from the word embedding e), 'fixed_alpha_mlp' (AM3 with a constant lam = cfg.alpha).
AM3's mixing network sees the class (`--att_input` word, word_original, proto, combined: one lam per class) or
the class and the query (queryproto, queryword: one lam, hence one prototype, per query and class).
Every call that builds variables goes through tf.compat.v1.AUTO_REUSE scopes under 'Model', so the training
graph (several tasks, batch statistics) and evaluation graphs (one task, moving statistics) share weights.
"""

from common.npu_session import dropout as npu_dropout
from common.tf_compat import tf

v1 = tf.compat.v1


@tf.custom_gradient
def swish(x):
    """x * sigmoid(x); the backward pass recomputes the sigmoid instead of keeping it (less peak memory)."""
    def grad(dy):
        s = tf.sigmoid(x)
        return dy * (s * (1.0 + x * (1.0 - s)))
    return x * tf.sigmoid(x), grad


ACTIVATIONS = {
    "relu": tf.nn.relu,
    "selu": tf.nn.selu,
    "swish-1": swish,
}


def filters_per_block(cfg):
    return [int(round(cfg.num_filters * cfg.block_size_growth ** i)) for i in range(cfg.num_blocks)]


def _l2(scale):
    # Same penalty as tf.contrib.layers.l2_regularizer: scale * sum(w^2) / 2.
    return (lambda w: scale * tf.nn.l2_loss(w)) if scale else None


def _init(cfg):
    # Upstream's scaled-variance normal: stddev = sqrt(2 * factor / fan_out).
    return v1.variance_scaling_initializer(scale=2.0 * cfg.weights_initializer_factor, mode="fan_out",
                                           distribution="untruncated_normal")


def _bn(x, training, name):
    return v1.layers.batch_normalization(x, momentum=0.95, epsilon=1e-3, training=training, name=name)


def _dense_bn(x, units, cfg, training, name, activation, weight_decay):
    """FC -> batch norm -> activation: upstream's slim.fully_connected under its batch-norm arg scope."""
    h = v1.layers.dense(x, units, use_bias=False, kernel_initializer=_init(cfg),
                        kernel_regularizer=_l2(weight_decay), name=name)
    h = _bn(h, training, name + "/bn")
    return activation(h) if activation is not None else h


def _film(h, gamma, beta):
    """(gamma + 1) * h + beta, with gamma, beta [tasks, C] broadcast over the images of each task."""
    tasks = tf.shape(gamma)[0]
    shape = tf.shape(h)
    h5 = tf.reshape(h, tf.concat([[tasks, -1], shape[1:]], axis=0))
    h5 = (gamma[:, None, None, None, :] + 1.0) * h5 + beta[:, None, None, None, :]
    return tf.reshape(h5, shape)


def backbone(images, cfg, training, film=None, scope="feature_extractor_encoder"):
    """ResNet-12-like feature extractor: images [B, S, S, 3] float -> features [B, D].

    Blocks of `num_units_in_block` conv3x3+BN units (swish between units, after the 1x1 conv+BN shortcut is
    added), max-pool after the first `num_max_pools` blocks, global average pool. `film` maps (block, unit)
    to (gamma, beta) [tasks, C] applied after that unit's batch norm (TADAM's conditional batch norm).
    """
    act = ACTIVATIONS[cfg.activation]
    film = film or {}

    def conv(h, channels, kernel, name):
        h = v1.layers.conv2d(h, channels, kernel, padding="same", use_bias=False, kernel_initializer=_init(cfg),
                             kernel_regularizer=_l2(cfg.weight_decay), name=name)
        return _bn(h, training, name + "/bn")

    with v1.variable_scope(scope, reuse=v1.AUTO_REUSE):
        h = images
        for i, channels in enumerate(filters_per_block(cfg)):
            shortcut = conv(h, channels, 1, "shortcut%d" % i)
            for j in range(cfg.num_units_in_block):
                h = conv(h, channels, 3, "conv%d_%d" % (i, j))
                if cfg.conv_dropout:
                    h = npu_dropout(h, 1.0 - cfg.conv_dropout, training)
                if (i, j) in film and not cfg.cbn_after_shortcut:
                    h = _film(h, *film[(i, j)])
                if j < cfg.num_units_in_block - 1:
                    h = act(h)
            h = h + shortcut
            last = (i, cfg.num_units_in_block - 1)
            if last in film and cfg.cbn_after_shortcut:
                h = _film(h, *film[last])
            h = act(h)
            if i < cfg.num_max_pools:
                h = v1.layers.max_pooling2d(h, 2, 2, padding="same")
        if cfg.feature_expansion_size:
            if cfg.feature_dropout_p:
                h = npu_dropout(h, 1.0 - cfg.feature_dropout_p, training)
            h = npu_dropout(h, cfg.dropout, training) if cfg.dropout < 1.0 else h
            h = act(conv(h, cfg.feature_expansion_size, 1, "feature_expansion"))
        if cfg.embedding_pooled:
            h = tf.reduce_mean(h, axis=[1, 2])
        else:
            h = v1.layers.flatten(h)
        if cfg.feature_dropout_p:
            h = npu_dropout(h, 1.0 - cfg.feature_dropout_p, training)
        if cfg.feature_bottleneck_size:
            h = v1.layers.dense(h, cfg.feature_bottleneck_size, activation=act, kernel_initializer=_init(cfg),
                                kernel_regularizer=_l2(cfg.weight_decay), name="feature_bottleneck")
    return h


def feature_dim(cfg, image_size):
    if cfg.feature_bottleneck_size:
        return cfg.feature_bottleneck_size
    channels = cfg.feature_expansion_size or filters_per_block(cfg)[-1]
    if cfg.embedding_pooled:
        return channels
    size = image_size
    for _ in range(min(cfg.num_max_pools, cfg.num_blocks)):
        size = (size + 1) // 2
    return channels * size * size


def _per_task(features, tasks):
    """[tasks * M, D] -> [tasks, M, D]."""
    return tf.reshape(features, [tasks, -1, int(features.shape[-1])])


def prototypes(support_features, ways, shots):
    """Class means of class-major support features [T, ways*shots, D] -> [T, ways, D]."""
    t = tf.shape(support_features)[0]
    return tf.reduce_mean(tf.reshape(support_features, [t, ways, shots, int(support_features.shape[-1])]), axis=2)


def film_parameters(task_embedding, cfg, training):
    """TADAM task-embedding network: per conditioned unit, gamma and beta [T, C] from the task embedding.

    Each is a `cbn_num_layers` FC stack (residual from the second layer on) times a scalar that starts at 0,
    so training starts from the unconditioned network; the scalars carry their own weight decay.
    """
    act = ACTIVATIONS[cfg.activation]
    film = {}
    units = cfg.num_units_in_block
    filters = filters_per_block(cfg)
    with v1.variable_scope("cbn_params", reuse=v1.AUTO_REUSE):
        for i, channels in enumerate(filters):
            for j in range(units):
                if cfg.cbn_per_block and j < units - 1:
                    continue
                if cfg.cbn_per_network and (j < units - 1 or i < len(filters) - 1):
                    continue
                out = []
                for kind in ("gamma", "beta"):
                    h = task_embedding
                    for layer in range(cfg.cbn_num_layers):
                        previous = h
                        h = v1.layers.dense(h, channels, kernel_initializer=v1.variance_scaling_initializer(
                            scale=0.2, mode="fan_out", distribution="untruncated_normal"),
                            kernel_regularizer=_l2(cfg.weight_decay), name="%s%d_%d_%d" % (kind, i, j, layer))
                        if layer > 0:
                            h = h + previous
                        if layer < cfg.cbn_num_layers - 1:
                            h = act(h)
                    out.append(h * _film_premultiplier(task_embedding, cfg, "%s_weight%d_%d" % (kind, i, j)))
                film[(i, j)] = tuple(out)
    return film


def _film_premultiplier(task_embedding, cfg, name):
    """The factor that scales a FiLM output, 0 at the start so training begins from the unconditioned network.

    'var': one learned scalar, L2 decay weight_decay_cbn.
    'projection': a per-task factor [T, 1] = linear map of the task embedding (kernel and bias start at 0; kernel
    decay weight_decay, the factor itself decay weight_decay_cbn). Upstream stored this factor through tf.assign
    into a variable, which blocks the gradient, so its projection never left 0 and FiLM stayed off; here it learns.
    """
    if cfg.cbn_premultiplier == "var":
        factor = v1.get_variable(name, shape=[], initializer=v1.zeros_initializer())
        if cfg.weight_decay_cbn:   # get_variable(regularizer=) would build it before an in-graph loop: stale there
            with tf.name_scope(factor.op.name + "/Regularizer/"):
                v1.losses.add_loss(_l2(cfg.weight_decay_cbn)(factor),
                                   loss_collection=v1.GraphKeys.REGULARIZATION_LOSSES)
        return factor
    factor = v1.layers.dense(task_embedding, 1, kernel_initializer=v1.zeros_initializer(),
                             bias_initializer=v1.zeros_initializer(), kernel_regularizer=_l2(cfg.weight_decay),
                             name=name)
    if cfg.weight_decay_cbn:
        v1.losses.add_loss(tf.multiply(cfg.weight_decay_cbn, tf.nn.l2_loss(factor), name=name + "_decay"),
                           loss_collection=v1.GraphKeys.REGULARIZATION_LOSSES)
    return factor


def word_transform(embeddings, cfg, out_dim, training):
    """g(e): class word embedding [..., E] -> visual feature space [..., out_dim]."""
    act = ACTIVATIONS[cfg.activation_mlp]
    with v1.variable_scope("mlp_transformer", reuse=v1.AUTO_REUSE):
        if cfg.mlp_type == "linear":
            return _dense_bn(embeddings, out_dim, cfg, training, "mlp_layer", None, cfg.mlp_weight_decay)
        h = _dense_bn(embeddings, 300, cfg, training, "mlp_layer", act, cfg.mlp_weight_decay)
        h = npu_dropout(h, 1.0 - cfg.mlp_dropout, training) if cfg.mlp_dropout else h
        return _dense_bn(h, out_dim, cfg, training, "mlp_layer_1", None, cfg.mlp_weight_decay)


def mixing_coefficient(inputs, cfg, training):
    """lam = sigmoid(h(inputs)) [..., 1]: AM3's adaptive weight of the visual prototype."""
    act = ACTIVATIONS[cfg.activation_mlp]
    with v1.variable_scope("self_attention", reuse=v1.AUTO_REUSE):
        if cfg.att_type == "linear":
            h = _dense_bn(inputs, 1, cfg, training, "self_att_layer", None, cfg.att_weight_decay)
        else:
            h = _dense_bn(inputs, 300, cfg, training, "self_att_layer", act, cfg.att_weight_decay)
            h = npu_dropout(h, 1.0 - cfg.att_dropout, training) if cfg.att_dropout else h
            h = _dense_bn(h, 1, cfg, training, "self_att_layer_1", None, cfg.att_weight_decay)
        return tf.sigmoid(h)


QUERY_ATT_INPUTS = ("queryproto", "queryword")


def per_query_mixing(cfg):
    """True when AM3 mixes one prototype per query and class (query-dependent --att_input)."""
    return cfg.task_encoder == "self_att_mlp" and cfg.att_input in QUERY_ATT_INPUTS


def cross_modal_prototypes(visual, class_embeddings, cfg, training, queries=None):
    """AM3: p' = lam * p + (1 - lam) * g(e).

    visual [T, N, D], class_embeddings [T, N, E] -> (p' [T, N, D], lam [T, N, 1]); with a query-dependent
    --att_input, lam comes from [p or g(e), q] for every query q [T, Q, D] and class, and the result is
    (p' [T, Q, N, D], lam [T, Q, N, 1]).
    """
    with v1.variable_scope("class_encoder", reuse=v1.AUTO_REUSE):
        transformed = word_transform(class_embeddings, cfg, int(visual.shape[-1]), training)
        if cfg.task_encoder == "fixed_alpha_mlp":
            lam = tf.fill(tf.concat([tf.shape(visual)[:2], [1]], axis=0), float(cfg.alpha))
        elif per_query_mixing(cfg):
            tile_q = tf.stack([1, tf.shape(queries)[1], 1, 1])
            visual = tf.tile(visual[:, None], tile_q)              # [T, Q, N, D]
            transformed = tf.tile(transformed[:, None], tile_q)
            per_pair = tf.tile(queries[:, :, None], tf.stack([1, 1, tf.shape(class_embeddings)[1], 1]))
            side = visual if cfg.att_input == "queryproto" else transformed
            lam = mixing_coefficient(tf.concat([side, per_pair], axis=-1), cfg, training)
        else:
            inputs = {"word": transformed, "word_original": class_embeddings, "proto": visual,
                      "combined": tf.concat([visual, transformed], axis=-1)}[cfg.att_input]
            lam = mixing_coefficient(inputs, cfg, training)
        return lam * visual + (1.0 - lam) * transformed, lam


def euclidean_distance(queries, protos):
    """||q - p|| for queries [T, Q, D], prototypes [T, N, D] (or one set per query [T, Q, N, D]) -> [T, Q, N]
    (not squared, as upstream)."""
    diff = queries[:, :, None, :] - (protos if protos.shape.ndims == 4 else protos[:, None, :, :])
    return tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(diff), axis=-1), 1e-12))


def scaled_metric(distance, cfg):
    """TADAM's metric scaling: sum_p w_p * d^p with w_1 = -metric_multiplier_init, higher orders 0 at start."""
    with v1.variable_scope("polynomial_metric", reuse=v1.AUTO_REUSE):
        out = 0.0
        for power in range(1, cfg.polynomial_metric_order + 1):
            weight = v1.get_variable("power_weight%d" % power, shape=[],
                                     initializer=v1.constant_initializer(
                                         -cfg.metric_multiplier_init if power == 1 else 0.0),
                                     trainable=bool(cfg.metric_multiplier_trainable))
            out = out + weight * tf.pow(distance, float(power))
        return out


def uses_word_embeddings(cfg):
    return cfg.task_encoder in ("self_att_mlp", "fixed_alpha_mlp")


def episode_logits(cfg, support, query, class_embeddings, ways, shots, training):
    """Logits [T, Q, ways] for episodes: support float [T, ways*shots, S, S, 3] (class-major), query float
    [T, Q, S, S, 3], class_embeddings [T, ways, E] (or None for the visual-only models).

    Returns a dict with 'logits', 'lambda' ([T, ways, 1], ones for visual-only models; [T, Q, ways, 1] with a
    query-dependent --att_input) and 'prototypes' ([T, ways, D], or [T, Q, ways, D]).
    """
    tasks = tf.shape(support)[0]
    size = support.shape[2:]
    flat_support = tf.reshape(support, tf.concat([[-1], tf.shape(support)[2:]], axis=0))
    flat_query = tf.reshape(query, tf.concat([[-1], tf.shape(query)[2:]], axis=0))
    flat_support.set_shape([None] + size.as_list())
    flat_query.set_shape([None] + size.as_list())
    with v1.variable_scope("Model", reuse=v1.AUTO_REUSE):
        classifier_scope = "feature_extractor_encoder" if cfg.encoder_sharing == "shared" \
            else "feature_extractor_classifier"
        film = None
        if cfg.encoder_classifier_link == "cbn":
            # Task embedding: mean of the class prototypes of the unconditioned network.
            raw = _per_task(backbone(flat_support, cfg, training), tasks)
            task_embedding = tf.reduce_mean(prototypes(raw, ways, shots), axis=1)
            film = film_parameters(task_embedding, cfg, training)
        support_features = _per_task(backbone(flat_support, cfg, training, film, scope=classifier_scope), tasks)
        query_features = _per_task(backbone(flat_query, cfg, training, film, scope=classifier_scope), tasks)
        protos = prototypes(support_features, ways, shots)
        lam = tf.ones([tasks, ways, 1])
        if uses_word_embeddings(cfg):
            protos, lam = cross_modal_prototypes(protos, class_embeddings, cfg, training, queries=query_features)
        distance = euclidean_distance(query_features, protos)
        if cfg.encoder_classifier_link == "cbn":
            # Also with per-query prototypes: upstream's per-query TADAM head negated the distance before this
            # scaling, so its logits grew with the distance; not copied.
            logits = scaled_metric(distance, cfg)
        else:
            logits = -distance
    return {"logits": logits, "lambda": lam, "prototypes": protos}


def auxiliary_logits(cfg, images, num_classes, training):
    """TADAM's auxiliary task: all-classes classification on the shared (unconditioned) feature extractor."""
    with v1.variable_scope("Model", reuse=v1.AUTO_REUSE):
        features = backbone(images, cfg, training)
        return v1.layers.dense(features, num_classes, kernel_initializer=v1.glorot_uniform_initializer(),
                               name="pretrain_logits")
