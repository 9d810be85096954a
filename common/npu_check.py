"""Check a training command against the Ascend adapter's graph rules on a CPU, before booking a device.

    .venv/bin/python -m common.npu_check [--ops_json PATH] [--repeats N] -- <train command ...>

Runs the command with the repository's fake npu_bridge (test/fake_npu) first on PYTHONPATH, so the script takes
its NPU route with the NPU options, in the fake's collecting mode: each Session.run signature's pruned graph is
held to the rules of the adapter's graph passes and GE (see test/fake_npu/npu_bridge/graph_rules.py) and the
findings are written instead of raised. After N runs of one signature (a step or two of the training loop) the
whole graph's GetNexts and control flow are scanned (validation built beside training but not run yet) and the
command ends. Prints per signature what the adapter would do; with CANN's npu_supported_ops.json (from
$ASCEND_OPP_PATH/framework/built-in/tensorflow/, or --ops_json) also the op types that would stay on the host.
Exit status 1 when a rule breaks a run, 0 otherwise; 2 for a bad flag.
"""
import json
import os
import subprocess
import sys
import tempfile

from common.errors import ArgumentParser, UserError, main_guard

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_NPU = os.path.join(REPO, "test", "fake_npu")
OPS_JSON = os.path.join("framework", "built-in", "tensorflow", "npu_supported_ops.json")


class CheckError(Exception):
    """A file or command problem: one line, exit status 1."""


RULES = {1: "GetNext not sunk", 3: "unknown shape in the device loop", 4: "input shapes change",
         6: "unsupported dtype", 8: "summaries/prints", 9: "v2 control flow"}


def supported_ops(path):
    """The op types CANN declares (npu_ops_identifier.cc: an op is supported when its entry is an object)."""
    try:
        with open(path) as f:
            table = json.load(f)
    except (OSError, ValueError) as err:
        raise CheckError("cannot read the ops table %s: %s" % (path, err))
    if not isinstance(table, dict):
        raise CheckError("%s is not CANN's npu_supported_ops.json (a JSON object of op types)" % path)
    return {name for name, info in table.items() if isinstance(info, dict)}


def _ops_json(args):
    if args.ops_json:
        return args.ops_json
    opp = os.environ.get("ASCEND_OPP_PATH")
    if opp and os.path.isfile(os.path.join(opp, OPS_JSON)):
        return os.path.join(opp, OPS_JSON)
    return None


def collect(command, repeats, timeout):
    """Run the command in collecting mode; returns (its exit status, its output, the collected entries)."""
    with tempfile.TemporaryDirectory(prefix="npu_check-") as tmp:
        record = os.path.join(tmp, "findings.jsonl")
        env = dict(os.environ, FAKE_NPU_COLLECT=record, FAKE_NPU_REPEATS=str(repeats))
        env.pop("NPU_FALLBACK", None)
        env["PYTHONPATH"] = os.pathsep.join([FAKE_NPU, REPO] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        try:
            proc = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  universal_newlines=True, timeout=timeout)
        except OSError as err:
            raise CheckError("cannot run %s: %s" % (command[0], err.strerror))
        except subprocess.TimeoutExpired:
            raise CheckError("the command ran longer than %d s: lower --repeats or give it smaller flags" % timeout)
        entries = []
        if os.path.exists(record):
            with open(record) as f:
                entries = [json.loads(line) for line in f if line.strip()]
    return proc.returncode, proc.stdout, entries


def _short(names, limit=3):
    names = list(names)
    return ", ".join(names[:limit]) + (" and %d more" % (len(names) - limit) if len(names) > limit else "")


def report(entries, supported=None):
    """Print one block per run signature; returns the number of run-breaking findings."""
    breaking = 0
    runs = [e for e in entries if "findings" in e]
    for i, entry in enumerate(runs, 1):
        what = "graph scan (GetNexts and control flow not run yet)" if entry.get("graph_scan") else \
            "run %d: fetches %s" % (i, _short(entry["fetches"]))
        print(what)
        if entry.get("feeds"):
            print("  host-fed: %s" % _short(entry["feeds"]))
        for finding in entry["findings"]:
            tag = "BREAKS" if finding["breaks"] else "note"
            breaking += finding["breaks"]
            print("  %s rule %d (%s): %s: %s" % (tag, finding["rule"], RULES.get(finding["rule"], ""),
                                                 finding["message"], _short(finding["ops"])))
        if entry.get("summaries"):
            print("  note: summary ops in the graph (fetched in sess.run mode they return nothing): %s"
                  % _short(entry["summaries"]))
        if supported is not None and entry.get("device_ops"):
            host = sorted(set(entry["device_ops"]) - supported)
            if host:
                print("  stays on the host (not in npu_supported_ops.json): %s" % ", ".join(host))
        if not entry["findings"]:
            print("  ok")
    return breaking


@main_guard
def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv and not set(argv) & {"-h", "--help"}:
        raise UserError("npu_check: give the train command after --, e.g. python -m common.npu_check -- "
                        "python am3/AM3_TADAM.py --data_path=... (see --help)")
    split = argv.index("--") if "--" in argv else len(argv)
    p = ArgumentParser(prog="npu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--ops_json", help="CANN's npu_supported_ops.json (default: from $ASCEND_OPP_PATH)")
    p.add_argument("--repeats", type=int, default=3,
                   help="stop after this many runs of one signature (0: let the command finish)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds the command may run")
    args = p.parse_args(argv[:split])   # --help exits 0 here
    command = argv[split + 1:]
    if not command:
        raise UserError("npu_check: no command after --")
    if args.repeats < 0:
        raise UserError("npu_check: --repeats must be >= 0")
    try:
        supported = supported_ops(_ops_json(args)) if _ops_json(args) else None
        status, output, entries = collect(command, args.repeats, args.timeout)
    except CheckError as err:
        print("error: %s" % err, flush=True)
        return 1
    stopped = any(e.get("stopped") for e in entries)
    if status != 0 and not stopped:
        tail = [line for line in output.splitlines() if line.strip()][-5:]
        print("\n".join(tail))
        print("error: the command failed (exit status %d) before the check was complete" % status)
        return 1
    if not any("findings" in e for e in entries):
        print("error: the command ran no session of the NPU route (is it a TF 1.x script of this repository?)")
        return 1
    breaking = report(entries, supported)
    if supported is None:
        print("ops left on the host: not checked (no npu_supported_ops.json: set ASCEND_OPP_PATH or --ops_json)")
    if breaking:
        print("npu_check: %d rule(s) break a run on the device (see BREAKS above)" % breaking)
        return 1
    print("npu_check: ok: no rule of the adapter's graph passes breaks these runs (what only a device shows: "
          "op kernels, precision, memory, speed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
