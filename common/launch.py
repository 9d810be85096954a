"""Start N local worker processes of one training command and watch them.

    python -m common.launch --nproc 2 --output_root out -- python mobilenetv3/train_cls.py --flag=...

CPU/GPU: each worker gets TF_CONFIG for a loopback cluster (MultiWorkerMirroredStrategy) plus RANK_ID and
RANK_SIZE. Ascend (--route npu, the default where npu_bridge imports): each worker gets ASCEND_DEVICE_ID,
RANK_ID, RANK_SIZE, RANK_TABLE_FILE and JOB_ID, one process per device of the rank table.
Worker r's output goes to <output_root>/<r>/train_<r>.log; `{rank}` in the command is replaced by r.
If any worker fails, the others are stopped (they would block forever in the next all-reduce) and the
launcher exits with that worker's status.
"""
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time

from common.errors import ArgumentParser, UserError, main_guard
from common.npu_options import DEFAULT_JOB_ID

GRACE_SECONDS = 10


def free_ports(count, host="127.0.0.1"):
    """Ports the OS says are free right now (kept bound until all are chosen, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def check_ports_free(ports, host="127.0.0.1"):
    for port in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
        except OSError:
            raise UserError("port %d on %s is already in use: pick another --base_port" % (port, host))
        finally:
            s.close()


def worker_environments(nproc, route, base_port=None, rank_table=None, env=None):
    """One environment dict per worker."""
    env = dict(os.environ if env is None else env)
    envs = []
    if route == "npu":
        from common.distributed import read_rank_table   # loads TensorFlow: not for --help or a flag error
        devices = read_rank_table(rank_table or env.get("RANK_TABLE_FILE", ""))
        if len(devices) != nproc:
            raise UserError("--nproc %d but rank table %s lists %d devices" % (
                nproc, rank_table or env.get("RANK_TABLE_FILE"), len(devices)))
        # One JOB_ID for all ranks: the adapter's all-reduce reads the job's rank size through it.
        job_id = env.get("JOB_ID") or DEFAULT_JOB_ID
        for rank, device in enumerate(devices):
            envs.append(dict(env, ASCEND_DEVICE_ID=str(device), RANK_ID=str(rank), RANK_SIZE=str(nproc),
                             RANK_TABLE_FILE=os.path.abspath(rank_table or env["RANK_TABLE_FILE"]),
                             JOB_ID=job_id))
        return envs
    if base_port:
        ports = list(range(base_port, base_port + nproc))
        check_ports_free(ports)
    else:
        ports = free_ports(nproc)
    workers = ["127.0.0.1:%d" % p for p in ports]
    for rank in range(nproc):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": rank}}
        envs.append(dict(env, TF_CONFIG=json.dumps(config), RANK_ID=str(rank), RANK_SIZE=str(nproc)))
    return envs


def _stop(procs):
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except OSError:
                pass
    deadline = time.time() + GRACE_SECONDS
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait()


def launch(command, nproc, output_root, route, base_port=None, rank_table=None, timeout=None,
           printer=functools.partial(print, flush=True)):
    """Run `command` (a list) as nproc workers; returns 0 when all succeed, else the first failure's status."""
    if nproc < 1:
        raise UserError("--nproc must be at least 1, got %d" % nproc)
    envs = worker_environments(nproc, route, base_port, rank_table)
    procs, logs = [], []
    # A launcher stopped by SIGTERM (a job scheduler, `timeout`) must take its workers down with it.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        for rank, env in enumerate(envs):
            out_dir = os.path.join(output_root, str(rank))
            os.makedirs(out_dir, exist_ok=True)
            log_path = os.path.join(out_dir, "train_%d.log" % rank)
            logs.append((log_path, os.path.getsize(log_path) if os.path.exists(log_path) else 0))
            argv = [arg.replace("{rank}", str(rank)) for arg in command]
            with open(log_path, "a") as log:   # appends: the wrapper of rank 0 may share this log
                procs.append(_start(argv, env, log, procs))
        printer("launch: %d workers (%s route), logs under %s; showing rank 0's" % (nproc, route, output_root))
        started = time.time()
        rank0 = _LogFollower(*logs[0])
        while True:
            codes = [p.poll() for p in procs]
            rank0.show(printer)
            failed = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                rank, code = failed[0]
                status, how = _shell_status(code)
                printer("launch: worker %d %s; stopping the others (log: %s)" % (rank, how, logs[rank][0]))
                if rank != 0:
                    for line in _LogFollower(*logs[rank]).new_lines()[-LAST_LINES:]:
                        printer("launch: worker %d: %s" % (rank, line))
                _stop(procs)
                return status
            if all(c == 0 for c in codes):
                rank0.show(printer)
                printer("launch: all %d workers finished" % nproc)
                return 0
            if timeout and time.time() - started > timeout:
                printer("launch: workers still running after %d s; stopping them" % timeout)
                _stop(procs)
                return 124
            time.sleep(0.2)
    except KeyboardInterrupt:
        printer("launch: interrupted; stopping the workers")
        _stop(procs)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


LAST_LINES = 10   # of a failing worker's log, shown by the launcher


def _start(argv, env, log, started):
    """Popen of one worker; a command that cannot start is one error line (the workers started are stopped)."""
    try:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as err:
        _stop(started)
        reason = os.strerror(err.errno) if err.errno else str(err)   # (strerror repeats the name on some Pythons)
        raise UserError("cannot start the training command %s: %s" % (argv[0], reason))


def _shell_status(code):
    """(exit status as a shell reports it, words): a worker killed by signal N is 128 + N, not Popen's -N."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "signal %d" % -code
        return 128 - code, "was killed by %s (exit status %d)" % (name, 128 - code)
    return code, "exited with status %d" % code


class _LogFollower(object):
    """The lines a worker has added to its log since `start` (bytes), for showing as they come."""

    def __init__(self, path, start):
        self.path, self.position, self.partial = path, start, ""

    def new_lines(self):
        try:
            with open(self.path, errors="replace") as f:
                f.seek(self.position)
                text = self.partial + f.read()
                self.position = f.tell()
        except OSError:
            return []
        lines = text.split("\n")
        self.partial = lines.pop()
        return lines

    def show(self, printer):
        for line in self.new_lines():
            printer(line)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@main_guard
def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                            usage="python -m common.launch [options] -- command ...")
    parser.add_argument("--nproc", type=int, default=2, help="number of worker processes (default 2)")
    parser.add_argument("--output_root", default="output", help="per-worker logs go to <output_root>/<rank>/")
    parser.add_argument("--route", choices=("auto", "npu", "collective"), default="auto",
                        help="npu: one process per Ascend device; collective: TF_CONFIG on loopback")
    parser.add_argument("--base_port", type=int, default=0, help="first loopback port (default: any free ports)")
    parser.add_argument("--rank_table", default="", help="Ascend rank table (default $RANK_TABLE_FILE)")
    parser.add_argument("--timeout", type=float, default=0, help="stop all workers after this many seconds")
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])   # --help exits 0 here
    if split == len(argv):
        parser.error("give the training command after --")
    command = argv[split + 1:]
    if not command:
        parser.error("the training command after -- is empty")
    route = args.route
    if route == "auto":
        from common import npu_session   # loads TensorFlow: not for --help or a flag error
        route = "npu" if npu_session.on_npu() else "collective"
    status = launch(command, args.nproc, args.output_root, route, args.base_port or None,
                    args.rank_table or None, args.timeout or None)
    sys.exit(status)


if __name__ == "__main__":
    main()
