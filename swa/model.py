"""The seed task's classifier: Dense(50, relu) -> BatchNormalization -> Dense(3, softmax), in tf.keras."""
from common.tf_compat import tf


def build_model(input_dim=2, hidden_units=50, num_classes=3, batch_norm=True):
    """The uncompiled Sequential model of the seed script (batch_norm=False drops the BN layer)."""
    layers = [tf.keras.layers.Dense(hidden_units, activation="relu", input_shape=(input_dim,))]
    if batch_norm:
        layers.append(tf.keras.layers.BatchNormalization())
    layers.append(tf.keras.layers.Dense(num_classes, activation="softmax"))
    return tf.keras.Sequential(layers)
