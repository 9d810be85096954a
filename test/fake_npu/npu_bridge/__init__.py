"""A stand-in for Ascend's npu_bridge: same import paths and signatures, records what it is given.

Classes delegate to their TF 1.15 equivalents so a script can really train through the NPU code path
on a CPU. Every call is appended to CALLS and, when FAKE_NPU_RECORD names a file, to that file as
JSON lines (for scripts run in a subprocess).
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
