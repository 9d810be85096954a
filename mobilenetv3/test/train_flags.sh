# The training flags of train_full_1p.sh and train_full_8p.sh. Source it right after common/ascend_wrapper.sh;
# it declares the flags (defaults, --help lines) and the log extractors; after wrapper_parse,
# train_flags_args checks --data_path and fills the array `args` with train_cls.py's arguments.
Network="MobileNetV3_ID0256_for_TensorFlow"
BatchSize=32                 # per device, images per step
data_path=""
wrapper_flag data_path "source data of training (train/<class>/, validation/<class>/)"
modeldir=""
wrapper_flag modeldir "model dir (default <output>/ckpt; performance run: <output>/ckpt_perf, cleared first; 8p: <output>/ckpt_8p, written by rank 0)"
# train_cls.py's options (mobilenetv3/options.py): their defaults, kinds and help lines, except as stated below.
# --image_size is train_cls.py's flag setting height and width, whose declared default it shows. data_path and
# modeldir (train_cls.py's flags; a wrapper's model dir lies under its output) are the wrapper's own, above.
wrapper_options mobilenetv3 data_path model image_size:height epochs max_step learning_rate batch modeldir \
  save_interval patience weights freeze_backbone_epochs weight_decay recipe input_range augmentation
# This wrapper's --help words (unchanged since before the declarations: the wrappers' --help is the contract);
# "none" is how --help shows an unset default.
wrapper_help image_size "input height and width"
wrapper_help epochs "epochs (early stopping may end sooner)"
wrapper_help max_step "# of step for training (0: all epochs)"
wrapper_help learning_rate "initial learning rate (none: the recipe's, Adam 0.001)"
wrapper_help save_interval "save interval for ckpt in steps (0: every epoch)"
wrapper_help patience "early stopping: epochs without a better val_acc (0: off; waits for the BN statistics)"
wrapper_help weights "initial weights: keras.applications MobileNetV3 .h5 (ImageNet), or a checkpoint of ours"
wrapper_help freeze_backbone_epochs "epochs training only head and classifier, batch norm frozen"
wrapper_help weight_decay "L2 on conv/dense kernels (none: 0, or 1e-5 with --recipe=paper)"
wrapper_help recipe "adam or paper (RMSProp schedule, L2, weight average)"
wrapper_help input_range "0,1 or -1,1 (none: what --weights expects)"
wrapper_help augmentation "upstream or inception (TF-slim's ImageNet crop and flip; none: the recipe's)"

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
