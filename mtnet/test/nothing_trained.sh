# Sourced by MT-net's wrappers after common/ascend_wrapper.sh: the Ascend summary of a run that may have had
# nothing left to train (its checkpoint already at train_steps), so no step time was measured.

summary_or_nothing_trained() {  # acc|perf: wrapper_summary, or the same summary with no performance figures
  if ! grep -aq '^nothing to train:' "$LOG" || grep -aq '^step_time_summary: mean_dt=[0-9]' "$LOG"; then
    wrapper_summary "$1"
    return
  fi
  # common's wrapper_summary stops with an error when the log has no step time; a finished checkpoint is not
  # an error, and the summary must not show a throughput that was never measured.
  local kind="$1" e2e loss_file accuracy
  e2e=$(awk -v s="$WRAPPER_START" -v e="$(date +%s.%N)" 'BEGIN{printf "%d", e - s + 0.5}')
  CaseName="${Network}_bs${BatchSize}_${RankSize}p_${kind}"
  loss_file="$OUTPUT_DIR/train_${CaseName}_loss.txt"
  : > "$loss_file"
  accuracy=None
  if [ "$kind" = acc ] && declare -F extract_accuracy >/dev/null; then
    accuracy=$(extract_accuracy "$LOG" | tail -n 1)
    accuracy="${accuracy:-None}"
  fi
  {
    echo "------------------ Final result ------------------"
    echo "nothing trained: the checkpoint had already reached train_steps; no step time measured"
    echo "Final Performance ${FPS_UNIT}/sec : None"
    echo "Final Train Accuracy : $accuracy"
    echo "E2E Training Duration sec : $e2e"
  } | tee -a "$LOG"
  {
    echo "Network = $Network"
    echo "RankSize = $RankSize"
    echo "BatchSize = $BatchSize"
    echo "DeviceType = $(uname -m)"
    echo "CaseName = $CaseName"
    echo "ActualFPS = None"
    echo "TrainingTime = None"
    echo "TrainAccuracy = $accuracy"
    echo "ActualLoss = None"
    echo "E2ETrainingTime = $e2e"
  } | tee "$OUTPUT_DIR/$CaseName.log" >> "$LOG"
}
