#!/usr/bin/env python3
"""Compares two horo checkpoints' tensors (parameters and buffers), for the CLI tests.

  compare_checkpoints.py A.h5 B.h5 same|TOLERANCE|apart:TOLERANCE [REGEX]

same: bit for bit; TOLERANCE: largest relative difference at most this; apart:T: some tensor differs
by more than T. REGEX keeps only the tensors whose names match. Exit 1 with the reason otherwise.
HORO_COMPARE_OPTIMIZER=1 compares the optimizer state (/optimizer/<parameter>/<state>) too.
"""
import os
import re, sys
import h5py, numpy as np
a, b, how = sys.argv[1:4]
pattern = re.compile(sys.argv[4] if len(sys.argv) > 4 else ".")
with h5py.File(a) as fa, h5py.File(b) as fb:
    names = []
    for group in ("parameters", "buffers"):
        names += [f"{group}/{n}" for n in fa[group] if pattern.search(n)]
    if os.environ.get("HORO_COMPARE_OPTIMIZER") == "1":
        assert "optimizer" in fa and "optimizer" in fb, "a checkpoint holds no optimizer state"
        fa["optimizer"].visititems(lambda n, o: names.append(f"optimizer/{n}") if isinstance(o, h5py.Dataset) and pattern.search(n) else None)
        theirs = set()
        fb["optimizer"].visititems(lambda n, o: theirs.add(f"optimizer/{n}") if isinstance(o, h5py.Dataset) and pattern.search(n) else None)
        assert theirs == {n for n in names if n.startswith("optimizer/")}, "the optimizer states hold different entries"
    assert names, "no tensor matches"
    worst = 0.0
    for n in names:
        x, y = np.array(fa[n], dtype=np.float64), np.array(fb[n], dtype=np.float64)
        if how == "same":
            assert np.array_equal(x, y), f"{n} differs"
        else:
            worst = max(worst, float(np.max(np.abs(x - y))) / max(1.0, float(np.max(np.abs(y)))))
    if how.startswith("apart:"):
        assert worst > float(how[6:]), f"largest relative difference {worst} <= {how[6:]}"
    else:
        assert how == "same" or worst <= float(how), f"largest relative difference {worst} > {how}"
    print(f"{len(names)} tensors: largest relative difference {worst:.1e} ({how})")
