"""Build the text model artefact: ``python -m common.texttrain --out PATH [--extra CSV ...]``.

Run by scripts/setup.sh (shipped corpus only), by the analyser when the artefact is missing,
and by ``qilu-edge report retrain`` (shipped corpus + staff corrections). A separate process,
so scikit-learn's memory is returned to the system when it ends.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common.textmodel import read_rows, shipped_rows, train


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m common.texttrain")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--extra", type=Path, action="append", default=[],
                    help="more labelled CSVs (id,text,category,polarity,urgency)")
    ap.add_argument("--version", default="base")
    ap.add_argument("--corpus", type=Path, default=None,
                    help="train on this folder's labelled CSVs instead of the shipped corpus")
    args = ap.parse_args(argv)
    if args.corpus is not None and not sorted(args.corpus.glob("*.csv")):
        ap.error(f"--corpus: no .csv files in {args.corpus}")
    rows = shipped_rows() if args.corpus is None else [
        r for p in sorted(args.corpus.glob("*.csv")) for r in read_rows(p)]
    extra = [r for p in args.extra for r in read_rows(p, source="correction")]
    t0 = time.perf_counter()
    model = train(rows + extra, meta={"version": args.version, "corrections": len(extra),
                                      "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    model.save(args.out)
    print(json.dumps({"out": str(args.out), "rows": len(rows) + len(extra),
                      "corrections": len(extra), "seconds": round(time.perf_counter() - t0, 2),
                      "corpus": model.meta["corpus"]}))


if __name__ == "__main__":
    main()
