"""How many tests that publish an output are judged by the external oracle (tests/oracle.py).

    VIDCORRECT_ORACLE_RECORD=/tmp/oracle.jsonl .venv/bin/pytest -q
    .venv/bin/python -m tests.oracle_coverage /tmp/oracle.jsonl

The record has one line per test that ran (tests/conftest.py: the outputs it published, i.e.
files written into an outputs/ folder under the run's temp dir while it ran) and one line per
output the oracle judged (tests/oracle.py). A test counts as judged when the oracle judged at
least as many outputs as the test published.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def main(record: Path) -> int:
    published: dict[str, int] = {}
    judged: Counter[str] = Counter()
    for line in record.read_text().splitlines():
        entry = json.loads(line)
        if "published" in entry:
            published[entry["test"]] = len(entry["published"])
        else:
            judged[entry["test"]] += 1
    publishing = sorted(test for test, n in published.items() if n > 0)
    full = [t for t in publishing if judged[t] >= published[t]]
    partly = [t for t in publishing if 0 < judged[t] < published[t]]
    unjudged = [t for t in publishing if judged[t] == 0]
    outputs = sum(published[t] for t in publishing)
    outputs_judged = sum(min(judged[t], published[t]) for t in publishing)
    print(f"tests run: {len(published)}; tests that publish an output: {len(publishing)}")
    share = len(full) / len(publishing) if publishing else 0.0
    print(f"judged by the external oracle: {len(full)} ({share:.0%}); partly: {len(partly)}")
    print(f"outputs published: {outputs}; judged: {outputs_judged}")
    for title, tests in (("partly judged", partly), ("not judged", unjudged)):
        if tests:
            print(f"\n{title}:")
            for test in tests:
                print(f"  {test}  ({judged[test]} of {published[test]} outputs)")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
