"""atheris (libFuzzer) harness over the decoder targets of ``fuzz.targets``.

    .venv/bin/python -m fuzz.harness all fuzz/work/all -max_total_time=1800
    .venv/bin/python -m fuzz.harness codec fuzz/work/codec -runs=100000

The first argument names one target, or ``all``: then the first input byte picks the
target, so one process on one core covers every decoder and libFuzzer's coverage feedback
is shared between them. The remaining arguments go to libFuzzer (a corpus directory,
``-max_total_time``, ``-jobs`` ...). Seeds from ``fuzz.targets.seeds`` and the committed
corpus (tests/fuzz/corpus/) are written into the corpus directory first.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["protocol", "fuzz", "node.routes.client", "node.bodies"]):
    from fuzz import targets

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fuzz" / "corpus"
NAMES = sorted(targets.TARGETS)


def _one(target: str) -> object:
    def run(data: bytes) -> None:
        targets.check(target, data)  # FuzzFailure propagates: libFuzzer saves the input

    return run


def _all(data: bytes) -> None:
    if data:
        targets.check(NAMES[data[0] % len(NAMES)], data[1:])


def _prefix(target: str, which: str) -> bytes:
    return bytes([NAMES.index(target)]) if which == "all" else b""


def _write_seeds(which: str, corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    chosen = NAMES if which == "all" else [which]
    n = 0
    for target in chosen:
        inputs = list(targets.seeds()[target])
        replay = CORPUS / f"{target}.txt"
        if replay.exists():
            lines = replay.read_text().splitlines()
            inputs += [targets.b64_or_hex(x.split("#")[0].strip()) for x in lines
                       if x.split("#")[0].strip()]  # fmt: skip
        for data in inputs:
            (corpus / f"seed-{target}-{n}").write_bytes(_prefix(target, which) + data)
            n += 1


def main() -> None:
    which, rest = sys.argv[1], sys.argv[2:]
    if which != "all" and which not in targets.TARGETS:
        raise SystemExit(f"unknown target {which!r}: one of all, {', '.join(NAMES)}")
    dirs = [a for a in rest if not a.startswith("-")]
    if dirs:
        _write_seeds(which, Path(dirs[0]))
    targets.world()  # build the fixed world before fuzzing, not inside the first input
    atheris.Setup([sys.argv[0], *rest], _all if which == "all" else _one(which))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
