"""A stand-in for Ascend's npu_bridge (TF 1.15 adapter) that enforces the real adapter's contracts.

Same import paths, signatures and checks as Ascend/tensorflow `tf_adapter/python/npu_bridge` (branches master and
r1.11.0); each rule names the adapter source it mirrors. Classes delegate the computation to TF 1.15 so a script
really trains through the NPU code path on a CPU. Importing it installs the session rules of the adapter's graph
passes (see session_rules.py), as loading `_tf_adapter.so` does. Every call is also appended to CALLS and, when
FAKE_NPU_RECORD names a file, to that file as JSON lines (for scripts run in a subprocess).
"""
import json
import os

CALLS = []


def record(name, **kwargs):
    entry = {"name": name, "kwargs": {k: _plain(v) for k, v in kwargs.items()}}
    CALLS.append(entry)
    path = os.environ.get("FAKE_NPU_RECORD")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")


def _plain(value):
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return type(value).__name__


from npu_bridge import precision_rules, session_rules  # noqa: E402  (needs record)

session_rules.install()
precision_rules.install(session_rules)
