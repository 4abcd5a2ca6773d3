"""Parsing and formatting helpers shared by the benchmark reports under bench/ (svc-edge,
sentinel): `KEY=VALUE` arguments, wrk's duration units, medians that skip missing values,
and table cells. Standard library only; each report.py adds this folder to sys.path."""

import re
import statistics


def kv_args(args):
    """`KEY=VALUE` strings as a dict, values as int, then float, then text."""
    out = {}
    for a in args:
        k, _, v = a.partition("=")
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def ms(v):
    """A wrk duration (`512.00us`, `1.20ms`, `2.00s`, `1.00m`) in milliseconds."""
    n, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v).groups()
    return float(n) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def med(xs):
    """Median of the values that are not None; None when there are none."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, spec=",.0f", none="—"):
    """A table cell: `v` formatted with `spec`, or `none` when missing."""
    return none if v is None else format(v, spec)
