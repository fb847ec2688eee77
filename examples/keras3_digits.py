"""A model written with today's default Keras (Keras 3, `import keras`), straight into formicary.

Trains a small residual + depthwise CNN and an MLP on scikit-learn digits with Keras 3, saves them as .keras files
(plus the CNN as an exported SavedModel) and the data splits formicary reads, then prints the commands to run:

    python examples/keras3_digits.py /tmp/k3
    formicary compile /tmp/k3/cnn.keras -o /tmp/k3/cnn_int8 --calib /tmp/k3/data/calib.npz --val /tmp/k3/data/val.npz
    formicary compile /tmp/k3/cnn.keras -o /tmp/k3/cnn_p50 --train /tmp/k3/data/train.npz \\
        --calib /tmp/k3/data/calib.npz --val /tmp/k3/data/val.npz --prune 0.5 --epochs 2
    formicary verify /tmp/k3/cnn_p50/model.tflite --target qemu-m4 --data /tmp/k3/data/val.npz --inputs 16

Quantization runs on the Keras 3 model itself; --prune/--cluster/--qat rebuild it in tf_keras first (outputs
checked), see docs/models.md, "Keras 3".
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_cnn(keras):
    """A residual block around a depthwise convolution, then a strided convolution and a softmax head."""
    L = keras.layers
    inp = keras.Input((8, 8, 1), name="image")
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="stem")(inp)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU(name="dw_relu")(y)
    x = L.Add(name="residual")([x, y])
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="down")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dropout(0.1, name="drop")(x)
    return keras.Model(inp, L.Dense(10, activation="softmax", name="head")(x), name="k3_cnn")


def build_mlp(keras):
    L = keras.layers
    return keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(32, activation="relu"),
                             L.Dense(32, activation="relu"), L.Dense(10)], name="k3_mlp")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import formicary  # noqa: F401 - sets TF_USE_LEGACY_KERAS before TensorFlow loads (tf.keras = tf_keras)
    from formicary.model.zoo import digits_splits

    import keras  # Keras 3 itself: TF_USE_LEGACY_KERAS only redirects tf.keras

    splits = digits_splits(args.seed)
    paths = splits.save(args.out / "data")
    for name, build, loss in (("cnn", build_cnn, "sparse_categorical_crossentropy"),
                              ("mlp", build_mlp, keras.losses.SparseCategoricalCrossentropy(from_logits=True))):
        keras.utils.set_random_seed(args.seed)
        model = build(keras)
        model.compile(optimizer=keras.optimizers.Adam(5e-3), loss=loss, metrics=["accuracy"], jit_compile=False)
        model.fit(splits.train.x, splits.train.y, epochs=args.epochs, batch_size=32, verbose=0)
        acc = model.evaluate(splits.val.x, splits.val.y, verbose=0)[1]
        model.save(args.out / f"{name}.keras")
        print(f"{name}: float accuracy {acc:.4f} on {len(splits.val)} validation digits -> "
              f"{args.out / (name + '.keras')}")
        if name == "cnn":
            model.export(str(args.out / "cnn_savedmodel"), verbose=False)
    print(f"data: {', '.join(str(p) for p in paths.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
