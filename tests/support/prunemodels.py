"""Small models of the architectures people deploy, for the pruning tests: a depthwise-separable CNN (DS-CNN
style, BatchNorm, a depth multiplier of 2, a SeparableConv2D), a residual CNN (Add, Concatenate), a plain CNN
(Flatten → Dense) and an MLP. Trained for a few epochs on a learnable synthetic task, so pruning has real
weights to rank and accuracy means something."""
from __future__ import annotations

import numpy as np

from formicary.data import Dataset


def task(shape: tuple[int, ...], classes: int = 4, n: int = 384, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(train, val): the class is the period (2, 3, 4, 5 …) of stripes along the first axis, in noise; learnable by
    every model here (position-invariant, so global pooling keeps it)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.4, (n, *shape)).astype(np.float32)
    y = rng.integers(0, classes, n)
    pos = np.arange(shape[0])
    for i, c in enumerate(y):
        stripe = np.cos(2 * np.pi * (pos + rng.integers(0, 8)) / (c + 2)).astype(np.float32)
        x[i] += stripe.reshape((-1,) + (1,) * (len(shape) - 1))
    cut = n * 3 // 4
    return Dataset(x[:cut], y[:cut], "synthetic (train)"), Dataset(x[cut:], y[cut:], "synthetic (val)")


def dscnn(classes: int = 4):
    import tf_keras as keras

    L = keras.layers
    i = keras.Input((16, 8, 1), name="x")
    x = L.Conv2D(16, (5, 3), strides=2, padding="same", use_bias=False, name="conv0")(i)
    x = L.BatchNormalization(name="bn0")(x)
    x = L.ReLU(name="relu0")(x)
    for k, dm in enumerate((1, 2)):
        x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=dm, use_bias=False, name=f"dw{k}")(x)
        x = L.BatchNormalization(name=f"dwbn{k}")(x)
        x = L.ReLU(name=f"dwrelu{k}")(x)
        x = L.Conv2D(16, 1, use_bias=False, name=f"pw{k}")(x)
        x = L.BatchNormalization(name=f"pwbn{k}")(x)
        x = L.ReLU(name=f"pwrelu{k}")(x)
    x = L.SeparableConv2D(12, 3, padding="same", activation="relu", name="sep")(x)
    x = L.Dropout(0.1, name="drop")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    o = L.Dense(classes, activation="softmax", name="out")(x)
    return keras.Model(i, o, name="dscnn")


def resnet(classes: int = 4):
    import tf_keras as keras

    L = keras.layers
    i = keras.Input((8, 8, 2), name="x")
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="stem")(i)
    for k in range(2):
        y = L.Conv2D(8, 3, padding="same", activation="relu", name=f"res{k}a")(x)
        y = L.Conv2D(8, 3, padding="same", name=f"res{k}b")(y)
        x = L.Add(name=f"add{k}")([x, y])
        x = L.ReLU(name=f"relu{k}")(x)
    b = L.Conv2D(4, 1, activation="relu", name="branch")(x)
    x = L.Concatenate(name="cat")([x, b])
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Conv2D(12, 3, padding="same", activation="relu", name="head")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    o = L.Dense(classes, name="logits")(x)
    return keras.Model(i, o, name="resnet")


def plain_cnn(classes: int = 4):
    import tf_keras as keras

    L = keras.layers
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
        L.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2"),
        L.Flatten(name="flatten"),
        L.Dense(24, activation="relu", name="fc1"),
        L.Dense(classes, activation="softmax", name="probs"),
    ], name="plain_cnn")


def mlp(classes: int = 4):
    import tf_keras as keras

    L = keras.layers
    return keras.Sequential([
        keras.Input((32,)),
        L.Dense(48, activation="relu", name="h1"),
        L.Dense(32, activation="relu", name="h2"),
        L.Dense(classes, activation="softmax", name="probs"),
    ], name="mlp")


MODELS = {"dscnn": (dscnn, (16, 8, 1)), "resnet": (resnet, (8, 8, 2)), "plain_cnn": (plain_cnn, (8, 8, 1)),
          "mlp": (mlp, (32,))}


def trained(name: str, epochs: int = 4, seed: int = 0):
    """(model, train, val) for one of MODELS, trained deterministically."""
    import tf_keras as keras

    from formicary.model.keras_io import make_deterministic, quiet_native_logs

    build, shape = MODELS[name]
    make_deterministic(seed)
    model = build()
    train, val = task(shape, seed=seed)
    logits = model.layers[-1].get_config().get("activation") != "softmax"
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits), metrics=["accuracy"])
    with quiet_native_logs():
        model.fit(train.x, train.y, epochs=epochs, batch_size=32, verbose=0)
    return model, train, val
