# The training flags of train_full_1p.sh and train_full_8p.sh. Source it right after common/ascend_wrapper.sh;
# it declares the flags (defaults, --help lines) and the log extractors; after wrapper_parse,
# train_flags_args checks --data_path and fills the array `args` with train_cls.py's arguments.
Network="MobileNetV3_ID0256_for_TensorFlow"
BatchSize=32                 # per device, images per step
data_path=""
model=small
image_size=224
epochs=20
max_step=0
learning_rate=""            # empty: the recipe's (Adam 0.001; paper 0.1 x global batch / 4096)
batch=32
modeldir=""
save_interval=0
patience=5                   # early stopping (epochs); it waits for the BN statistics, see README
wrapper_flag data_path "source data of training (train/<class>/, validation/<class>/)"
wrapper_flag model "large or small"
wrapper_flag image_size "input height and width" int
wrapper_flag epochs "epochs (early stopping may end sooner)" int
wrapper_flag max_step "# of step for training (0: all epochs)" int
wrapper_flag learning_rate "initial learning rate (none: the recipe's, Adam 0.001)" number
wrapper_flag batch "batch size per device" int
wrapper_flag modeldir "model dir (default <output>/ckpt; performance run: <output>/ckpt_perf, cleared first; 8p: <output>/ckpt_8p, written by rank 0)"
wrapper_flag save_interval "save interval for ckpt in steps (0: every epoch)" int
wrapper_flag patience "early stopping: epochs without a better val_acc (0: off; waits for the BN statistics)" int

# Fine-tuning and recipe flags: empty leaves train_cls.py's default (see mobilenetv3/README.md).
weights=""
freeze_backbone_epochs=0
weight_decay=""
recipe=adam
input_range=""
augmentation=""
wrapper_flag weights "initial weights: keras.applications MobileNetV3 .h5 (ImageNet), or a checkpoint of ours"
wrapper_flag freeze_backbone_epochs "epochs training only head and classifier, batch norm frozen" int
wrapper_flag weight_decay "L2 on conv/dense kernels (none: 0, or 1e-5 with --recipe=paper)" number
wrapper_flag recipe "adam or paper (RMSProp schedule, L2, weight average)"
wrapper_flag input_range "0,1 or -1,1 (none: what --weights expects)"
wrapper_flag augmentation "upstream or inception (TF-slim's ImageNet crop and flip; none: the recipe's)"

extract_losses()   { log_value mobilenetv3 losses "$1"; }     # mobilenetv3/log_lines.py
extract_accuracy() { log_value mobilenetv3 accuracy "$1"; }

train_flags_args() {
  BatchSize="$batch"
  if [ -z "$data_path" ]; then echo "$(basename "$WRAPPER_SCRIPT"): --data_path is required (see --help)" >&2; exit 2; fi
  data_path="$(abs_path "$data_path")"
  modeldir="$(abs_path "${modeldir:-$OUTPUT_DIR/ckpt}")"
  args=(--data_path="$data_path" --model="$model" --image_size="$image_size" --epochs="$epochs"
        --max_step="$max_step" --batch="$batch" --modeldir="$modeldir"
        --save_interval="$save_interval" --patience="$patience")
  if [ -n "$weights" ]; then weights="$(abs_path "$weights")"; fi
  local flag
  for flag in learning_rate weights freeze_backbone_epochs weight_decay recipe input_range augmentation; do
    if [ -n "${!flag}" ]; then args+=(--"$flag"="${!flag}"); fi
  done
  wrapper_cost_note mobilenetv3 data_path="$data_path" model="$model" image_size="$image_size" epochs="$epochs" \
    max_step="$max_step" batch="$batch" ranks="${workers:-1}"
}
