#!/usr/bin/env bash
# horo-tune on a tiny space (W2 on 2,000 images, 1 epoch, 2 trials at a time): a first call runs two
# good trials; a second call continues the same study (SQLite) with one trial that cannot learn
# (lr 1e-9: pruned) and one that fails (an optimizer horo-train refuses). The study ends with 2
# complete, 1 pruned and 1 failed trials, a table, a report and a best configuration that horo-train
# accepts.
# Usage: tune_cli.sh BIN_DIR WORK_DIR TOOLS_DIR
set -uo pipefail
bin=$1 work=$2 tools=$3
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
"$bin/horo-data" synth -o train.h5 --count 2000 --seed 1 >/dev/null || fail "horo-data synth"
"$bin/horo-data" synth -o val.h5 --count 400 --seed 2 >/dev/null || fail "horo-data synth (validation)"
cat > space.json <<JSON
{"fixed": {"model": "mlp", "train": "$work/train.h5", "val": "$work/val.h5", "epochs": 1, "batch": 32},
 "space": {"lr": {"type": "float", "low": 1e-9, "high": 0.1, "log": true},
           "optimizer": {"type": "categorical", "choices": ["adam", "sgd", "adamw-typo"]}},
 "metric": "test_accuracy", "direction": "maximize"}
JSON
tune=(/usr/bin/python3 "$tools/horo-tune" space.json --parallel 2 --out study --horo-train "$bin/horo-train" --prune-within-epoch --prune-after 256 --startup-trials 2)
"${tune[@]}" --trials 2 --enqueue '{"lr": 0.01, "optimizer": "adam"}' --enqueue '{"lr": 0.003, "optimizer": "adam"}' >first.txt 2>&1 ||
  { cat first.txt; fail "first call"; }
"${tune[@]}" --trials 2 --enqueue '{"lr": 1e-9, "optimizer": "adam"}' --enqueue '{"lr": 0.01, "optimizer": "adamw-typo"}' >second.txt 2>&1 ||
  { cat second.txt; fail "second call"; }
cat second.txt
table=study/trials.txt
[ "$(grep -c COMPLETE $table)" -eq 2 ] || fail "2 complete trials expected"
[ "$(grep -c PRUNED $table)" -eq 1 ] || fail "1 pruned trial expected"
[ "$(grep -c FAIL $table)" -eq 1 ] || fail "1 failed trial expected"
grep PRUNED $table | grep -q "1e-09" || fail "the pruned trial should be lr 1e-9"
grep FAIL $table | grep -q "adamw-typo" || fail "the failed trial should be the bad optimizer"
grep -q "trial 2 pruned" second.txt || fail "no progress line for the pruned trial"
[ "$(grep -c "<svg" study/report.html)" -ge 2 ] || fail "report.html lacks its charts"
[ -s study/study.db ] || fail "no study.db"
grep -q "lr:" study/best-config.prototxt || { cat study/best-config.prototxt; fail "best-config.prototxt lacks the learning rate"; }
# The best configuration is ready for horo-train.
"$bin/horo-train" --config study/best-config.prototxt --model study/best-model.prototxt --train train.h5 --val val.h5 \
  --threads 1 --log-dir best-run >best.txt 2>&1 || { cat best.txt; fail "horo-train --config best-config.prototxt"; }
echo PASS
