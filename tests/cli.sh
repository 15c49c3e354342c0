#!/usr/bin/env bash
# The programs as a user meets them: --help lists every flag with its default, errors give one line on
# stderr and a non-zero exit, horo-train then horo-eval on a synthetic set, and a resumed run whose
# losses equal those of an uninterrupted one (IDX and HDF5 input).
# Usage: cli.sh BIN_DIR WORK_DIR
set -uo pipefail
bin=$1 work=$2
source_dir=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*"; exit 1; }

for program in horo-train horo-eval horo-data; do
  "$bin/$program" --help >help.txt 2>&1 || fail "$program --help exited non-zero"
done
"$bin/horo-train" --help >help.txt
for flag in --model --epochs --batch --lr --seed --threads --max-steps --data --train --val --checkpoint-dir --resume \
            --init-from --freeze --num-classes --log-dir; do
  grep -q -- "$flag" help.txt || fail "horo-train --help lacks $flag"
done
grep -q "=64" help.txt || grep -q "64" help.txt || fail "horo-train --help shows no defaults"
# The benchmark scripts: --help prints the usage before anything is installed or built.
for script in compare-cpu profile-cpu w5-accuracy scaling-w1 gpu-check; do
  "$source_dir/bench/$script" --help >help.txt 2>&1 || fail "bench/$script --help exited non-zero"
  grep -q "Usage: bench/$script" help.txt || fail "bench/$script --help prints no usage"
done

# Errors: one line on stderr, non-zero exit.
check_error() {  # expected-fragment command...
  local fragment=$1; shift
  "$@" >out.txt 2>err.txt && fail "$* succeeded"
  [ "$(wc -l <err.txt)" -ge 1 ] || fail "$*: nothing on stderr"
  grep -q -- "$fragment" err.txt || { cat err.txt; fail "$*: stderr lacks '$fragment'"; }
}
check_error "--bogus" "$bin/horo-train" --bogus
check_error "unknown argument '--bogus'" "$source_dir/bench/compare-cpu" --bogus
check_error "--rounds expects a positive number, got 'x'" "$source_dir/bench/compare-cpu" --rounds x
check_error "absent.h5: no such file" "$bin/horo-train" --train absent.h5
check_error "absent.h5: no such file" "$bin/horo-eval" --checkpoint absent.h5 --data absent.h5
check_error "model 'nosuch': not a built-in model" "$bin/horo-train" --model nosuch --max-steps 1 --train-images 64 --test-images 64
check_error "unknown SIMD target 'avx9'" env HORO_SIMD=avx9 "$bin/horo-train" --max-steps 1 --train-images 64 --test-images 64 --log-dir ""
check_error "HORO_WINOGRAD='maybe': expected 0, 1 or auto" env HORO_WINOGRAD=maybe "$bin/horo-train" --model resnet20 \
  --max-steps 1 --train-images 64 --test-images 64 --log-dir ""
check_error "HORO_WINOGRAD_TILE='3': expected 2, 4 or auto" env HORO_WINOGRAD_TILE=3 "$bin/horo-train" --model resnet20 \
  --max-steps 1 --train-images 64 --test-images 64 --log-dir ""
printf 'input_shape: [1, 28, 28]\nlayers { flatten {} }\nlayers { linear { in: 700 out: 10 } }\n' >bad.prototxt
check_error "bad.prototxt:3" "$bin/horo-train" --model bad.prototxt --max-steps 1 --train-images 64 --test-images 64

# Train, checkpoint, evaluate.
"$bin/horo-data" synth -o train.h5 --count 1280 --seed 1 >/dev/null
"$bin/horo-data" synth -o test.h5 --count 300 --seed 2 >/dev/null
check_error "train.h5: its labels go up to class 2 but the model (cnn) has 2 outputs" \
  "$bin/horo-train" --train train.h5 --num-classes 2 --max-steps 1 --log-dir ""
if /usr/bin/python3 -c "import h5py, numpy
with h5py.File('nolabels.h5', 'w') as f: f['images'] = numpy.zeros((8, 1, 28, 28), numpy.uint8)" 2>/dev/null; then
  check_error "nolabels.h5: has no /labels dataset" "$bin/horo-train" --train nolabels.h5 --max-steps 1 --log-dir ""
fi
"$bin/horo-train" --model cnn --epochs 2 --train train.h5 --val test.h5 --checkpoint-dir ck --log-dir logs >train.txt ||
  fail "horo-train failed"
[ -f logs/report.html ] && [ -f logs/metrics.jsonl ] && grep -q "^epoch," logs/metrics.csv || fail "logs missing"
"$bin/horo-eval" --checkpoint ck/ckpt-40.h5 --data test.h5 --json >eval.json || fail "horo-eval failed"
/usr/bin/python3 -c "
import json, sys
r = json.load(open('eval.json'))
assert r['accuracy'] > 0.8 and len(r['confusion']) == 3 and r['samples'] == 300, r
print('horo-eval accuracy', r['accuracy'])" || fail "horo-eval output"

# A training configuration file: its values apply, flags override them, typos are named with the line.
printf 'optimizer { sgd { lr: 0.05 momentum: 0.9 } }\nbatch: 32\nepochs: 1\ntrain: "train.h5"\n' >run.prototxt
"$bin/horo-train" --model mlp --config run.prototxt --max-steps 3 --log-dir "" >config.txt || fail "--config run"
grep -q "batch=32 lr=0.05" config.txt || { cat config.txt; fail "--config values not applied"; }
"$bin/horo-train" --model mlp --config run.prototxt --batch 16 --max-steps 3 --log-dir "" >override.txt || fail "--config override run"
grep -q "batch=16" override.txt || fail "flag did not override --config"
printf 'optimizer { adam { lrate: 0.1 } }\n' >typo.prototxt
check_error "typo.prototxt:1" "$bin/horo-train" --config typo.prototxt --max-steps 1

# Resume: stop at step 12, resume from the step-10 checkpoint, compare losses with a run that never stopped.
resume_check() {  # name, horo-train data flags...
  local name=$1; shift
  "$bin/horo-train" --model cnn --epochs 3 --max-steps 30 "$@" --checkpoint-dir "$name-a" --checkpoint-every 5 --log-dir "$name-a/logs" >/dev/null || fail "$name: run a"
  "$bin/horo-train" --model cnn --epochs 3 --max-steps 12 "$@" --checkpoint-dir "$name-b" --checkpoint-every 5 --log-dir "$name-b/logs" >/dev/null || fail "$name: run b"
  "$bin/horo-train" --epochs 3 --max-steps 30 "$@" --checkpoint-dir "$name-b" --checkpoint-every 5 --resume "$name-b/ckpt-10.h5" \
    --log-dir "$name-b/resumed" >/dev/null || fail "$name: resume"
  diff <(awk -F, '$1 == "step" && $3 > 10 {print $3, $4}' "$name-a/logs/metrics.csv") \
       <(awk -F, '$1 == "step" {print $3, $4}' "$name-b/resumed/metrics.csv") >/dev/null || fail "$name: resumed losses differ"
  echo "$name: resumed losses equal the uninterrupted run's (steps 11-30)"
}
resume_check hdf5 --train train.h5
resume_check idx --train-images 640 --test-images 100
echo "cli: ok"
