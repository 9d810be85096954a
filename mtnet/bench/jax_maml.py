"""MT-net's seed meta-training step (sinusoid, MAML or MT-net) written in JAX, as a speed reference for
mtnet/benchmark.py (issue 27). Not part of the project: run it with a scratch interpreter that has JAX
(JAX is never a project dependency, and nothing in the project imports this file).

    python mtnet/bench/jax_maml.py --variant=maml --mode=jit --iterations=2000
    python mtnet/bench/jax_maml.py --variant=mtnet --mode=scan --iterations=2000 --loop=100

The step is the one `mtnet/main.py` trains with the seed flags (mtnet/test/seed_config.sh): meta_batch 4
sinusoid tasks drawn inside the compiled step (amplitude U[0.1, 5], phase U[0, pi], frequency U[0.8, 1.2],
x U[-5, 5]), 10 support + 10 query points, a 1-40-40-1 ReLU net without normalisation, one inner step of
update_lr 0.01 on the support MSE, second order, and Adam (TF 1.x's update, lr 0.001) on the query MSE after
the step, averaged over tasks. MT-net adds after every layer a matrix T (identity-initialised, outer loop only)
and a per-unit 0/1 mask M (share_M) on the inner step, drawn per task by a binary Gumbel-softmax with a
straight-through gradient to its logits (mtnet/model.py describes the same computation in TensorFlow).

Modes: `jit` compiles one meta-step (tasks vmapped) and calls it once per meta-iteration; `scan` compiles
--loop meta-steps (lax.scan) per call. Every call ends by fetching the last step's post-update loss to the
host, as the TensorFlow loop fetches its losses. Step time is printed as common/step_timer.py's
`step_time_summary:` line (ms per meta-iteration = mean_dt * 1000), with the same warm-up rule as the trainer
(min(50, iterations // 10) steps, rounded up to whole calls: compilation is excluded).
"""
import argparse
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

SINE_AMP = (0.1, 5.0)
SINE_PHASE = (0.0, math.pi)
SINE_FREQ = (0.8, 1.2)
SINE_X = (-5.0, 5.0)
FINAL_WINDOW = 5000        # iterations averaged for the final line, as mtnet/trainer.py
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8     # tf.compat.v1.train.AdamOptimizer's defaults


class Setup(object):
    """The seed configuration's numbers (mtnet/test/seed_config.sh) and the variant's switches."""

    def __init__(self, variant, meta_batch=4, support=10, query=10, hidden=40, layers=2, update_lr=0.01,
                 meta_lr=0.001, temp=1.0, logit_init=0.0):
        self.use_T = self.use_M = variant == "mtnet"       # MT-net: share_M too (one mask bit per unit)
        self.meta_batch, self.support, self.query = meta_batch, support, query
        self.dims = [1] + [hidden] * layers + [1]
        self.update_lr, self.meta_lr, self.temp, self.logit_init = update_lr, meta_lr, temp, logit_init


def init_params(setup, key):
    """w_i ~ truncated normal(0.01), b_i = 0; MT-net: T_i = identity, mask logits = logit_init per unit."""
    params = {}
    for i in range(1, len(setup.dims)):
        key, sub = jax.random.split(key)
        fan_in, units = setup.dims[i - 1], setup.dims[i]
        params["w%d" % i] = 0.01 * jax.random.truncated_normal(sub, -2.0, 2.0, (fan_in, units), jnp.float32)
        params["b%d" % i] = jnp.zeros((units,), jnp.float32)
        if setup.use_T:
            params["w%d_f" % i] = jnp.eye(units, dtype=jnp.float32)
        if setup.use_M:
            params["w%d_prob" % i] = jnp.full((units,), setup.logit_init, jnp.float32)
    return params


def forward(setup, params, x):
    """One task's predictions: x [n, 1] -> [n, 1]; ReLU between layers, T after each layer's affine map."""
    layers = len(setup.dims) - 1
    h = x
    for i in range(1, layers + 1):
        h = h @ params["w%d" % i] + params["b%d" % i]
        if setup.use_T:
            h = h @ params["w%d_f" % i]
        if i < layers:
            h = jax.nn.relu(h)
    return h


def mse(setup, params, x, y):
    return jnp.mean(jnp.square(forward(setup, params, x) - y))


def unit_mask(logits, u, temp):
    """0/1 per unit, P(1) = sigmoid(logits), forward exactly hard; gradient that of the soft sample.
    u: uniform noise in [1e-20, 1) of the logits' shape."""
    y = logits + jnp.log(u) - jnp.log1p(-u + 1e-20)      # logit + Logistic noise = the Gumbel pair's difference
    soft = jax.nn.sigmoid(y / temp)
    return (y > 0).astype(jnp.float32) + soft - lax.stop_gradient(soft)


def task_loss(setup, params, xa, ya, xb, yb, noise):
    """Query MSE after one masked (MT-net) or plain (MAML) inner step from the shared weights, and the support
    MSE before it. Only w_i, b_i adapt; T and the mask logits change in the outer loop alone.
    noise: {i: uniform noise of layer i's mask} (MT-net)."""
    fast_keys = [k for k in params if k[0] in "wb" and not k.endswith("_f") and not k.endswith("_prob")]
    fast = {k: params[k] for k in fast_keys}

    def support_loss(weights):
        return mse(setup, dict(params, **weights), xa, ya)

    pre, grads = jax.value_and_grad(support_loss)(fast)      # second order: the outer grad differentiates this
    if setup.use_M:
        for i in range(1, len(setup.dims)):
            mask = unit_mask(params["w%d_prob" % i], noise[i], setup.temp)
            grads["w%d" % i] = grads["w%d" % i] * mask[None, :]
            grads["b%d" % i] = grads["b%d" % i] * mask
    adapted = dict(params, **{k: fast[k] - setup.update_lr * grads[k] for k in fast_keys})
    return mse(setup, adapted, xb, yb), pre


def sample_tasks(setup, key):
    """A meta-batch of sinusoid tasks: x, y [B, support + query, 1]."""
    b, n = setup.meta_batch, setup.support + setup.query
    ka, kp, kf, kx = jax.random.split(key, 4)
    amp = jax.random.uniform(ka, (b, 1, 1), jnp.float32, *SINE_AMP)
    phase = jax.random.uniform(kp, (b, 1, 1), jnp.float32, *SINE_PHASE)
    freq = jax.random.uniform(kf, (b, 1, 1), jnp.float32, *SINE_FREQ)
    x = jax.random.uniform(kx, (b, n, 1), jnp.float32, *SINE_X)
    return x, amp * jnp.sin(freq * x - phase)


def adam(setup, params, grads, opt):
    """tf.compat.v1.train.AdamOptimizer's update (bias correction folded into the step size)."""
    m, v, t = opt
    t = t + 1.0
    lr = setup.meta_lr * jnp.sqrt(1.0 - ADAM_B2 ** t) / (1.0 - ADAM_B1 ** t)
    m = {k: ADAM_B1 * m[k] + (1.0 - ADAM_B1) * grads[k] for k in grads}
    v = {k: ADAM_B2 * v[k] + (1.0 - ADAM_B2) * jnp.square(grads[k]) for k in grads}
    params = {k: params[k] - lr * m[k] / (jnp.sqrt(v[k]) + ADAM_EPS) for k in params}
    return params, (m, v, t)


def mask_noise(setup, key):
    """{layer: uniform noise [B, units]} for MT-net's masks, one draw per task and layer ({} for MAML)."""
    if not setup.use_M:
        return {}
    keys = jax.random.split(key, len(setup.dims) - 1)
    return {i: jax.random.uniform(keys[i - 1], (setup.meta_batch, setup.dims[i]), jnp.float32, 1e-20, 1.0)
            for i in range(1, len(setup.dims))}


def meta_loss(params, setup, x, y, noise):
    """(mean query loss after the inner step, mean support loss before it) over the meta-batch x, y [B, n, 1]."""
    s = setup.support
    post, pre = jax.vmap(lambda xt, yt, nt: task_loss(setup, params, xt[:s], yt[:s], xt[s:], yt[s:], nt))(
        x, y, noise)
    return jnp.mean(post), jnp.mean(pre)


def make_meta_step(setup):
    """state = (params, adam state, PRNG key) -> (state, [preloss, postloss]) for one meta-iteration."""

    def meta_step(state):
        params, opt, key = state
        key, k_tasks, k_masks = jax.random.split(key, 3)
        x, y = sample_tasks(setup, k_tasks)
        noise = mask_noise(setup, k_masks)
        (post, pre), grads = jax.value_and_grad(meta_loss, has_aux=True)(params, setup, x, y, noise)
        params, opt = adam(setup, params, grads, opt)
        return (params, opt, key), jnp.stack([pre, post])

    return meta_step


def initial_state(setup, seed):
    key = jax.random.PRNGKey(seed)
    key, sub = jax.random.split(key)
    params = init_params(setup, sub)
    # m and v need buffers of their own: the compiled call donates (reuses) its input buffers
    m, v = ({k: jnp.zeros_like(p) for k, p in params.items()} for _ in range(2))
    return params, (m, v, jnp.zeros((), jnp.float32)), key


def compiled_call(setup, mode, loop):
    """A compiled function state -> (state, losses of its last step) running 1 (jit) or `loop` (scan) steps."""
    step = make_meta_step(setup)
    if mode == "jit":
        return jax.jit(step, donate_argnums=0), 1

    def looped(state):
        state, losses = lax.scan(lambda carry, _: step(carry), state, None, length=loop)
        return state, losses[-1]
    return jax.jit(looped, donate_argnums=0), loop


def warmup_steps(total):
    """The trainer's rule (mtnet/trainer.py): the first min(50, total // 10) steps are not timed."""
    return min(50, max(1, total // 10))


def run(args, printer=print):
    setup = Setup(args.variant)
    call, per_call = compiled_call(setup, args.mode, args.loop)
    state = initial_state(setup, args.seed)
    warm = warmup_steps(args.iterations)
    timed_steps, timed_seconds, done, losses = 0, 0.0, 0, []
    while done < args.iterations:
        start = time.perf_counter()
        state, last = call(state)
        pre, post = (float(v) for v in np.asarray(last))     # one copy to the host, as TF fetches its losses
        seconds = time.perf_counter() - start
        if done >= warm:
            timed_steps, timed_seconds = timed_steps + per_call, timed_seconds + seconds
        done += per_call
        losses.append((pre, post))
        if not (math.isfinite(pre) and math.isfinite(post)):
            raise SystemExit("error: loss is %s at iteration %d" % (post, done - 1))
    tail = losses[-max(1, FINAL_WINDOW // per_call):]
    printer("final: preloss %.6f postloss %.6f (mean of the last %d iterations)"
            % (sum(p for p, _ in tail) / len(tail), sum(q for _, q in tail) / len(tail), len(tail) * per_call))
    mean_dt = timed_seconds / timed_steps if timed_steps else float("nan")
    # common/step_timer.py's summary format, so mtnet/benchmark.py reads both sides with one parser
    printer("step_time_summary: mean_dt=%.6f steps=%d warmup=%d throughput=%.2f tasks/s"
            % (mean_dt, timed_steps, done - timed_steps, setup.meta_batch / mean_dt if timed_steps else 0.0))


def check(setup, path_in, path_out):
    """Meta-loss and meta-gradient for given weights (p_<name>), tasks (x, y) and mask noise (u<layer>) read
    from an .npz; writes preloss, postloss and g_<name> to path_out (test/test_mtnet_benchmark.py compares
    them with mtnet/model.py's graph)."""
    data = np.load(path_in)
    params = {k[2:]: jnp.asarray(data[k]) for k in data.files if k.startswith("p_")}
    noise = {i: jnp.asarray(data["u%d" % i]) for i in range(1, len(setup.dims)) if "u%d" % i in data.files}
    x, y = jnp.asarray(data["x"]), jnp.asarray(data["y"])
    (post, pre), grads = jax.value_and_grad(meta_loss, has_aux=True)(params, setup, x, y, noise)
    out = {"g_" + k: np.asarray(g) for k, g in grads.items()}
    np.savez(path_out, preloss=np.asarray(pre), postloss=np.asarray(post), **out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--variant", choices=("maml", "mtnet"), default="maml")
    p.add_argument("--mode", choices=("jit", "scan"), default="jit")
    p.add_argument("--iterations", type=int, default=2000, help="meta-iterations (scan: a multiple of --loop)")
    p.add_argument("--loop", type=int, default=100, help="meta-steps per compiled call in scan mode")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--check", nargs=2, metavar=("IN_NPZ", "OUT_NPZ"),
                   help="no timing: the meta-gradient for the weights, tasks and mask noise of IN_NPZ")
    args = p.parse_args(argv)
    if args.loop < 1 or args.iterations < 1:
        p.error("--iterations and --loop must be positive")
    if args.mode == "jit":
        args.loop = 1
    if args.iterations % args.loop:
        p.error("--iterations=%d is not a multiple of --loop=%d" % (args.iterations, args.loop))
    if args.check:
        return check(Setup(args.variant), *args.check)
    printer = print
    printer("jax %s on %s, %s %s, XLA_FLAGS=%r" % (jax.__version__, jax.devices()[0].platform, args.variant,
                                                   "jit" if args.mode == "jit" else "scan loop=%d" % args.loop,
                                                   os.environ.get("XLA_FLAGS", "")))
    sys.stdout.flush()
    run(args, printer)


if __name__ == "__main__":
    main()
