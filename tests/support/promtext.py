"""A strict little parser for the Prometheus text format (0.0.4), enough for the tests."""

from __future__ import annotations

import math
import re
from collections import defaultdict

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
SUFFIXES = ("_bucket", "_sum", "_count")


def parse(text: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str], float]]]:
    """(family -> type, samples); raises AssertionError on anything malformed."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types: dict[str, str] = {}
    samples = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert name not in types, f"line {n}: second TYPE for {name}"
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = kind
            continue
        if line.startswith("#"):
            assert line.startswith("# HELP "), f"line {n}: stray comment {line!r}"
            continue
        m = SAMPLE.match(line)
        assert m, f"line {n}: not a sample: {line!r}"
        name, raw_labels, value = m.groups()
        labels: dict[str, str] = {}
        if raw_labels:
            pos = 0
            for lm in LABEL.finditer(raw_labels):
                assert lm.start() == pos, f"line {n}: bad labels {raw_labels!r}"
                labels[lm.group(1)] = lm.group(2).replace('\\"', '"').replace("\\n", "\n")
                pos = lm.end()
            assert pos == len(raw_labels), f"line {n}: bad labels {raw_labels!r}"
        family = name
        for suf in SUFFIXES:
            if name.endswith(suf) and name[: -len(suf)] in types:
                family = name[: -len(suf)]
        assert family in types, f"line {n}: {name} has no TYPE line before it"
        v = float(value)  # accepts +Inf, NaN
        samples.append((name, labels, v))
    _check_histograms(types, samples)
    return types, samples


def _check_histograms(types, samples) -> None:
    by_series: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    counts = {}
    for name, labels, v in samples:
        if name.endswith("_bucket") and types.get(name[:-7]) == "histogram":
            rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
            by_series[(name[:-7], rest)].append((float(labels["le"]), v))
        elif name.endswith("_count") and types.get(name[:-6]) == "histogram":
            counts[(name[:-6], tuple(sorted(labels.items())))] = v
    for key, buckets in by_series.items():
        les = [le for le, _ in buckets]
        assert les == sorted(les) and math.isinf(les[-1]), f"{key}: buckets out of order"
        vals = [c for _, c in buckets]
        assert vals == sorted(vals), f"{key}: bucket counts not cumulative"
        assert counts[key] == vals[-1], f"{key}: _count != +Inf bucket"


def value(samples, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(
        v for n, lb, v in samples if n == name and all(lb.get(k) == x for k, x in labels.items())
    )
