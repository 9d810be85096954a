"""common/distributed.py and common/launch.py: two loopback workers, rank tables, failures."""
import json
import os
import socket
import sys
import time

import numpy as np
import pytest

from common import distributed, launch, npu_session
from common.errors import UserError
from common.tf_compat import tf
from conftest import REPO, rank_table, run

WORKER = os.path.join(REPO, "test", "dist_worker.py")


def launcher(tmp_path, *worker_args, nproc=2, extra=(), check=True, timeout=300):
    return run([sys.executable, "-m", "common.launch", "--nproc", str(nproc), "--output_root",
                str(tmp_path / "logs")] + list(extra) + ["--", sys.executable, WORKER] + list(worker_args),
               check=check, timeout=timeout, NPU_FALLBACK=1)


def test_two_workers_equal_each_other_and_one_worker_on_the_combined_batch(tmp_path):
    proc = launcher(tmp_path, "--out", str(tmp_path / "w{rank}"), "--steps", "6", "--batch", "8")
    assert "all 2 workers finished" in proc.stdout
    w0 = np.load(str(tmp_path / "w0" / "weights_0.npy"))
    w1 = np.load(str(tmp_path / "w1" / "weights_1.npy"))
    np.testing.assert_array_equal(w0, w1)
    run([sys.executable, WORKER, "--out", str(tmp_path / "single"), "--steps", "6", "--batch", "8",
         "--combine", "2"], NPU_FALLBACK=1)
    single = np.load(str(tmp_path / "single" / "weights_0.npy"))
    np.testing.assert_allclose(w0, single, rtol=1e-5, atol=1e-6)
    assert np.abs(single).sum() > 0.1            # it trained
    assert (tmp_path / "w0" / "ckpt" / "checkpoint").exists()
    assert not (tmp_path / "w1" / "ckpt").exists()   # only rank 0 writes checkpoints
    for rank in (0, 1):
        log = (tmp_path / "logs" / str(rank) / ("train_%d.log" % rank)).read_text()
        assert "cluster: rank %d of 2 (MultiWorkerMirroredStrategy)" % rank in log


def test_session_loop_through_data_parallel_matches_one_worker(tmp_path):
    launcher(tmp_path, "--out", str(tmp_path / "w{rank}"), "--loop", "session", "--init_offset", "{rank}")
    w0 = np.load(str(tmp_path / "w0" / "weights_0.npy"))
    w1 = np.load(str(tmp_path / "w1" / "weights_1.npy"))
    np.testing.assert_array_equal(w0, w1)   # rank 1 started elsewhere: the chief's start was broadcast
    run([sys.executable, WORKER, "--out", str(tmp_path / "single"), "--loop", "session", "--combine", "2"],
        NPU_FALLBACK=1)
    np.testing.assert_allclose(w0, np.load(str(tmp_path / "single" / "weights_0.npy")), rtol=1e-5, atol=1e-6)


def test_a_dying_worker_stops_the_others_and_fails_the_launch(tmp_path):
    started = time.time()
    proc = launcher(tmp_path, "--out", str(tmp_path / "w{rank}"), "--steps", "100000", "--die_at_step", "2",
                    check=False, timeout=200)
    assert proc.returncode == 3
    assert "worker 1 exited with status 3; stopping the others" in proc.stdout
    assert "launch: worker 1: error: rank 1 dies at step 2" in proc.stdout   # the failing worker's last lines
    assert time.time() - started < 120


def test_launcher_help_exits_zero():
    proc = run([sys.executable, "-m", "common.launch", "--help"])
    assert "--nproc" in proc.stdout
    proc = run([sys.executable, "-m", "common.launch", "--nproc=2"], check=False)
    assert proc.returncode == 2 and "give the training command after --" in proc.stdout


def test_port_in_use_is_a_clear_error(tmp_path):
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        proc = launcher(tmp_path, "--out", str(tmp_path), extra=["--base_port", str(port)], check=False)
    finally:
        busy.close()
    assert proc.returncode == 2
    assert "error: port %d on 127.0.0.1 is already in use" % port in proc.stdout


def test_rank_table_formats_and_errors(tmp_path):
    assert distributed.read_rank_table(rank_table(tmp_path, range(8))) == list(range(8))
    old = {"group_list": [{"device_num": "2", "instance_list": [
        {"rank_id": "0", "devices": [{"device_id": "4"}]}, {"rank_id": "1", "devices": [{"device_id": "5"}]}]}]}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert distributed.read_rank_table(str(tmp_path / "old.json")) == [4, 5]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        distributed.read_rank_table(str(tmp_path / "bad.json"))
    (tmp_path / "odd.json").write_text(json.dumps({"server_list": [{"nodes": []}]}))
    with pytest.raises(UserError, match="neither server_list"):
        distributed.read_rank_table(str(tmp_path / "odd.json"))
    with pytest.raises(UserError, match="cannot read rank table"):
        distributed.read_rank_table(str(tmp_path / "missing.json"))
    with pytest.raises(UserError, match="RANK_TABLE_FILE is not set"):
        distributed.read_rank_table("")


def test_npu_cluster_from_environment(fake_npu, tmp_path):
    table = rank_table(tmp_path, range(8))
    cluster = distributed.cluster_from_env({"RANK_SIZE": "8", "RANK_ID": "3", "ASCEND_DEVICE_ID": "3",
                                            "RANK_TABLE_FILE": table})
    assert (cluster.rank, cluster.size, cluster.route, cluster.device_id) == (3, 8, "npu", 3)
    assert not cluster.is_chief and cluster.strategy() is None
    assert cluster.dataset_batch_size(32) == 32
    with pytest.raises(UserError, match="RANK_SIZE=4 but rank table .* lists 8 devices"):
        distributed.cluster_from_env({"RANK_SIZE": "4", "RANK_ID": "0", "RANK_TABLE_FILE": table})
    with pytest.raises(UserError, match="RANK_ID=8 is not within RANK_SIZE=8"):
        distributed.cluster_from_env({"RANK_SIZE": "8", "RANK_ID": "8", "RANK_TABLE_FILE": table})


def test_launcher_npu_environment_per_device(tmp_path):
    envs = launch.worker_environments(2, "npu", rank_table=rank_table(tmp_path, [6, 7]), env={})
    assert [(e["ASCEND_DEVICE_ID"], e["RANK_ID"], e["RANK_SIZE"]) for e in envs] == [("6", "0", "2"), ("7", "1", "2")]
    # npu_common.py: the adapter's all-reduce reads the rank size through JOB_ID; one id for the whole job
    assert [e["JOB_ID"] for e in envs] == ["10087", "10087"]
    envs = launch.worker_environments(2, "npu", rank_table=rank_table(tmp_path, [6, 7]), env={"JOB_ID": "42"})
    assert [e["JOB_ID"] for e in envs] == ["42", "42"]
    with pytest.raises(UserError, match="--nproc 8 but rank table"):
        launch.worker_environments(8, "npu", rank_table=rank_table(tmp_path, [6, 7]), env={})


def test_collective_cluster_from_tf_config():
    config = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}
    cluster = distributed.cluster_from_env({"TF_CONFIG": json.dumps(config)})
    assert (cluster.rank, cluster.size, cluster.route) == (1, 2, "collective")
    assert cluster.dataset_batch_size(8) == 16
    with pytest.raises(UserError, match="TF_CONFIG is not of the form"):
        distributed.cluster_from_env({"TF_CONFIG": "{}"})
    assert distributed.cluster_from_env({}).route == "single"


def test_shard_gives_disjoint_parts():
    with tf.Graph().as_default():
        parts = []
        for rank in range(2):
            cluster = distributed.Cluster(rank, 2, "collective")
            it = tf.compat.v1.data.make_one_shot_iterator(cluster.shard(tf.data.Dataset.range(10)).batch(10))
            with tf.compat.v1.Session() as sess:
                parts.append(set(sess.run(it.get_next()).tolist()))
    assert parts[0] | parts[1] == set(range(10)) and not parts[0] & parts[1]


def test_broadcast_uses_hccl_on_npu_only(fake_npu):
    with tf.Graph().as_default():
        tf.compat.v1.get_variable("w", [2, 2])
        tf.compat.v1.get_variable("step", [], tf.int64)
        npu_session.broadcast_variables_op()
    assert [c["kwargs"] for c in fake_npu if c["name"] == "hccl_ops.broadcast"] == [{"root_rank": 0, "count": 1}]


@pytest.mark.parametrize("route", ["npu", "collective"])
def test_only_rank_0_saves_into_the_model_dir(route, tmp_path):
    model_dir = str(tmp_path / "ckpt")
    assert distributed.save_dir(distributed.Cluster(0, 2, route), model_dir) == model_dir
    other = distributed.save_dir(distributed.Cluster(1, 2, route), model_dir)
    assert not os.path.abspath(other).startswith(os.path.abspath(model_dir))
    assert distributed.save_dir(distributed.Cluster(), model_dir) == model_dir


def test_a_worker_killed_by_a_signal_is_128_plus_n_and_a_missing_command_one_line(tmp_path):
    """The launcher reported a worker killed by SIGKILL as exit 1 (a shell says 137) and a command that does not
    exist as a FileNotFoundError traceback."""
    base = [sys.executable, "-m", "common.launch", "--nproc", "2", "--output_root", str(tmp_path / "logs"), "--"]
    killed = "import os, signal, sys, time\nif sys.argv[1] == '1': os.kill(os.getpid(), signal.SIGKILL)\n" \
             "time.sleep(60)"
    proc = run(base + [sys.executable, "-c", killed, "{rank}"], check=False, NPU_FALLBACK=1, timeout=120)
    assert proc.returncode == 137, proc.stdout
    assert "launch: worker 1 was killed by SIGKILL (exit status 137); stopping the others" in proc.stdout
    proc = run(base + [str(tmp_path / "no_such_command"), "--flag"], check=False, NPU_FALLBACK=1)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout, proc.stdout
    errors = [line for line in proc.stdout.splitlines() if line.startswith("error:")]   # TF 2.x logs at import
    assert errors == [proc.stdout.strip().splitlines()[-1]] == [
        "error: cannot start the training command %s: No such file or directory" % (tmp_path / "no_such_command")]
