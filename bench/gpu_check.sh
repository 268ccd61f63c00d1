#!/usr/bin/env bash
# The GPU check: everything fwtui can only learn on a CUDA card, in one run of at most 8 minutes on an
# H100/H200, with what the GPU machine has (python3, torch, tiktoken, pyarrow, numpy, pytest; no textual,
# no network), run from the checkout. Ordered by value: the headline figure (gpt2-124m compiled: tokens/s,
# MFU, peak memory) comes first, printed the moment it exists, within about the first two minutes.
#
#   bash bench/gpu_check.sh [--out DIR] [--quick] [--only STAGE,STAGE] [--hellaswag-file PATH] [--dry-run]
#
# Stages, in this order (each under its own `timeout`, its output live on stdout and in DIR/logs/STAGE.log):
#   env         torch, CUDA and the card; the engine imports without textual/rich/plotext/fwtui
#   train-124m  bench/train.py --preset gpt2-124m: THE HEADLINE. The Trainer's steps (no evaluation,
#               checkpoint or HellaSwag: one compile), tokens/s, MFU, peak memory printed at its last step;
#               then the memory plan against it, the step phases, and a bare loop (a second, mostly cached
#               compile) with its own peak memory
#   modern-124m bench/train.py --preset gpt2-124m --set recipe=modern: the modern recipe at the same shape
#               (no bare loop: one compile; 8 micro-batches an iteration, see below), Muon's share
#   pytest      python3 -m pytest -m gpu tests/test_gpu.py: bf16/fp16 runs, fused AdamW, compile (static
#               shapes, in a worker thread, a failing compiler falling back), bitwise resume, sampling, a
#               real OOM and --auto-batch, the probe, a modern (Muon) run with no host sync in its steps
#   train-4070  bench/train.py --preset rtx4070-12gb: the 12 GB preset's figures (no bare loop)
#   modern-4070 bench/train.py --preset rtx4070-12gb-modern: the same for the 12 GB modern preset
#   calibrate   bench/calibrate.py: predicted against measured memory and step time, 4 presets (eager;
#               the compiled path's memory is train-124m's "plan" line)
#   hellaswag   bench/hellaswag.py --presets gpt2-124m: HellaSwag scoring speed on the validation file
#               (random weights: the time does not depend on them), stopped at a budget inside the
#               timeout with the rate it reached. The file: --hellaswag-file, else $FWTUI_HELLASWAG_FILE,
#               else shared/data/hellaswag_val.jsonl in the checkout or beside it (../shared); with none the
#               stage is skipped and says how to supply one (it is never downloaded: the GPU box is offline).
#               On the device machine ../shared stays behind: copy the file into a folder of the checkout
#               that .git/info/exclude ignores, carry that folder, and pass --hellaswag-file FOLDER/FILE.
#   emulate     bench/emulate_12gb.py: a 12 GB card emulated (memory fraction): verdicts and the probe
# Extra, only with --only (a second call, with the device time left):
#   batch-sweep bench/train.py --preset gpt2-124m --batch-sweep: tokens/s, MFU and peak memory at the
#               preset's micro-batch x1, x2, x4, x8 (tokens per iteration kept), a compile each
# DIR/summary.txt: one line a stage (ok / skipped / failed rc / timed out, seconds) and each stage's last
# lines, appended as each stage ends, so a killed run leaves what it measured. DIR is --out, else $OUT;
# the script writes nothing else. The whole run keeps to a deadline (470 s): a stage gets what is left
# when less than its budget is, and is skipped when under 10 s is. Exit status: 0 every stage ok or
# skipped, 1 a stage failed, 2 bad arguments. --dry-run lists the stages, budgets and commands in order
# and checks their files, the HellaSwag file and the engine's imports, on any machine (no GPU, writes nothing).

set -uo pipefail

usage="usage: bash bench/gpu_check.sh [--out DIR] [--quick] [--only STAGE,STAGE] [--hellaswag-file PATH] [--dry-run]"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"  # the device machine's interpreter is python3 (it may have no `python`)
command -v "$PY" >/dev/null 2>&1 || PY=python

out="${OUT:-}"
quick=0
dry=0
only=""
hellaswag="${FWTUI_HELLASWAG_FILE:-}"
hellaswag_from="FWTUI_HELLASWAG_FILE"
while [ $# -gt 0 ]; do
    case "$1" in
        --out)
            if [ $# -lt 2 ] || [ -z "$2" ] || [ "${2#--}" != "$2" ]; then
                echo "gpu_check.sh: --out needs a folder, for example --out gpu-results" >&2; exit 2
            fi
            out="$2"; shift 2 ;;
        --out=*) out="${1#--out=}"; shift ;;
        --quick) quick=1; shift ;;
        --dry-run) dry=1; shift ;;
        --only)
            if [ $# -lt 2 ]; then echo "gpu_check.sh: --only needs stage names, for example --only pytest" >&2; exit 2; fi
            only="$2"; shift 2 ;;
        --hellaswag-file)
            if [ $# -lt 2 ] || [ -z "$2" ]; then
                echo "gpu_check.sh: --hellaswag-file needs a path, for example --hellaswag-file data/hellaswag_val.jsonl" >&2; exit 2
            fi
            hellaswag="$2"; hellaswag_from="--hellaswag-file"; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown option '$1'; $usage" >&2; exit 2 ;;
    esac
done
if [ -z "$out" ]; then
    echo "gpu_check.sh: no output folder; pass --out DIR (or set OUT)" >&2; exit 2
fi
if [ -n "$hellaswag" ]; then
    if [ ! -f "$hellaswag" ]; then
        echo "gpu_check.sh: $hellaswag_from $hellaswag: no such file; give the path of hellaswag_val.jsonl" >&2; exit 2
    fi
    hellaswag="$(cd "$(dirname "$hellaswag")" && pwd)/$(basename "$hellaswag")"  # the stages run from ROOT
else
    for candidate in "$ROOT/shared/data/hellaswag_val.jsonl" "$(dirname "$ROOT")/shared/data/hellaswag_val.jsonl"; do
        if [ -f "$candidate" ]; then hellaswag="$candidate"; break; fi
    done
fi
no_hellaswag="skipped: no HellaSwag file; pass --hellaswag-file PATH/hellaswag_val.jsonl or set FWTUI_HELLASWAG_FILE (on the device machine, carry a copy inside the checkout: ../shared does not travel)"

# --- the stages: name, budget in seconds, command (run from the repository root) -------------------------
# Budgets (estimates, not yet measured on a card): a compile of a 12-layer model ≈ 30-60 s, a second of the
# same shape mostly from Inductor's cache; each bench stage holds two compiles and its steps. The budgets add
# up to 440 s, inside the run's 470 s deadline and the 8 minutes the check may take (480). Speed stages
# time steps only (bench/train.py: no evaluation, checkpoint or HellaSwag). The modern stages accumulate 8
# micro-batches, not the preset's 40 or 32 (tokens/s hardly depends on it; the optimizer's share is then
# 4-5x what it is at the preset's: an upper bound). The step time is the gap between Step events after the
# warm-up, which come at log points: --log-interval gives each run at least 2 gaps.
if [ "$quick" = 1 ]; then
    iters="--iters 4 --warmup 2 --repeat 1 --log-interval 2"; modern="--iters 4 --warmup 2 --repeat 1 --log-interval 2"
    steps=4; limit=128
    scoring="--limit 2000 --budget-s 10"
else
    iters="--iters 6 --warmup 2 --repeat 1 --log-interval 2"; modern="--iters 6 --warmup 2 --repeat 1 --log-interval 2"
    steps=6; limit=256
    scoring="--budget-s 15"
fi
modern+=" --no-bare --set gradient_accumulation_steps=8"
DEADLINE="${FWTUI_GPU_CHECK_DEADLINE:-470}"  # seconds for the whole run (tests shorten it)
STAGES=(env train-124m modern-124m pytest train-4070 modern-4070 calibrate hellaswag emulate)
EXTRA=(batch-sweep)
declare -A TIMEOUT=([env]=15 [train-124m]=125 [modern-124m]=60 [pytest]=85 [train-4070]=45 [modern-4070]=35
                    [calibrate]=25 [hellaswag]=30 [emulate]=20 [batch-sweep]=300)
declare -A CMD=(
    [env]="$PY bench/gpu_check_env.py"
    [train-124m]="$PY bench/train.py --preset gpt2-124m $iters"
    [modern-124m]="$PY bench/train.py --preset gpt2-124m --set recipe=modern $modern"
    [pytest]="$PY -m pytest -q -p no:cacheprovider -rs -m gpu tests/test_gpu.py"
    [train-4070]="$PY bench/train.py --preset rtx4070-12gb $iters --no-bare"
    [modern-4070]="$PY bench/train.py --preset rtx4070-12gb-modern $modern"
    [calibrate]="$PY bench/calibrate.py --eager --steps $steps --presets rtx4070-12gb,rtx4070-12gb-small,24gb,gpt2-124m"
    [hellaswag]="$PY bench/hellaswag.py --presets gpt2-124m $scoring"
    [emulate]="$PY bench/emulate_12gb.py --limit $limit"
    [batch-sweep]="$PY bench/train.py --preset gpt2-124m --batch-sweep $iters"
)
FILES=(bench/gpu_check_env.py bench/train.py bench/step_phases.py bench/hellaswag.py bench/calibrate.py
       bench/emulate_12gb.py tests/test_gpu.py tests/conftest.py tests/tiny_trainer_child.py
       presets/rtx4070-12gb-modern.toml trainer/data/assets/r50k_base.tiktoken)

selected=()
for stage in "${STAGES[@]}" "${EXTRA[@]}"; do
    if [[ " ${EXTRA[*]} " == *" $stage "* ]]; then
        if [[ ",$only," == *",$stage,"* ]]; then selected+=("$stage"); fi  # extra stages: by name only
    elif [ -z "$only" ] || [[ ",$only," == *",$stage,"* ]]; then selected+=("$stage"); fi
done
if [ -n "$only" ]; then
    for name in ${only//,/ }; do
        if [ -z "${TIMEOUT[$name]+x}" ]; then
            echo "gpu_check.sh: --only: no stage '$name'; the stages are ${STAGES[*]} ${EXTRA[*]}" >&2; exit 2
        fi
    done
fi

cd "$ROOT" || exit 2

if [ "$dry" = 1 ]; then
    total=0
    echo "gpu_check dry run: $( [ "$quick" = 1 ] && echo quick || echo full ); output would go to $out"
    for stage in "${selected[@]}"; do
        printf 'stage %-11s timeout %4ss  starts by %4ss  %s\n' "$stage" "${TIMEOUT[$stage]}" "$total" "${CMD[$stage]}"
        total=$((total + TIMEOUT[$stage]))
    done
    echo "timeouts total ${total} s (deadline ${DEADLINE} s: a stage gets what is left; at most 480)"
    for stage in "${EXTRA[@]}"; do
        if [[ " ${selected[*]} " != *" $stage "* ]]; then
            printf 'extra %-11s timeout %4ss  with --only %s: %s\n' "$stage" "${TIMEOUT[$stage]}" "$stage" "${CMD[$stage]}"
        fi
    done
    failed=0
    for file in "${FILES[@]}"; do
        if [ -f "$file" ]; then echo "check file $file: present"; else echo "check file $file: MISSING"; failed=1; fi
    done
    if [ -n "$hellaswag" ]; then echo "check hellaswag file: $hellaswag (the hellaswag stage scores it)"
    else echo "check hellaswag file: none; the hellaswag stage would be $no_hellaswag"; fi
    if "$PY" bench/gpu_check_env.py --imports-only; then
        echo "check imports: the engine and the bench scripts import without textual, rich, plotext or fwtui"
    else
        echo "check imports: FAILED (above)"; failed=1
    fi
    collected="$("$PY" -m pytest -q -p no:cacheprovider --collect-only -m gpu tests/test_gpu.py 2>&1 | tail -1)"
    case "$collected" in
        *" tests collected"*|*" test collected"*|*"selected"*) echo "check pytest -m gpu: $collected" ;;
        *) echo "check pytest -m gpu: FAILED ($collected)"; failed=1 ;;
    esac
    [ "$failed" = 0 ] && echo "dry run: every check passed" || echo "dry run: a check failed"
    exit "$failed"
fi

mkdir -p "$out/logs" || { echo "gpu_check.sh: cannot create $out/logs" >&2; exit 2; }
summary="$out/summary.txt"
{
    echo "fwtui gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) · $( [ "$quick" = 1 ] && echo quick || echo full ) · commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo
} >"$summary"
export PYTHONUNBUFFERED=1  # every line reaches the log (and stdout) as it is printed
status=0
begin=$SECONDS
for stage in "${selected[@]}"; do
    log="$out/logs/$stage.log"
    if [ "$stage" = hellaswag ] && [ -z "$hellaswag" ]; then
        echo "$no_hellaswag" >"$log"
        printf '%-11s %-28s %4s s  logs/%s.log\n--- %s\n\n' "$stage" "skipped (no HellaSwag file)" 0 "$stage" \
            "$no_hellaswag" | tee -a "$summary"
        continue
    fi
    budget=${TIMEOUT[$stage]}
    left=$((DEADLINE - (SECONDS - begin)))
    [ "$budget" -gt "$left" ] && budget=$left
    if [ "$budget" -lt 10 ]; then
        printf '%-11s %-28s %4s s\n\n' "$stage" "skipped (deadline reached)" 0 | tee -a "$summary"
        continue
    fi
    echo "== $stage (timeout ${budget} s, at ${SECONDS}s): ${CMD[$stage]}"
    start=$SECONDS
    # shellcheck disable=SC2086 - the command is words on purpose
    FWTUI_HELLASWAG_FILE="$hellaswag" timeout -k 5 "$budget" ${CMD[$stage]} 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    seconds=$((SECONDS - start))
    if [ "$rc" = 0 ]; then result="ok"
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then result="timed out after ${budget} s"; status=1
    else result="failed (exit $rc)"; status=1
    fi
    {
        printf '%-11s %-28s %4s s  logs/%s.log\n' "$stage" "$result" "$seconds" "$stage"
        echo "--- $stage: last lines of logs/$stage.log"
        tail -n 25 "$log"
        echo
    } >>"$summary"
    echo "-- $stage: $result ($seconds s)"
done
echo
echo "== summary ($summary)"
cat "$summary"
exit "$status"
