#!/usr/bin/env bash
# Run tracking: three horo-train runs (two that finish with different learning rates, one that fails)
# each leave run.json, model.prototxt and config.prototxt in their log directory; horo-runs lists them
# sorted by a metric and writes the comparison page; a run's config.prototxt and model.prototxt
# reproduce it.
# Usage: runs_cli.sh BIN_DIR WORK_DIR TOOLS_DIR
set -uo pipefail
bin=$1 work=$2 tools=$3
rm -rf "$work" && mkdir -p "$work/runs" && cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
field() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, d))" "$@"; }
"$bin/horo-data" synth -o train.h5 --count 1024 --seed 1 >/dev/null || fail "horo-data synth"
"$bin/horo-data" synth -o val.h5 --count 256 --seed 2 >/dev/null || fail "horo-data synth (validation)"
common=(--model mlp --train train.h5 --val val.h5 --threads 1 --epochs 2 --batch 64)
"$bin/horo-train" "${common[@]}" --lr 1e-3 --log-dir runs/slow >slow.log 2>&1 || { cat slow.log; fail "run slow"; }
"$bin/horo-train" "${common[@]}" --lr 1e-2 --log-dir runs/fast >fast.log 2>&1 || { cat fast.log; fail "run fast"; }
"$bin/horo-train" --model mlp --train train.h5 --val missing.h5 --threads 1 --log-dir runs/broken >broken.log 2>&1 &&
  fail "a run with a missing validation file succeeded"
for run in slow fast; do
  for f in run.json model.prototxt config.prototxt metrics.jsonl report.html; do
    [ -s "runs/$run/$f" ] || fail "runs/$run/$f missing"
  done
  [ "$(field runs/$run/run.json 'status')" = finished ] || fail "$run: status $(field runs/$run/run.json 'status')"
  [ "$(field runs/$run/run.json 'result["steps"]')" = 32 ] || fail "$run: steps"
  field runs/$run/run.json 'environment["git_commit"], environment["simd"], environment["ranks"], config["global_batch"]' || fail "$run: environment"
done
[ "$(field runs/fast/run.json 'config["lr"]')" = 0.01 ] || fail "fast: lr $(field runs/fast/run.json 'config["lr"]')"
grep -q "horo-train .*--lr 1e-2" runs/fast/run.json || fail "the command line is not recorded"
[ "$(field runs/broken/run.json 'status')" = failed ] || fail "broken: status"
field runs/broken/run.json 'error' | grep -q "missing.h5" || fail "broken: the error is not recorded"

/usr/bin/python3 "$tools/horo-runs" runs --sort lr --ascending --html compare.html >table.txt || { cat table.txt; fail "horo-runs"; }
cat table.txt
[ "$(grep -c "finished" table.txt)" -eq 2 ] || fail "two finished runs expected in the table"
awk '/slow/ {s = NR} /fast/ {f = NR} END {exit !(s && f && s < f)}' table.txt || fail "--sort lr --ascending: slow (1e-3) should come first"
for name in slow fast; do grep -q ">$name<" compare.html || fail "compare.html lacks $name"; done
[ "$(grep -c "<svg" compare.html)" -ge 2 ] || fail "compare.html lacks its charts"
grep -q "optimizer step" compare.html && grep -q "test accuracy" compare.html || fail "compare.html: unlabelled axes"
/usr/bin/python3 "$tools/horo-runs" "$work/nothing-here" >/dev/null 2>&1; [ $? -eq 2 ] || fail "no runs: exit status 2 expected"

# The recorded configuration and model reproduce the run (same seed, same data: the same final accuracy).
"$bin/horo-train" --config runs/fast/config.prototxt --model runs/fast/model.prototxt --train train.h5 --val val.h5 --threads 1 \
  --log-dir runs/again >again.log 2>&1 || { cat again.log; fail "rerun from config.prototxt"; }
[ "$(field runs/again/run.json 'result["test_accuracy"]')" = "$(field runs/fast/run.json 'result["test_accuracy"]')" ] ||
  fail "the rerun's accuracy differs"
echo PASS
