"""The SWA callback's overhead, measured so that machine-load drift cancels out.

In one process a plain-SGD model and an SWA model (same initial weights, same data, the same shuffled batches
in every epoch) train with their epochs interleaved: one epoch of one, then one epoch of the other, the order
alternating per epoch, so both see the same machine load. Each `fit` runs in its own thread, but only the
thread whose turn it is runs; an epoch is timed (wall clock, and the process's CPU time, which only that
thread's work adds to) from its first callback hook to its last, so every SWA hook is inside. The SGD run has
no callback at all. Reported per round and pooled over rounds: median epoch times, the median of the
per-epoch paired ratios (SWA epoch / SGD epoch of the same index) with a 95% interval, and the time spent
inside the SWA hooks, for the SWA phase and, as a control where the callback does almost nothing, for the
epochs before it.

    python swa/bench_overhead.py [--rounds=3] [--train_epochs=100] [--swa_start=75] [--lock=/tmp/bench.lock]
"""
import os
import sys

# As in the seed script: this directory holds keras.py, which must not shadow the real `keras`.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import fcntl  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


class Baton(object):
    """A fixed sequence of turns (runner names); only the runner whose turn it is may run."""

    def __init__(self, turns):
        self.turns = list(turns)
        self.pos = 0
        self.failed = None
        self.cond = threading.Condition()

    def wait(self, name):
        with self.cond:
            while self.failed is None and self.pos < len(self.turns) and self.turns[self.pos] != name:
                self.cond.wait()
            if self.failed is not None:
                raise RuntimeError("the other run failed: %s" % (self.failed,))

    def pass_on(self):
        with self.cond:
            self.pos += 1
            self.cond.notify_all()

    def fail(self, error):
        with self.cond:
            self.failed = error
            self.cond.notify_all()


def interleaved_turns(names, epochs, first=0):
    """One turn of each runner per epoch, who goes first alternating per epoch (starting with names[first])."""
    turns = []
    for epoch in range(epochs):
        order = list(names) if (epoch + first) % 2 == 0 else list(reversed(names))
        turns.extend(order)
    return turns


def _make_callbacks(tf, name, baton, seed, swa=None):
    """(first, last) callbacks of a run: take the turn and start the clock; stop it and pass the turn on."""

    class TurnStart(tf.keras.callbacks.Callback):
        def __init__(self):
            super(TurnStart, self).__init__()
            self.t0 = None
            self.hooks0 = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            baton.wait(name)
            np.random.seed(seed * 100003 + epoch)      # fit shuffles right after this hook: same batches for both
            self.hooks0 = swa.hook_seconds if swa is not None else 0.0
            self.cpu0 = time.process_time()
            self.t0 = time.perf_counter()

    class TurnEnd(tf.keras.callbacks.Callback):
        def __init__(self):
            super(TurnEnd, self).__init__()
            self.times = {}
            self.cpu_times = {}
            self.hook_times = {}

        def on_epoch_end(self, epoch, logs=None):
            self.times[epoch] = time.perf_counter() - start.t0
            self.cpu_times[epoch] = time.process_time() - start.cpu0
            self.hook_times[epoch] = (swa.hook_seconds if swa is not None else 0.0) - start.hooks0
            if epoch < self.params["epochs"] - 1:
                baton.pass_on()

        def on_train_end(self, logs=None):
            baton.pass_on()       # after the last epoch, once every train-end hook has run

    start = TurnStart()
    return start, TurnEnd()


def run_round(config, round_index, sess, train):
    """One interleaved SGD/SWA training; returns {'sgd': {epoch: s}, 'swa': {epoch: s}, 'hooks': {epoch: s}}."""
    from common.tf_compat import tf
    from swa.model import build_model
    from swa.tfkeras import SWA

    K = tf.keras.backend
    tf.compat.v1.set_random_seed(config.seed + round_index)
    models = {}
    for name in ("sgd", "swa"):
        models[name] = build_model()
        models[name].compile(optimizer=tf.keras.optimizers.SGD(config.learning_rate),
                             loss="sparse_categorical_crossentropy", metrics=["acc"])
    models["swa"].set_weights(models["sgd"].get_weights())
    for model in models.values():      # build the graphs here, not concurrently in the threads
        model._make_train_function()
    swa = SWA(start_epoch=config.swa_start, lr_schedule=config.lr_schedule, swa_lr=config.swa_lr,
              swa_lr2=config.swa_lr2, swa_freq=config.swa_freq)
    baton = Baton(interleaved_turns(("sgd", "swa"), config.train_epochs, first=round_index))
    ends, errors = {}, []

    def fit(name):
        try:
            K.set_session(sess)           # the Keras session is per thread
            start, end = _make_callbacks(tf, name, baton, config.seed + round_index,
                                         swa if name == "swa" else None)
            ends[name] = end
            callbacks = [start] + ([swa] if name == "swa" else []) + [end]
            baton.wait(name)              # fit's own set-up runs in this runner's first turn
            with sess.graph.as_default():
                models[name].fit(train[0], train[1], batch_size=config.batch_size, epochs=config.train_epochs,
                                 callbacks=callbacks, verbose=0, shuffle=True)
        except BaseException as err:      # noqa: B902 - report any failure and release the other thread
            errors.append((name, err))
            baton.fail("%s: %r" % (name, err))

    threads = [threading.Thread(target=fit, args=(name,), name="bench-" + name) for name in ("sgd", "swa")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0][1]
    return {"sgd": ends["sgd"].times, "swa": ends["swa"].times, "hooks": ends["swa"].hook_times,
            "sgd_cpu": ends["sgd"].cpu_times, "swa_cpu": ends["swa"].cpu_times}


def summarise(times, first_swa_epoch, epochs):
    """Medians over the pre-SWA epochs (without the first) and the SWA training epochs (without the last,
    which for a model with batch norm is SWA's forward-only pass); ratios and the callback's share."""
    out = {}
    phases = {"pre": range(1, first_swa_epoch), "swa": range(first_swa_epoch, epochs - 1)}
    for phase, epochs_in in phases.items():
        epochs_in = [e for e in epochs_in if e in times["sgd"] and e in times["swa"]]
        if not epochs_in:
            continue
        sgd = np.array([times["sgd"][e] for e in epochs_in])
        swa = np.array([times["swa"][e] for e in epochs_in])
        hooks = np.array([times["hooks"][e] for e in epochs_in])
        sgd_cpu = np.array([times["sgd_cpu"][e] for e in epochs_in])
        swa_cpu = np.array([times["swa_cpu"][e] for e in epochs_in])
        out[phase] = {"epochs": len(epochs_in), "sgd": float(np.median(sgd)), "swa": float(np.median(swa)),
                      "ratio_of_medians": float(np.median(swa) / np.median(sgd)),
                      "median_paired_ratio": float(np.median(swa / sgd)),
                      "paired_ratios": (swa / sgd).tolist(),
                      "cpu_sgd": float(np.median(sgd_cpu)), "cpu_swa": float(np.median(swa_cpu)),
                      "cpu_paired_ratios": (swa_cpu / sgd_cpu).tolist(),
                      "hooks": float(np.median(hooks)), "hook_share": float(np.sum(hooks) / np.sum(swa)),
                      "hooks_total": float(np.sum(hooks)), "swa_total": float(np.sum(swa))}
    return out


def median_ci(values, z=1.96):
    """Distribution-free ~95% interval for the median: order statistics n/2 -+ z*sqrt(n)/2."""
    v = np.sort(np.asarray(values, np.float64))
    n = len(v)
    half = z * np.sqrt(n) / 2.0
    lo, hi = int(np.floor(n / 2.0 - half)), int(np.ceil(n / 2.0 + half)) - 1
    return v[max(lo, 0)], v[min(hi, n - 1)]


def _line(label, s):
    return ("%s: %d epochs, median epoch sgd %.4f s, swa %.4f s, ratio %+.1f%%, median paired ratio %+.1f%%; "
            "process CPU per epoch sgd %.4f s, swa %.4f s, median paired ratio %+.1f%%; "
            "in SWA hooks %.2f ms/epoch (%.2f%% of the SWA epochs)"
            % (label, s["epochs"], s["sgd"], s["swa"], 100 * (s["ratio_of_medians"] - 1),
               100 * (s["median_paired_ratio"] - 1), s["cpu_sgd"], s["cpu_swa"],
               100 * (np.median(s["cpu_paired_ratios"]) - 1), 1e3 * s["hooks"], 100 * s["hook_share"]))


def benchmark(config, rounds, printer=print):
    """Run `rounds` interleaved rounds in this process; print and return per-round and pooled summaries."""
    from common.tf_compat import tf
    from common import npu_session
    from swa import data

    config.validate()
    x, y = data.make_blobs(config.num_samples, seed=config.data_seed)
    train, _ = data.split(x, y, config.test_fraction)
    tf.compat.v1.reset_default_graph()
    tf.keras.backend.clear_session()
    sess = npu_session.keras_session(config.npu)
    first_swa_epoch = config.swa_start - 1
    results = []
    for r in range(rounds):
        times = run_round(config, r, sess, train)
        summary = summarise(times, first_swa_epoch, config.train_epochs)
        results.append(summary)
        for phase in ("pre", "swa"):
            if phase in summary:
                label = "pre-SWA epochs" if phase == "pre" else "SWA phase"
                printer(_line("round %d %s" % (r + 1, label), summary[phase]))
    for phase, label in (("pre", "pre-SWA epochs (control: the callback does ~nothing)"), ("swa", "SWA phase")):
        parts = [s[phase] for s in results if phase in s]
        if not parts:
            continue
        wall = np.concatenate([p["paired_ratios"] for p in parts])
        cpu = np.concatenate([p["cpu_paired_ratios"] for p in parts])
        share = sum(p["hooks_total"] for p in parts) / sum(p["swa_total"] for p in parts)
        typical = np.median([p["hooks"] for p in parts]) / np.median([p["swa"] for p in parts])
        wall_lo, wall_hi = median_ci(wall)
        cpu_lo, cpu_hi = median_ci(cpu)
        printer("all %d rounds, %s: median of %d paired epoch ratios, wall %+.1f%% (95%% CI %+.1f%% .. %+.1f%%), "
                "process CPU %+.1f%% (95%% CI %+.1f%% .. %+.1f%%); callback's own time %.2f%% of the SWA epochs "
                "(median epoch: %.2f%%)"
                % (rounds, label, len(wall), 100 * (np.median(wall) - 1), 100 * (wall_lo - 1), 100 * (wall_hi - 1),
                   100 * (np.median(cpu) - 1), 100 * (cpu_lo - 1), 100 * (cpu_hi - 1), 100 * share, 100 * typical))
    return results


def main(argv=None):
    from common.ascend_flags import add_ascend_arguments, npu_options_from
    from common.errors import ArgumentParser, main_guard
    from common.options import add_arguments, values
    from swa.options import pick

    @main_guard
    def run():
        parser = ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--rounds", type=int, default=3, help="interleaved trainings, one after the other")
        add_arguments(parser, pick("train_epochs", "batch_size", "num_samples", "swa_start", "lr_schedule",
                                   "swa_freq", "seed"))
        parser.add_argument("--lock", default="", help="hold this lock file (flock) while measuring")
        add_ascend_arguments(parser)
        args = parser.parse_args(argv)
        from common.errors import require
        from swa.train import TrainConfig
        require(args.rounds > 0, "--rounds must be positive, got %d" % args.rounds)
        config = TrainConfig(npu=npu_options_from(args), **values(args, pick(
            "train_epochs", "batch_size", "num_samples", "swa_start", "lr_schedule", "swa_freq", "seed")))
        lock = open(args.lock, "a") if args.lock else None
        try:
            if lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
            benchmark(config, args.rounds)
        finally:
            if lock:
                lock.close()

    run()


if __name__ == "__main__":
    main()
