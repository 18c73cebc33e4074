"""Model builders for the three architecture families.

Every model takes raw (N, 28, 28) pixel values in [0, 255] and rescales inside the graph,
so a saved ``.keras`` file is usable by plain Keras with no preprocessing code of ours.
"""

import functools

import keras
import tensorflow as tf
from keras import layers, regularizers

from . import config as settings
from .classes import NUM_CLASSES
from .config import TrainConfig


def build_model(config: TrainConfig) -> keras.Model:
    regularizer = regularizers.L1L2(config.l1, config.l2) if (config.l1 or config.l2) else None
    inputs = keras.Input(shape=(28, 28), name="image")
    x = layers.Rescaling(1.0 / 255)(inputs)
    if config.input_dropout:
        x = layers.Dropout(config.input_dropout, seed=config.seed)(x)
    if config.family == "dense":
        x = layers.Flatten()(x)
    else:
        x = layers.Reshape((28, 28, 1))(x)
        x = _conv_stack(x, config.family, regularizer)
    for units in config.hidden_units:
        x = layers.Dense(units, activation="relu", kernel_regularizer=regularizer)(x)
        if config.dropout:
            x = layers.Dropout(config.dropout, seed=config.seed)(x)
    if config.dropout and not config.hidden_units:
        x = layers.Dropout(config.dropout, seed=config.seed)(x)
    # float32 softmax even under mixed precision: probabilities must sum to 1 exactly enough.
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"{config.variant}_{config.family}")


def _conv_stack(x, family, regularizer):
    if family == "cnn":  # the KMNIST repository's simple Keras CNN
        x = layers.Conv2D(32, 3, activation="relu", kernel_regularizer=regularizer)(x)
        x = layers.Conv2D(64, 3, activation="relu", kernel_regularizer=regularizer)(x)
        x = layers.MaxPooling2D()(x)
        return layers.Flatten()(x)
    for block, (filters, convolutions) in enumerate(settings.BN_CNN_BLOCKS, start=1):  # bn_cnn: conv-BN-ReLU
        for _ in range(convolutions):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=regularizer)(x)
            # momentum 0.9, not 0.99: in a 20-epoch run the default's running statistics lag
            # so far behind that test accuracy sat at 10% after 3 epochs.
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.Activation("relu")(x)
        last = block == len(settings.BN_CNN_BLOCKS)
        x = layers.GlobalAveragePooling2D()(x) if last else layers.MaxPooling2D()(x)
    return x


def fuse_batch_norm(model: keras.Model) -> keras.Model:
    """Have ``model``'s BatchNormalization layers train with TensorFlow's fused kernel.

    Keras 3 normalizes with separate ops and upcasts bfloat16 to float32 around each: on
    the Intel AMX host `best` trained in 161 s that way and in 90 s fused (README, "Best
    model"; benchmarks/benchmark.py --recipe mild,mild-stock-bn). Only the training path
    of these layer instances changes: scoring, predicting and the saved file use the stock
    Keras layer, so a saved model is still plain Keras."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization) and layer.axis == -1 and not layer.renorm:
            layer.call = functools.partial(_fused_call, layer, layer.call)
    return model


def _fused_call(layer, stock_call, inputs, training=None, mask=None):
    if not training or not layer.trainable or mask is not None or len(inputs.shape) != 4:
        return stock_call(inputs, training=training, mask=mask)
    outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        inputs, tf.cast(layer.gamma, "float32"), tf.cast(layer.beta, "float32"),
        epsilon=layer.epsilon, is_training=True,
    )
    momentum = layer.momentum  # the moving statistics the stock layer would keep
    layer.moving_mean.assign(layer.moving_mean * momentum + mean * (1.0 - momentum))
    layer.moving_variance.assign(layer.moving_variance * momentum + variance * (1.0 - momentum))
    return tf.cast(outputs, layer.compute_dtype)
