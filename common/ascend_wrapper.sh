# Shared logic of the Ascend-style wrappers (<model>/test/train_*.sh). Source it, do not run it.
#
# A wrapper sets Network, BatchSize (per device), RankSize and its flag defaults, then:
#   source "<repo>/common/ascend_wrapper.sh"
#   wrapper_options <model> data_path seed ...         # the flags passing on <model>/options.py's options
#   wrapper_flag workers "worker processes"            # each other --key=value flag the wrapper accepts
#   wrapper_parse "$@"                                 # --help, flag parsing, output dir, log, timer
#   extract_losses()   { log_value <model> losses "$1"; }     # one loss per line from the log file "$1"
#   extract_accuracy() { log_value <model> accuracy "$1"; }   # the final accuracy (optional; None if undefined)
#   wrapper_cost_note <model> train_steps="$train_steps" ...   # on a CPU: a one-line estimate if the run is long
#   wrapper_run "$PYTHON" train.py --data_dir="$data_path"   # the Ascend flags the user set are added, each one
#                                                              # argument (values may hold spaces)
#   wrapper_summary acc        # or perf
# Data-parallel wrappers call data_parallel_route <workers> then data_parallel_run <command> instead of wrapper_run.
# Wrappers of one model that share their flags declare them once in a file of their own (e.g.
# mobilenetv3/test/train_flags.sh) sourced after this one; a wrapper may change a default before wrapper_parse.
# A model option's default, kind and help line are its declaration's; a wrapper that shows another states it
# (an assignment or wrapper_help after wrapper_options, with a comment why).
#
# Outputs: $OUTPUT_DIR = ${OUTPUT_ROOT:-<model>/test/output}/$ASCEND_DEVICE_ID with the full log
# train_$ASCEND_DEVICE_ID.log, checkpoints under ckpt*/, ${CaseName}.log and train_${CaseName}_loss.txt.
# The step time comes from the `step_time_summary:` line of common/step_timer.py (warm-up excluded); every value
# read from the log is read by common/log_lines.py (log_value), where each line's format and parser sit together.

WRAPPER_SCRIPT="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)/$(basename "${BASH_SOURCE[1]}")"
MODEL_DIR="$(cd "$(dirname "$WRAPPER_SCRIPT")/.." && pwd)"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO_DIR/common/bootstrap.sh"   # wrapper_python, called by wrapper_parse once the flags are good
export PYTHONPATH="$REPO_DIR${PYTHONPATH:+:$PYTHONPATH}"
ASCEND_DEVICE_ID="${ASCEND_DEVICE_ID:-0}"
export ASCEND_DEVICE_ID
RankSize="${RankSize:-${RANK_SIZE:-1}}"
FPS_UNIT="${FPS_UNIT:-images}"

WRAPPER_FLAGS=()
WRAPPER_HELP=()
WRAPPER_KIND=()

wrapper_flag() {  # name "help text" [int|number]: declare a --name=value flag stored in the shell variable $name
  WRAPPER_FLAGS+=("$1")
  WRAPPER_HELP+=("$2")
  WRAPPER_KIND+=("${3:-text}")
}

check_flag_kind() {  # name int|number|text: a non-numeric value would otherwise surface as a bash or Python error
  local name="$1" value="${!1:-}"
  case "$2:$value" in
    int:|number:) ;;
    int:*[!0-9]*) flag_error "--$name must be a whole number, got '$value'" ;;
    number:*) [[ "$value" =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]] ||
                flag_error "--$name must be a non-negative number, got '$value'" ;;
  esac
}

file_size() {  # bytes of file $1, 0 when it does not exist yet
  stat -c %s "$1" 2>/dev/null || echo 0
}

flag_error() {
  echo "$(basename "$WRAPPER_SCRIPT"): $*" >&2
  exit 2
}

# The flags' declarations, read by one python call per wrapper start (no TensorFlow): the Ascend flags every
# wrapper passes through to its script (ASCEND_FLAGS, their ASCEND_HELP and ASCEND_DEFAULTS, ASCEND_INT_FLAGS and
# PRECISION_PATH_FLAGS; an empty value leaves the script's own default) from common/npu_options.py, and the model
# options the wrapper names with wrapper_options (OPTION_*) from <model>/options.py; see common/wrapper_flags.py.
WRAPPER_DECLARED=""

wrapper_declarations() {  # [model flag[:option] ...]: evaluate common/wrapper_flags.py's bash declarations
  # (locals start with _w: the declarations assign variables named after flags, such as model or seed)
  local _wpy="${PYTHON:-}" _wdecl _wstatus=0 _wflag
  if [ -z "$_wpy" ]; then
    if [ -x "$REPO_DIR/.venv/bin/python" ]; then _wpy="$REPO_DIR/.venv/bin/python"; else _wpy=python3; fi
  fi
  _wdecl="$("$_wpy" -m common.wrapper_flags "$@" 2>/dev/null)" || _wstatus=$?
  if [ "$_wstatus" = 2 ]; then   # the python ran and refused the wrapper's option names: say why
    "$_wpy" -m common.wrapper_flags "$@" >/dev/null || true
    echo "$(basename "$WRAPPER_SCRIPT"): its flag declarations are wrong (above)" >&2
    exit 1
  elif [ "$_wstatus" != 0 ]; then
    # No usable python yet (a fresh clone on a host without python3, or an unfinished .venv): build the venv the
    # run needs anyway first, saying so (or stop with setup.sh's one line), and read them with it.
    wrapper_python "$(basename "$WRAPPER_SCRIPT")"
    if ! _wdecl="$("$PYTHON" -m common.wrapper_flags "$@")"; then
      echo "$(basename "$WRAPPER_SCRIPT"): cannot read the flag declarations with $PYTHON -m common.wrapper_flags" >&2
      exit 1
    fi
  fi
  eval "$_wdecl"
  for _wflag in "${ASCEND_FLAGS[@]}"; do
    printf -v "$_wflag" '%s' "${!_wflag:-}"
  done
  WRAPPER_DECLARED=yes
}

wrapper_options() {  # model flag[:option] ...: the wrapper's flags that pass on <model>/options.py's options
  # Each takes the option's default (its shell variable is set now), kind and one-line help; FLAG:OPTION exposes
  # OPTION as --FLAG. A wrapper changes a default by assigning the variable afterwards, and a help line with
  # wrapper_help, saying why beside it. A flag the wrapper declared itself before (wrapper_flag) may be named
  # too: --help then lists it at this place.
  local _wmodel="$1" _wspec _wname _wi _wj=0 _wown _wdeclared=() _wflags=() _whelps=() _wkinds=()
  shift
  for _wspec in "$@"; do
    if ! wrapper_flag_index "${_wspec%%:*}" >/dev/null; then _wdeclared+=("$_wspec"); fi
  done
  wrapper_declarations "$_wmodel" ${_wdeclared[@]+"${_wdeclared[@]}"}
  for _wi in "${!WRAPPER_FLAGS[@]}"; do   # the wrapper's earlier flags not named here keep their place
    case " ${*%%:*} " in *" ${WRAPPER_FLAGS[$_wi]} "*) continue ;; esac
    _wflags+=("${WRAPPER_FLAGS[$_wi]}"); _whelps+=("${WRAPPER_HELP[$_wi]}"); _wkinds+=("${WRAPPER_KIND[$_wi]}")
  done
  for _wspec in "$@"; do
    _wname="${_wspec%%:*}"
    if _wown=$(wrapper_flag_index "$_wname"); then
      _wflags+=("$_wname"); _whelps+=("${WRAPPER_HELP[$_wown]}"); _wkinds+=("${WRAPPER_KIND[$_wown]}")
    else
      _wflags+=("$_wname"); _whelps+=("${OPTION_HELP[$_wj]}"); _wkinds+=("${OPTION_KIND[$_wj]}")
      printf -v "$_wname" '%s' "${OPTION_DEFAULT[$_wj]}"
      _wj=$((_wj + 1))
    fi
  done
  WRAPPER_FLAGS=("${_wflags[@]}"); WRAPPER_HELP=("${_whelps[@]}"); WRAPPER_KIND=("${_wkinds[@]}")
}

wrapper_flag_index() {  # name: print the index of the wrapper's flag --name; status 1 if it has none
  local _wi
  for _wi in "${!WRAPPER_FLAGS[@]}"; do
    if [ "${WRAPPER_FLAGS[$_wi]}" = "$1" ]; then echo "$_wi"; return 0; fi
  done
  return 1
}

wrapper_help() {  # name "help text": the wrapper's own --help line for a flag (say why beside it)
  local _wi
  if ! _wi=$(wrapper_flag_index "$1"); then
    echo "$(basename "$WRAPPER_SCRIPT"): wrapper_help: no flag --$1 declared before" >&2
    exit 1
  fi
  WRAPPER_HELP[$_wi]="$2"
}

wrapper_usage() {
  echo "usage: $(basename "$WRAPPER_SCRIPT") [--flag=value ...]"
  echo "parameter explain:"
  local i name
  for i in "${!WRAPPER_FLAGS[@]}"; do   # defaults as they stand now: a wrapper may change a shared flag's default
    name="${WRAPPER_FLAGS[$i]}"
    printf '    --%-22s %s (default: %s)\n' "$name" "${WRAPPER_HELP[$i]}" "${!name:-none}"
  done
  for i in "${!ASCEND_FLAGS[@]}"; do
    name="${ASCEND_FLAGS[$i]}"
    printf '    --%-22s %s (default: %s)\n' "$name" "${ASCEND_HELP[$i]}" "${!name:-${ASCEND_DEFAULTS[$i]}}"
  done
  echo "    -h/--help                show help message"
  echo "Environment: ASCEND_DEVICE_ID (default 0), OUTPUT_ROOT (default <model>/test/output), PYTHON."
}

wrapper_parse() {
  local arg key value known i
  if [ -z "$WRAPPER_DECLARED" ]; then wrapper_declarations; fi   # a wrapper without model options
  for arg in "$@"; do
    case "$arg" in
      -h|--help) wrapper_usage; exit 0 ;;
      --*=*) key="${arg%%=*}"; key="${key#--}"; value="${arg#*=}" ;;
      --*) key="${arg#--}"; value=True ;;
      *) flag_error "unexpected argument '$arg' (flags are --key=value; see --help)" ;;
    esac
    known=no
    case " ${WRAPPER_FLAGS[*]} ${ASCEND_FLAGS[*]} " in
      *" $key "*) known=yes ;;
    esac
    if [ "$known" != yes ]; then flag_error "unknown flag --$key (see --help)"; fi
    printf -v "$key" '%s' "$value"
  done
  for i in "${!WRAPPER_FLAGS[@]}"; do check_flag_kind "${WRAPPER_FLAGS[$i]}" "${WRAPPER_KIND[$i]}"; done
  for i in "${ASCEND_INT_FLAGS[@]}"; do check_flag_kind "$i" int; done
  check_flag_kind data_dump_step int   # the script takes 0|5|10; a wrapper one step
  precision_flag_paths
  wrapper_python "$(basename "$WRAPPER_SCRIPT")"   # PYTHON; on a fresh clone it builds .venv first, saying so
  if [ -n "${data_path:-}" ]; then data_path="$(abs_path "$data_path")"; fi
  OUTPUT_DIR="${OUTPUT_ROOT:-$MODEL_DIR/test/output}/$ASCEND_DEVICE_ID"
  mkdir -p "$OUTPUT_DIR"
  OUTPUT_DIR="$(cd "$OUTPUT_DIR" && pwd)"
  exec 9>>"$OUTPUT_DIR/.wrapper.lock"   # held until this wrapper and its children end
  if ! flock -n 9; then
    flag_error "another run is using $OUTPUT_DIR; wait for it, or give this one another OUTPUT_ROOT or" \
               "ASCEND_DEVICE_ID"
  fi
  # Runs append: a resumed, failed or repeated run never erases the log of an earlier one. LOG_START marks
  # where this run's part begins, which is all the summary reads.
  LOG="$OUTPUT_DIR/train_$ASCEND_DEVICE_ID.log"
  LOG_START=$(file_size "$LOG")
  echo "===== $(basename "$WRAPPER_SCRIPT") $* ($(date '+%Y-%m-%d %H:%M:%S')) =====" >> "$LOG"
  WRAPPER_START=$(date +%s.%N)
  echo "log: $LOG"
}

precision_flag_paths() {  # the scripts run from the model directory: the precision flags' paths made absolute
  local flag
  for flag in "${PRECISION_PATH_FLAGS[@]}"; do
    if [ -n "${!flag}" ]; then printf -v "$flag" '%s' "$(abs_path "${!flag}")"; fi
  done
}

abs_path() {  # wrapper_run runs from the model directory: make a user's relative path absolute first
  case "$1" in /*|"") echo "$1" ;; *) echo "$PWD/$1" ;; esac
}

ascend_args() {  # fill ASCEND_ARGS: the Ascend flags the user set, one --key=value argument each, whatever they hold
  local flag
  ASCEND_ARGS=()
  for flag in "${ASCEND_FLAGS[@]}"; do
    if [ -n "${!flag}" ]; then ASCEND_ARGS+=("--$flag=${!flag}"); fi
  done
  if [ -n "$over_dump$data_dump_flag$profiling" ]; then ASCEND_ARGS+=("--dump_path=$OUTPUT_DIR/dump"); fi
}

wrapper_run() {  # run one training/eval command (plus the Ascend flags) from the model directory, log tee'd
  local status=0 start
  ascend_args
  set -- "$@" ${ASCEND_ARGS[@]+"${ASCEND_ARGS[@]}"}   # (the + form: bash before 4.4 calls an empty array unset)
  echo "+ $*" | tee -a "$LOG"
  start=$(file_size "$LOG")
  # A stop reaches bash, the script and tee together: Ctrl-C at a terminal, a scheduler's SIGTERM to the process
  # group, `timeout -s TERM`. The script saves and prints where it stopped; tee ignores both signals and ends at
  # the script's end of output, so that line reaches the log; bash waits for both (a trapped signal waits for the
  # foreground command) and then says how to go on. exec: the status is the script's, not a subshell's.
  WRAPPER_SIGNAL=""
  trap 'WRAPPER_SIGNAL=${WRAPPER_SIGNAL:-2}' INT
  trap 'WRAPPER_SIGNAL=${WRAPPER_SIGNAL:-15}' TERM
  (cd "$MODEL_DIR" && exec "$@") 2>&1 | (trap '' INT TERM; exec tee -a "$LOG") || status=$?
  trap - INT TERM
  if [ -n "$WRAPPER_SIGNAL" ] || [ "$status" = 130 ] || [ "$status" = 143 ]; then
    wrapper_stopped "$status" "$start"
  fi
  if [ "$status" != 0 ]; then
    echo "$(basename "$WRAPPER_SCRIPT"): command failed with exit status $status; see $LOG" >&2
    exit "$status"
  fi
}

wrapper_stopped() {  # status log_offset: the command ended on a stop request; exit 128 + signal
  local status="$1" name
  name="$(basename "$WRAPPER_SCRIPT")"
  if [ "$status" = 0 ]; then status=$((128 + ${WRAPPER_SIGNAL:-15})); fi
  # Only the script knows whether it saved: its line 'stopped by SIG... saved ...: rerun the same command to
  # resume'. Without one (a stop before training began, or a command that saves nothing) say no more than that.
  if tail -c +$(($2 + 1)) "$LOG" | log_value common stopped - >/dev/null; then
    echo "$name: stopped (exit status $status); rerun the same command to resume" >&2
  else
    echo "$name: stopped (exit status $status) with no checkpoint saved on the way out; a rerun starts from the" \
         "last checkpoint saved before, if any (see $LOG)" >&2
  fi
  exit "$status"
}

log_value() {  # model what log|-: what common/log_lines.py reads from a log (the lines' one definition), one
  # value per line; status 1 when the log has none
  "$PYTHON" -m common.log_lines "$@"
}

wrapper_cost_note() {  # model key=value...: on a CPU, one line estimating a long run's time (common/run_cost.py)
  "$PYTHON" -m common.run_cost "$@" | tee -a "$LOG" || true   # advice only: never stops the run
}

data_parallel_route() {  # sets route (npu|collective) and RankSize; $1 = worker processes off Ascend
  # Ascend: one process per device of RANK_TABLE_FILE (RANK_SIZE of them, default 8), HCCL all-reduce.
  # Elsewhere: $1 local processes under MultiWorkerMirroredStrategy over loopback.
  if "$PYTHON" -c "import sys; from common import npu_session; sys.exit(0 if npu_session.on_npu() else 3)" \
      >/dev/null 2>&1; then
    route=npu
    RankSize="${RANK_SIZE:-8}"
    if [ -z "${RANK_TABLE_FILE:-}" ] || [ ! -f "$RANK_TABLE_FILE" ]; then
      echo "$(basename "$WRAPPER_SCRIPT"): set RANK_TABLE_FILE to the HCCL rank table of the $RankSize devices" \
           "(now '${RANK_TABLE_FILE:-}')" | tee -a "$LOG" >&2
      exit 2
    fi
    export RANK_TABLE_FILE JOB_ID="${JOB_ID:-10087}"
  else
    route=collective
    RankSize="$1"
  fi
}

data_parallel_run() {  # run a training command (plus the Ascend flags) on every rank (common.launch, model dir)
  # Rank r appends to <output root>/<r>/train_<r>.log; the launcher shows rank 0's output and a failing
  # worker's last lines, and stops every worker when one fails, and so do we. Rank 0's part (the losses and
  # the step time) ends up in $LOG.
  local status=0 rank0_log rank0_start
  ascend_args
  set -- "$@" ${ASCEND_ARGS[@]+"${ASCEND_ARGS[@]}"}
  rank0_log="$(dirname "$OUTPUT_DIR")/0/train_0.log"
  rank0_start=$(file_size "$rank0_log")
  echo "+ common.launch --nproc=$RankSize --route=$route -- $*" >> "$LOG"
  (cd "$MODEL_DIR" && "$PYTHON" -m common.launch --nproc="$RankSize" --route="$route" \
     --output_root="$(dirname "$OUTPUT_DIR")" -- "$@") || status=$?
  if [ "$rank0_log" != "$LOG" ] && [ -f "$rank0_log" ]; then tail -c +$((rank0_start + 1)) "$rank0_log" >> "$LOG"; fi
  if [ "$status" -ne 0 ]; then
    echo "$(basename "$WRAPPER_SCRIPT"): data-parallel training failed with exit status $status" >&2
    exit "$status"
  fi
}

wrapper_summary() {  # acc|perf: print the Ascend summary of this run's part of the log; write ${CaseName}.log
  local kind="$1" mean_dt e2e run_log="$OUTPUT_DIR/.this_run.log"
  e2e=$(awk -v s="$WRAPPER_START" -v e="$(date +%s.%N)" 'BEGIN{printf "%d", e - s + 0.5}')
  tail -c +$((LOG_START + 1)) "$LOG" > "$run_log"
  wrapper_summary_of "$kind" "$run_log" "$e2e"
  rm -f "$run_log"
}

wrapper_summary_of() {  # kind run_log e2e
  local kind="$1" run_log="$2" e2e="$3" mean_dt warmup
  mean_dt=$(log_value common mean_dt "$run_log" || true)
  local nothing_trained=""
  if [ -z "$mean_dt" ] || [ "$mean_dt" = nan ]; then
    # A rerun on a finished checkpoint says "nothing to train: ..."; a run so short that every step was a
    # warm-up step says steps=0 warmup=N. Neither measured a step: report no performance rather than fail or
    # invent one. Any other run without a step time is an error.
    nothing_trained=$(log_value common nothing_to_train "$run_log" || true)
    warmup=$(log_value common warmup_only "$run_log" || true)
    if [ -z "$nothing_trained" ] && [ -n "$warmup" ]; then
      nothing_trained="every step of this run ($warmup) was a warm-up step, left out of the timing"
    fi
    if [ -z "$nothing_trained" ]; then
      echo "$(basename "$WRAPPER_SCRIPT"): no step_time_summary line with a step time in this run's part of $LOG" >&2
      exit 1
    fi
  fi
  CaseName="${Network}_bs${BatchSize}_${RankSize}p_${kind}"
  if [ -n "$nothing_trained" ]; then
    ActualFPS=None
    TrainingTime=None
  else
    ActualFPS=$(awk -v b="$BatchSize" -v r="$RankSize" -v t="$mean_dt" 'BEGIN{printf "%.2f", b * r / t}')
    TrainingTime=$(awk -v t="$mean_dt" 'BEGIN{printf "%.2f", t * 1000}')
  fi
  local loss_file="$OUTPUT_DIR/train_${CaseName}_loss.txt" losses=""
  if declare -F extract_losses >/dev/null; then losses=$(extract_losses "$run_log" || true); fi
  if [ -n "$losses" ] || [ ! -s "$loss_file" ]; then
    printf '%s\n' "$losses" | awk 'NF' > "$loss_file"
  else   # a rerun that trained nothing: the losses of the run that did stay
    echo "no losses in this run: kept the losses of the previous run in $loss_file" | tee -a "$LOG"
  fi
  ActualLoss=$(awk 'NF {last=$0} END {print (last == "" ? "None" : last)}' "$loss_file")
  TrainAccuracy=None
  if [ "$kind" = acc ] && declare -F extract_accuracy >/dev/null; then
    TrainAccuracy=$(extract_accuracy "$run_log" | tail -n 1 || true)   # no accuracy line (a rerun): None, not exit 1
    TrainAccuracy="${TrainAccuracy:-None}"
  fi
  DeviceType=$(uname -m)
  {
    echo "------------------ Final result ------------------"
    if [ -n "$nothing_trained" ]; then echo "no step time measured: $nothing_trained"; fi
    echo "Final Performance ${FPS_UNIT}/sec : $ActualFPS"
    echo "Final Train Accuracy : $TrainAccuracy"
    # A model whose "accuracy" is another measure says so (ACCURACY_NOTE); the Ascend line itself stays as is.
    if [ "$kind" = acc ] && [ -n "${ACCURACY_NOTE:-}" ]; then echo "$ACCURACY_NOTE"; fi
    echo "E2E Training Duration sec : $e2e"
  } | tee -a "$LOG"
  {
    echo "Network = $Network"
    echo "RankSize = $RankSize"
    echo "BatchSize = $BatchSize"
    echo "DeviceType = $DeviceType"
    echo "CaseName = $CaseName"
    echo "ActualFPS = $ActualFPS"
    echo "TrainingTime = $TrainingTime"
    echo "TrainAccuracy = $TrainAccuracy"
    echo "ActualLoss = $ActualLoss"
    echo "E2ETrainingTime = $e2e"
  } | tee "$OUTPUT_DIR/$CaseName.log" >> "$LOG"
  wrapper_report
}

wrapper_report() {  # report.html and PNGs beside the log (rank 0's), by common/report.py; never fails the run
  local dir name message
  dir="$(dirname "$LOG")"
  {
    echo "wrapper = $WRAPPER_SCRIPT"
    for name in "${WRAPPER_FLAGS[@]}" "${ASCEND_FLAGS[@]}"; do
      if [ -n "${!name}" ]; then echo "--$name = ${!name}"; fi
    done
  } > "$dir/wrapper_flags.txt"
  if ! message=$("$PYTHON" -m common.report --quiet "$dir" 2>&1); then
    echo "$(basename "$WRAPPER_SCRIPT"): warning: no report written (${message##*$'\n'}); the training run is fine" >&2
    return 0
  fi
  echo "$message"
}
