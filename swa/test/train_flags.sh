# The flags of train_full_1p.sh and train_performance_1p.sh. Source it right after common/ascend_wrapper.sh;
# a wrapper may then change defaults (before wrapper_parse). After wrapper_parse, train_flags_args fills the
# array `args` with the seed script's arguments.
Network="SWA_ID0252_for_TensorFlow"
BatchSize=16384
FPS_UNIT=samples
data_path="./"                   # unused: the blobs are generated
wrapper_flag data_path "unused (no data set to download; kept for the Ascend convention)"
# The seed script's options (swa/options.py): their defaults, kinds and help lines, except as stated below.
wrapper_options swa train_epochs batch_size num_samples swa_start swa_freq swa_lr swa_lr2
# This wrapper's --help words (unchanged since before the declarations: the wrappers' --help is the contract).
wrapper_help train_epochs "epochs of each run"
wrapper_help num_samples "blob points generated before the 80/20 train/test split"   # names the split here
wrapper_help swa_freq "epochs per SWA cycle"

extract_losses()   { log_value swa losses "$1"; }     # swa/log_lines.py
extract_accuracy() { log_value swa accuracy "$1"; }

train_flags_args() {
  BatchSize="$batch_size"
  args=(--train_epochs="$train_epochs" --batch_size="$batch_size" --num_samples="$num_samples"
        --swa_start="$swa_start" --swa_freq="$swa_freq" --swa_lr="$swa_lr" --swa_lr2="$swa_lr2")
}
