#!/usr/bin/env bash
# The GPU check: every CUDA test, the speed benchmark and the default model's fit on a GPU, and
# a GPU-trained model loaded by a process that sees no GPU, in one command of under 8 minutes.
#
# Usage, from anywhere (it works in the repository root):
#
#   bash benchmarks/gpu_check.sh [--wheels DIR] [--out DIR] [--dry-run]
#
#   --wheels DIR  wheels to install from when a package is missing (default: .whl)
#   --out DIR     where every result and log goes (default: $OUT if set, else gpu_check_out)
#   --dry-run     the same steps on the CPU with tiny sizes, to check the script itself;
#                 tests/test_gpu_check.py runs it
#
# Steps, each with its log in the output folder (7 files; the device tool brings back 8):
#
#   1. environment  Python, torch and the GPU (nvidia-smi); a GPU must be visible unless
#                   --dry-run. Packages missing here are installed from DIR/*.whl with
#                   `pip install --no-index --no-deps --target /tmp/site`, and PYTHONPATH
#                   holds /tmp/site and the repository root, so the package imports without
#                   `pip install -e`.                                            -> check.log
#   2. tests        tests/test_cuda.py and every other test marked `cuda` (pytest -m cuda);
#                   without a GPU they skip.                                     -> tests.log
#   3. gpu_fit      benchmarks/gpu_fit.py: TorchMLPRegressor() on California housing on the
#                   GPU and on the CPU (time, test RMSE), the GPU's model pickled and loaded in
#                   a process with CUDA_VISIBLE_DEVICES="", predictions equal to float64
#                   rounding.                                   -> gpu_fit.json, gpu_fit.log
#   4. speed        benchmarks/speed.py --device cuda: the trainers side by side, mixed
#                   precision, compile=True and compile="reduce-overhead".
#                                                                   -> speed.md, speed.log
#   and summary.json: each step's status (passed, failed, timed out, skipped) and seconds.
#   The exit status is 0 when no step failed. Each step's time limit comes out of one budget
#   of 465 s, so the check ends within 8 minutes even when a step hangs.
#
# The machine (the device tool's nvidia-h200, per /work/.library/device/KINDS.md) has Python
# 3.12 with torch, scikit-learn, scipy, pandas, numpy, joblib, tqdm, tabulate, matplotlib,
# hypothesis and pytest, and no skorch, nor any registry to fetch it from. Prepare .whl once,
# in the repository root, on a machine that reaches PyPI (skorch 1.4.0 needs numpy,
# scikit-learn, scipy, tabulate and tqdm, all there):
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .whl skorch==1.4.0
#   unzip -p .whl/skorch-*.whl '*/METADATA' | grep ^Requires-Dist   # all present there
#
# (.whl/ is in .gitignore, so it travels only when carried.) Then, when a GPU is lent, the
# device tool's call is
#
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# and the output folder is that machine's $OUT, whose files come back. That call, with the
# machine's start, takes most of a 15-minute device budget: to redo one step, run the command
# check.log shows for it (with PYTHONPATH=/tmp/site:. after installing the wheels) instead.

set -uo pipefail

usage() { sed -n '5,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

wheels=
out=
dry_run=0
while (($#)); do
    case $1 in
        --wheels) wheels=${2:?--wheels needs a folder}; shift 2 ;;
        --wheels=*) wheels=${1#*=}; shift ;;
        --out) out=${2:?--out needs a folder}; shift 2 ;;
        --out=*) out=${1#*=}; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Folders given on the command line are relative to where it was typed; the defaults, to the
# repository root.
out=${out:-${OUT:-$root/gpu_check_out}}
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 2
wheels=${wheels:-$root/.whl}
[[ $wheels == /* ]] || wheels=$PWD/$wheels
cd "$root" || exit 2
python=${PYTHON:-python3}
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if ((dry_run)); then
    device=cpu
    tiny_fit=(--rows 600 --max-epochs 2)
    tiny_speed=(--rows 512 --epochs 1 --repeats 1 --scaling-sizes "" --no-compile)
else
    device=cuda
    tiny_fit=()
    tiny_speed=(--epochs 5 --repeats 2)
fi

budget=465 # seconds for all steps; the device tool's call adds the machine's start
check_log=$out/check.log
: >"$check_log"
rm -f "$out"/{tests.log,gpu_fit.json,gpu_fit.log,speed.md,speed.log,summary.json}
steps=()
failed=0

log() { printf '[%4ss] %s\n' "$SECONDS" "$*" | tee -a "$check_log"; }

# record NAME STATUS SECONDS LOG
record() {
    steps+=("{\"name\": \"$1\", \"status\": \"$2\", \"seconds\": $3, \"log\": \"$4\"}")
    [[ $2 == passed || $2 == skipped ]] || failed=1
    log "$1: $2 in $3 s (log: $4)"
}

# step NAME LIMIT LOG COMMAND...: run COMMAND with its output appended to LOG, in at most
# LIMIT seconds and what is left of the budget.
step() {
    local name=$1 limit=$2 logfile=$3 start=$SECONDS rc status
    shift 3
    local left=$((budget - SECONDS))
    ((limit > left)) && limit=$left
    if ((limit < 5)); then
        record "$name" "timed out" 0 "$(basename "$logfile")"
        return
    fi
    log "$name: $* (limit ${limit} s)"
    timeout --kill-after=10 "$limit" "$@" >>"$logfile" 2>&1
    rc=$?
    case $rc in
        0) status=passed ;;
        124 | 137) status="timed out" ;;
        *) status=failed ;;
    esac
    # pytest exits 0 when every selected test skipped, and 5 when it selected none.
    if [[ $name == tests ]] && ((rc == 0 || rc == 5)); then
        if grep -Eq '[0-9]+ passed' "$logfile"; then status=passed; else status=skipped; fi
    fi
    record "$name" "$status" $((SECONDS - start)) "$(basename "$logfile")"
}

log "gpu_check.sh$( ((dry_run)) && echo ' --dry-run'): repository $root, output $out, python $python"

# 1. environment: what the machine has, and the missing packages installed from wheels.
start=$SECONDS
env_status=passed
{
    command -v nvidia-smi >/dev/null && nvidia-smi
    "$python" - "$dry_run" <<'EOF'
import importlib.util
import platform
import sys

needed = ["torch", "numpy", "scipy", "pandas", "sklearn", "skorch", "joblib", "tqdm", "tabulate",
          "pytest"]
missing = [name for name in needed if importlib.util.find_spec(name) is None]
print(f"Python {platform.python_version()} at {sys.executable}")
print("missing:", " ".join(missing) or "none")
import torch  # noqa: E402

print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"GPU visible: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print("GPU:", torch.cuda.get_device_name(0))
elif sys.argv[1] == "0":
    sys.exit("no GPU is visible to torch; run with --dry-run to check the script on a CPU")
sys.exit(3 if missing else 0)
EOF
} >>"$check_log" 2>&1
rc=$?
if ((rc == 3)); then
    shopt -s nullglob
    wheel_files=("$wheels"/*.whl)
    if ((${#wheel_files[@]} == 0)); then
        log "packages are missing (see above) and $wheels holds no wheels: prepare them as the header of benchmarks/gpu_check.sh says"
        env_status=failed
    elif "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "${wheel_files[@]}" >>"$check_log" 2>&1; then
        export PYTHONPATH="/tmp/site:$PYTHONPATH"
        log "installed into /tmp/site: ${wheel_files[*]##*/}"
    else
        env_status=failed
    fi
elif ((rc != 0)); then
    env_status=failed
fi
record environment "$env_status" $((SECONDS - start)) check.log

if [[ $env_status == passed ]]; then
    # 2. tests: tests/test_cuda.py and the cuda-marked tests in the other files.
    mapfile -t test_files < <(printf '%s\n' tests/test_cuda.py $(grep -l 'mark\.cuda' tests/test_*.py) | sort -u)
    step tests 210 "$out/tests.log" "$python" -m pytest -m cuda -p no:cacheprovider -q -rs "${test_files[@]}"

    # 3. the default model on the GPU and the CPU, and the GPU's model loaded on a CPU.
    step gpu_fit 150 "$out/gpu_fit.log" "$python" benchmarks/gpu_fit.py --device "$device" \
        --json "$out/gpu_fit.json" "${tiny_fit[@]}"

    # 4. the speed benchmark, last: it takes whatever time is left.
    step speed "$budget" "$out/speed.log" "$python" benchmarks/speed.py --device "$device" \
        --markdown "$out/speed.md" "${tiny_speed[@]}"
fi

passed=$([[ $failed == 0 ]] && echo true || echo false)
joined=$(printf '%s,\n    ' "${steps[@]}")
joined=${joined%,*}
cat >"$out/summary.json" <<EOF
{
  "dry_run": $([[ $dry_run == 1 ]] && echo true || echo false),
  "device": "$device",
  "seconds": $SECONDS,
  "steps": [
    $joined
  ],
  "passed": $passed
}
EOF
log "done in $SECONDS s: $([[ $failed == 0 ]] && echo 'every step passed or skipped' || echo 'a step failed'); results in $out"
exit $failed
