# The paper-table command of each model (<model>/test/reproduce.sh): common/reproduce.py under the wrapper's
# output folder, log and report. Source it after common/ascend_wrapper.sh, declare the model's own flags with
# wrapper_flag, then call reproduce_main <model>.
#   bash <model>/test/reproduce.sh --data_path=DIR [--table=NAME] [--quick] [model flags]
# Output: $OUTPUT_DIR (<model>/test/output/$ASCEND_DEVICE_ID) holds the log, each row's run folder,
# reproduction.json (the table) and report.html/report.json, which show the table.

Network="${Network:-reproduce}"
data_path=""
table=""
quick=""
wrapper_flag data_path "the data set's folder (see the model's README, 'Reproducing the papers')"
wrapper_flag table "which paper table (see --help of python -m common.reproduce <model>)"
wrapper_flag quick "True: the same protocol at toy scale, to check the pipeline (numbers not comparable)"

REPRODUCE_FLAGS=()        # the model's own flags, declared by its reproduce.sh with wrapper_flag and listed here
REPRODUCE_PATH_FLAGS=()   # those of them that name files: made absolute (the commands run from the model folder)

reproduce_main() {  # model "$@": parse, print the estimate and run every row, print the table, write the report
  local model="$1" name
  shift
  wrapper_parse "$@"
  if [ -z "$data_path" ]; then flag_error "--data_path is required (see --help)"; fi
  local args=(--data_path="$data_path" --out="$OUTPUT_DIR")
  if [ -n "$table" ]; then args+=(--table="$table"); fi
  case "$quick" in
    ""|False|false|0) ;;
    True|true|1) args+=(--quick) ;;
    *) flag_error "--quick takes no value (or True/False), got '$quick'" ;;
  esac
  for name in "${REPRODUCE_PATH_FLAGS[@]}"; do
    if [ -n "${!name}" ]; then printf -v "$name" '%s' "$(abs_path "${!name}")"; fi
  done
  for name in "${REPRODUCE_FLAGS[@]}"; do
    if [ -n "${!name}" ]; then args+=(--"$name"="${!name}"); fi
  done
  wrapper_run "$PYTHON" -m common.reproduce "$model" "${args[@]}"   # wrapper_run adds the Ascend flags set
  wrapper_report
}
