"""The SWA library's one `import tensorflow`, the one exception to the project's rule that only
common/tf_compat.py imports it: swa installs without the project (`pip install ./swa`), and importing it must
leave the program as it is, where common/tf_compat switches TF 2.x to graph mode for the project's scripts.
Imported only by the parts that run TensorFlow code (the tf.keras flavour, the graph and eager engines)."""
import tensorflow as tf  # noqa: F401  (re-exported)

__all__ = ["tf"]
