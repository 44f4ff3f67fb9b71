"""Whether two engines gave the same answer: exits non-zero, naming the first difference.

    python bench/same_answer.py REFERENCE.csv OTHER.csv LABEL

Same header, same number of rows in the same order, each cell equal: as numbers where
both parse as numbers (to 1e-9 relative, since engines add floats in different orders),
as text otherwise.
"""

import csv
import sys


def number(cell: str):
    try:
        return float(cell)
    except ValueError:
        return None


def main(reference: str, other: str, label: str) -> None:
    ref = list(csv.reader(open(reference)))
    got = list(csv.reader(open(other)))
    if not ref or len(ref) < 2:
        sys.exit(f"{label}: the reference answer is empty ({reference})")
    if ref[0] != got[0]:
        sys.exit(f"{label}: columns {got[0]}, reference {ref[0]}")
    if len(got) != len(ref):
        sys.exit(f"{label}: {len(got) - 1} rows, reference {len(ref) - 1}")
    for i, (a, b) in enumerate(zip(ref[1:], got[1:]), start=1):
        for column, x, y in zip(ref[0], a, b):
            nx, ny = number(x), number(y)
            if nx is not None and ny is not None:
                same = abs(nx - ny) <= 1e-9 * max(1.0, abs(nx))
            else:
                same = x == y
            if not same:
                sys.exit(f"{label}: row {i} ({a[0]}), column {column}: {y}, reference {x}")
    print(f"{label}: same answer, {len(ref) - 1} rows")


if __name__ == "__main__":
    main(*sys.argv[1:4])
