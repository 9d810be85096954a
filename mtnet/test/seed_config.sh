# The seed configuration's flags, shared by MT-net's wrappers. Source it right after common/ascend_wrapper.sh;
# it declares the flags (defaults, --help lines; a wrapper may change a default before wrapper_parse), the log
# extractors and seed_config_args <logdir> <resume>, which fills the array `args` with main.py's arguments once
# the flags are parsed.
Network="MTnet_for_TensorFlow"
BatchSize=4                    # meta_batch_size: tasks per step (and device)
FPS_UNIT=tasks
# main.py's options (mtnet/options.py): their kinds, and their defaults and help lines except as stated below.
wrapper_options mtnet data_path datasource train_steps:metatrain_iterations meta_batch_size meta_lr update_lr \
  update_batch_size norm use_T use_M share_M seed
# The Ascend seed configuration (10-shot sinusoid MT-net, 60000 iterations), not main.py's upstream defaults:
train_steps=60000
meta_batch_size=4
update_lr=0.01
update_batch_size=10
norm=None
use_T=True
use_M=True
share_M=True
# This wrapper's --help words (unchanged since before the declarations: the wrappers' --help is the contract);
# most name what the seed configuration does with the option.
wrapper_help data_path "image root (omniglot/miniimagenet only; the seeds' sinusoid and polynomial tasks are generated)"
wrapper_help datasource "sinusoid or polynomial"
wrapper_help train_steps "meta-training iterations"
wrapper_help meta_batch_size "tasks per step (on each device)"
wrapper_help update_lr "inner-loop step size"
wrapper_help update_batch_size "K, support points per task"
wrapper_help norm "batch_norm, layer_norm or None"
wrapper_help use_T "learn the transformations T (T-net, MT-net)"
wrapper_help use_M "learn the masks M (MT-net)"
wrapper_help share_M "one mask bit per unit"
wrapper_help seed "graph random seed (data parallel: rank r adds 1000 * r for its tasks and masks)"

extract_losses()   { log_value mtnet losses "$1"; }     # mtnet/log_lines.py
extract_accuracy() { log_value mtnet accuracy "$1"; }   # test MSE, 10 steps
ACCURACY_NOTE="(MT-net: this is the mean test MSE after 10 inner steps over the test tasks; lower is better)"

seed_config_args() {  # $1 = logdir, $2 = resume (True/False)
  BatchSize="$meta_batch_size"
  args=(--datasource="$datasource" --metatrain_iterations="$train_steps" --meta_batch_size="$meta_batch_size"
        --meta_lr="$meta_lr" --update_lr="$update_lr" --norm="$norm" --resume="$2"
        --update_batch_size="$update_batch_size" --use_T="$use_T" --use_M="$use_M" --share_M="$share_M"
        --seed="$seed" --logdir="$1")
  if [ -n "$data_path" ]; then args+=(--data_path="$data_path"); fi
}
