"""MT-net's options, declared once: main.py's flags and trainer.default_config() both come from OPTIONS.

Upstream's names, meanings and defaults; the block after the upstream ones is this port's. No TensorFlow here.
"""
from common.options import Option

OPTIONS = (
    # Dataset/method options
    Option("datasource", "str", "sinusoid", "sinusoid, polynomial, omniglot or miniimagenet"),
    Option("num_classes", "int", 5, "number of classes used in classification (e.g. 5-way classification)"),
    Option("num_train_classes", "int", -1, "number of classes to train on (-1 for all)"),
    Option("baseline", "str", None, "oracle (task amplitude and phase as inputs; sinusoid only), or None"),
    # Training options
    Option("pretrain_iterations", "int", 0, "iterations training the pre-update loss before meta-training"),
    Option("metatrain_iterations", "int", 15000, "number of meta-training iterations"),
    Option("meta_batch_size", "int", 25, "number of tasks sampled per meta-update"),
    Option("meta_lr", "float", 0.001, "Adam learning rate of the outer loop"),
    Option("update_batch_size", "int", 5, "examples per class used for the inner update (K for K-shot)"),
    Option("update_lr", "float", 1e-3, "step size alpha of the inner gradient update"),
    Option("num_updates", "int", 1, "number of inner gradient updates during training"),
    Option("poly_order", "int", 1, "order of the generated polynomials (datasource=polynomial)"),
    # Model options
    Option("use_T", "bool", False, "learn a transformation T after each layer (outer loop only)"),
    Option("use_M", "bool", False, "update only the weights a learned Gumbel-softmax mask M selects"),
    Option("share_M", "bool", False, "with use_M: one mask bit per unit instead of per weight"),
    Option("temp", "float", 1.0, "Gumbel-softmax temperature"),
    Option("logit_init", "float", 0.0, "initial mask logit (share_M)"),
    Option("norm", "str", "batch_norm", "batch_norm, layer_norm, or None"),
    Option("dim_hidden", "int", 40, "width of the two hidden layers of the regression net"),
    Option("num_filters", "int", 64, "filters of the conv net (32 for miniimagenet, 64 for omniglot)"),
    Option("conv", "bool", True, "conv net for classification (else a 256-128-64-64 fully connected net)"),
    Option("max_pool", "bool", False, "max pooling instead of strided convolutions"),
    Option("stop_grad", "bool", False, "no second derivatives in the meta-gradient (faster)"),
    # Logging, saving, and testing options
    Option("log", "bool", True, "write TensorBoard summaries"),
    Option("logdir", "str", "/tmp/data", "directory for summaries, checkpoints and test results"),
    Option("resume", "bool", True, "resume training from the latest checkpoint of the experiment"),
    Option("train", "bool", True, "True to train, False to test"),
    Option("test_iter", "int", -1, "iteration of the checkpoint to test (-1: latest)"),
    Option("test_set", "bool", False, "test on the test split (True) or the validation split (False)"),
    Option("train_update_batch_size", "int", -1, "update_batch_size used in training, if testing with another"),
    Option("train_update_lr", "float", -1.0, "update_lr used in training, if testing with another"),
    # Additions of this port
    Option("seed", "int", 1, "graph-level random seed (tasks, masks, initial weights); upstream seeds nothing"),
    Option("data_path", "str", "", "image root (default ./data/omniglot_resized or ./data/miniImagenet)"),
    Option("omniglot_train_chars", "int", 1100, "omniglot characters for meta-training (upstream 1100)"),
    Option("omniglot_test_chars", "int", 100, "omniglot characters of the test split; the rest validate"),
    Option("print_interval", "int", 0, "iterations per 'Iteration N' line (0: 1000 regression, 100 images)"),
    Option("save_interval", "int", 1000, "iterations between checkpoints"),
    Option("num_test_tasks", "int", -1, "test-mode tasks (-1: upstream's 600, 20 for polynomial)"),
    Option("test_num_updates", "int", 10, "inner steps evaluated in test mode (upstream: 10)"),
    Option("num_threads", "int", 0, "CPU/GPU intra-op threads (0: 1 for regression, TF's default for images)"),
    Option("sine_freq", "str", "0.8,1.2", "sinusoid frequency range LOW,HIGH (upstream's default), or one value: 1 "
           "fixes it as the MAML paper"),
)
