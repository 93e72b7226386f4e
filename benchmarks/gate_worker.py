"""One side of the performance gate: a process that holds compiled sessions and times calls.

Started by :mod:`bnnbench.benchmarks.gate` as ``python -P gate_worker.py CASES_JSON`` with the
side's ``bnnbench`` package first on ``PYTHONPATH``. It builds and compiles a training session
per ``train`` case (then one untimed warm-up call), says it is ready, and then answers one
JSON line per request on stdin: ``{"case": NAME}`` times one call of that case and answers
``{"seconds": t}``; ``{"quit": true}`` ends it. A ``train`` call is ``steps_per_call`` steps
(``run_steps``, which returns after the device has finished); a ``compile`` call builds a new
session and compiles its step. Anything the libraries print goes to stderr: stdout carries the
answers only.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library chatter on fd 1 goes to stderr
    cases = json.loads(argv[0])

    from bnnbench.config import CellConfig
    from bnnbench.harness import cell_environment

    device = cases[0]["device"] if cases else "cpu"
    os.environ.update(
        cell_environment(CellConfig.from_defaults("moons_2x5", "pymc", "matched", device, 0))
    )
    from bnnbench.backends import get_backend
    from bnnbench.spec import get_spec

    data: dict = {}

    def session(case: dict):  # type: ignore[no-untyped-def]
        model = case["model"]
        if model not in data:
            data[model] = get_spec(model).load_data()
        cfg = CellConfig.from_defaults(
            model,
            case["backend"],
            "matched",
            case["device"],
            0,
            batch_size=case["batch_size"],
            steps=case["steps_per_call"] * 1000,
            trace_every=case["steps_per_call"],
        )
        return get_backend(case["backend"]).TrainingSession(get_spec(model), data[model], cfg)

    t0 = time.perf_counter()
    ready: dict = {}
    for case in cases:
        if case["kind"] == "train":
            s = session(case)
            s.compile({case["steps_per_call"]})
            s.run_steps(case["steps_per_call"])  # warm-up, untimed
            ready[case["name"]] = s
        else:
            session(case).compile({case["steps_per_call"]})  # cold caches, untimed
            ready[case["name"]] = None
    by_name = {c["name"]: c for c in cases}
    import bnnbench

    ready_line = {"ready": True, "setup_s": time.perf_counter() - t0, "package": bnnbench.__file__}
    answers.write(json.dumps(ready_line) + "\n")

    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        case = by_name[request["case"]]
        if case["kind"] == "train":
            s = ready[case["name"]]
            t = time.perf_counter()
            s.run_steps(case["steps_per_call"])
            s.synchronize()
            seconds = time.perf_counter() - t
        else:
            s = session(case)
            t = time.perf_counter()
            s.compile({case["steps_per_call"]})
            seconds = time.perf_counter() - t
        answers.write(json.dumps({"seconds": seconds}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
