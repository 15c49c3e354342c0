#!/usr/bin/env bash
# End to end over HDF5: horo-data synth writes a training and a validation set, horo-train trains W1
# on them through the sharded reader (with flips and crops), and must reach 0.90 validation accuracy.
# Usage: e2e_hdf5.sh BIN_DIR WORK_DIR
set -euo pipefail
bin=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
"$bin/horo-data" synth -o "$work/train.h5" --count 3000 --size 28 --seed 1 >/dev/null
"$bin/horo-data" synth -o "$work/val.h5" --count 600 --size 28 --seed 2 >/dev/null
"$bin/horo-train" --model cnn --epochs 3 --batch 64 --train "$work/train.h5" --val "$work/val.h5" --hflip \
  --crop-padding 2 | tee "$work/log.txt"
accuracy=$(sed -n 's/.*test_accuracy=\([0-9.]*\).*/\1/p' "$work/log.txt")
awk -v a="$accuracy" 'BEGIN { if (a + 0 < 0.90) { print "validation accuracy " a " < 0.90"; exit 1 } }'
# HORO_TIMELINE writes a Chrome trace with the step's phases.
HORO_TIMELINE="$work/trace.json" "$bin/horo-train" --model mlp --max-steps 3 --train "$work/train.h5" >/dev/null
/usr/bin/python3 -c "
import json, sys
events = json.load(open(sys.argv[1]))['traceEvents']
names = {e['name'] for e in events}
assert {'forward', 'backward', 'optimizer step'} <= names, names
assert all(e['ph'] == 'X' and e['dur'] >= 0 for e in events)
print('timeline:', len(events), 'events')" "$work/trace.json"
# Bad input fails with one clear line and a non-zero exit code.
if "$bin/horo-train" --train "$work/absent.h5" 2>"$work/err.txt"; then echo "expected a failure"; exit 1; fi
grep -q "absent.h5: no such file" "$work/err.txt"
echo "e2e over HDF5: ok (accuracy $accuracy)"
