# The flags of train_full_1p.sh and train_performance_1p.sh. Source it right after common/ascend_wrapper.sh;
# a wrapper may then change defaults (before wrapper_parse). After wrapper_parse, train_flags_args fills the
# array `args` with the seed script's arguments.
Network="SWA_ID0252_for_TensorFlow"
BatchSize=16384
FPS_UNIT=samples
data_path="./"                   # unused: the blobs are generated
train_epochs=100
batch_size=16384
num_samples=131072
swa_start=75
swa_freq=3
swa_lr=0.001
swa_lr2=0.003
wrapper_flag data_path "unused (no data set to download; kept for the Ascend convention)"
wrapper_flag train_epochs "epochs of each run" int
wrapper_flag batch_size "samples per step" int
wrapper_flag num_samples "blob points generated before the 80/20 train/test split" int
wrapper_flag swa_start "SWA start epoch, counted from 1" int
wrapper_flag swa_freq "epochs per SWA cycle" int
wrapper_flag swa_lr "SWA learning rate (bottom of the cycle)" number
wrapper_flag swa_lr2 "top of the cyclic learning rate" number

extract_losses()   { log_value swa losses "$1"; }     # swa/log_lines.py
extract_accuracy() { log_value swa accuracy "$1"; }

train_flags_args() {
  BatchSize="$batch_size"
  args=(--train_epochs="$train_epochs" --batch_size="$batch_size" --num_samples="$num_samples"
        --swa_start="$swa_start" --swa_freq="$swa_freq" --swa_lr="$swa_lr" --swa_lr2="$swa_lr2")
}
