"""Compare the samples/s of two sets of bench/throughput.py runs, case by case.

    python bench/compare_runs.py new1.json new2.json --against old1.json old2.json

Each side is one or more --json files of bench/throughput.py (e.g. runs of
this checkout and of an older commit, interleaved: new, old, new, old).  A
case is (network, dtype, optimizer, implementation, batch size, threads); per
side its samples/s is the median over that side's files, and the ratio is
new / old.  Prints a fixed-width table; --impl keeps only some
implementations (e.g. --impl bpfast), --json writes the table.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("new", nargs="+", type=Path, help="JSON files of the new runs")
    parser.add_argument("--against", nargs="+", type=Path, required=True,
                        help="JSON files of the runs to compare with (the old ones)")
    parser.add_argument("--impl", nargs="+", default=None,
                        help="keep only these implementations (e.g. bpfast torch)")
    parser.add_argument("--json", metavar="OUT", type=Path, default=None,
                        help="write the comparison as JSON to OUT")
    return parser.parse_args(argv)


def case_key(row):
    return (row["net"], row["dtype"], row.get("optimizer", "sgd"), row["impl"],
            row["batch"], row["threads"])


def rates(paths):
    """case -> list of samples/s, one per file that has the case; and the machines."""
    out, machines = {}, []
    for path in paths:
        payload = json.loads(Path(path).read_text())
        if payload.get("benchmark") != "throughput":
            sys.exit(f"{path}: not a bench/throughput.py JSON file")
        machines.append(payload.get("machine", {}))
        for row in payload["rows"]:
            out.setdefault(case_key(row), []).append(row["samples_per_s"])
    return out, machines


def compare(new, old, impls=None):
    rows = []
    for key in sorted(set(new) & set(old), key=lambda k: tuple(map(str, k))):
        net, dtype, optimizer, impl, batch, threads = key
        if impls and impl not in impls:
            continue
        a, b = statistics.median(new[key]), statistics.median(old[key])
        rows.append(dict(net=net, dtype=dtype, optimizer=optimizer, impl=impl, batch=batch,
                         threads=threads, new=a, old=b, ratio=a / b if b else None,
                         n_new=len(new[key]), n_old=len(old[key]),
                         new_runs=new[key], old_runs=old[key]))
    return rows


def main(argv=None):
    args = parse_args(argv)
    new, machines = rates(args.new)
    old, _ = rates(args.against)
    cpus = sorted({m.get("cpu", "?") for m in machines})
    print(f"CPU {', '.join(cpus)}; {len(args.new)} new run(s), {len(args.against)} old run(s); "
          "median samples/s per side")
    rows = compare(new, old, set(args.impl) if args.impl else None)
    print(_common.format_table(rows, [
        ("net", "net", ""), ("dtype", "dtype", ""), ("optimizer", "optimizer", ""),
        ("impl", "impl", ""), ("batch", "batch", "d"), ("threads", "threads", "d"),
        ("new", "new samples/s", ",.0f"), ("old", "old samples/s", ",.0f"),
        ("ratio", "new / old", ".3f")]))
    if args.json:
        _common.write_json(args.json, dict(benchmark="compare_runs", new=args.new,
                                           against=args.against, rows=rows))


if __name__ == "__main__":
    main()
