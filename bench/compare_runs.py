"""Compare the samples/s of two sets of bench/throughput.py runs, case by case.

    python bench/compare_runs.py new1.json new2.json --against old1.json old2.json

Each side is one or more --json files of bench/throughput.py (e.g. runs of
this checkout and of an older commit, interleaved: new, old, new, old).  A
case is (network, dtype, optimizer, implementation, batch size, threads); per
side its samples/s is the median over that side's files, and the ratio is
new / old.  Prints a fixed-width table; --impl keeps only some
implementations (e.g. --impl bpfast), --json writes the table.

--control IMPL (e.g. cref_skip, the C loop, the same code in both
checkouts) also divides every case by that implementation's samples/s on the
same network and dtype in the same file before taking the medians, so that
a run slowed down as a whole by other load on the machine cancels out; the
"controlled" column is that ratio.
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
    parser.add_argument("--control", metavar="IMPL", default=None,
                        help="also compare samples/s relative to IMPL (b1, one thread) of "
                             "the same run, e.g. cref_skip")
    parser.add_argument("--json", metavar="OUT", type=Path, default=None,
                        help="write the comparison as JSON to OUT")
    return parser.parse_args(argv)


def case_key(row):
    return (row["net"], row["dtype"], row.get("optimizer", "sgd"), row["impl"],
            row["batch"], row["threads"])


def rates(paths, control=None):
    """case -> list of samples/s, one per file that has the case (divided by
    the control's samples/s in that file when `control` is given); and the
    machines."""
    out, machines = {}, []
    for path in paths:
        payload = json.loads(Path(path).read_text())
        if payload.get("benchmark") != "throughput":
            sys.exit(f"{path}: not a bench/throughput.py JSON file")
        machines.append(payload.get("machine", {}))
        base = {(r["net"], r["dtype"]): r["samples_per_s"] for r in payload["rows"]
                if r["impl"] == control and r["batch"] == 1 and r["threads"] == 1}
        for row in payload["rows"]:
            value = row["samples_per_s"]
            if control is not None:
                ref = base.get((row["net"], row["dtype"]))
                if not ref:
                    continue
                value /= ref
            out.setdefault(case_key(row), []).append(value)
    return out, machines


def compare(new, old, impls=None, new_c=None, old_c=None):
    rows = []
    for key in sorted(set(new) & set(old)):
        net, dtype, optimizer, impl, batch, threads = key
        if impls and impl not in impls:
            continue
        a, b = statistics.median(new[key]), statistics.median(old[key])
        rows.append(dict(net=net, dtype=dtype, optimizer=optimizer, impl=impl, batch=batch,
                         threads=threads, new=a, old=b, ratio=a / b if b else None,
                         n_new=len(new[key]), n_old=len(old[key]),
                         new_runs=new[key], old_runs=old[key]))
        if new_c is not None and key in new_c and key in old_c:
            rows[-1]["controlled"] = (statistics.median(new_c[key])
                                      / statistics.median(old_c[key]))
    return rows


def main(argv=None):
    args = parse_args(argv)
    new, machines = rates(args.new)
    old, old_machines = rates(args.against)
    cpus = sorted({m.get("cpu", "?") for m in machines})
    print(f"CPU {', '.join(cpus)}; {len(args.new)} new run(s), {len(args.against)} old run(s); "
          "median samples/s per side")
    new_c = old_c = None
    if args.control:
        new_c, _ = rates(args.new, args.control)
        old_c, _ = rates(args.against, args.control)
    rows = compare(new, old, set(args.impl) if args.impl else None, new_c, old_c)
    for side, ms in (("new", machines), ("old", old_machines)):
        loads = [m.get("load_average") for m in ms]
        print(f"1-minute load average at the start of the {side} runs: "
              + (", ".join(f"{x[0]:.1f}" for x in loads if x) or "-"))
    print(_common.format_table(rows, [
        ("net", "net", ""), ("dtype", "dtype", ""), ("optimizer", "optimizer", ""),
        ("impl", "impl", ""), ("batch", "batch", "d"), ("threads", "threads", "d"),
        ("new", "new samples/s", ",.0f"), ("old", "old samples/s", ",.0f"),
        ("ratio", "new / old", ".3f"),
        *([("controlled", f"new / old, per {args.control}", ".3f")] if args.control else [])]))
    if args.json:
        _common.write_json(args.json, dict(benchmark="compare_runs", new=args.new,
                                           against=args.against, rows=rows))


if __name__ == "__main__":
    main()
