"""``compact``: a depthwise-separable CNN under 100k parameters whose every op quantizes to int8 and maps to an
Edge TPU (Conv2D, DepthwiseConv2D, ReLU6 fused, average pooling, fully connected, softmax; no ops that fall back
to float)."""

from __future__ import annotations

from edgecnn.models.registry import register_model


def _ds_block(x, filters: int, stride: int, name: str):
    from keras import layers  # lazy: keras

    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_pw_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_pw_relu")(x)


@register_model(
    "compact",
    tasks=("classify",),
    summary="depthwise-separable CNN, <100k params, int8/Edge TPU friendly ops only",
)
def compact(input_shape: tuple[int, int, int], num_outputs: int, width: int = 32, **_):
    """Stem conv 3x3/2 -> 5 depthwise-separable blocks -> global average pool -> dense softmax.

    Input: float32 (h, w, c) normalised by the contract. Output: N class probabilities. BatchNorm folds into
    the convolutions at conversion, ReLU6 fuses into them, so the int8 graph is conv/depthwise/pool/fc/softmax.
    """
    import keras  # lazy: keras
    from keras import layers  # lazy: keras

    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    x = _ds_block(x, width * 2, 1, "b1")
    x = _ds_block(x, width * 2, 2, "b2")
    x = _ds_block(x, width * 4, 1, "b3")
    x = _ds_block(x, width * 4, 2, "b4")
    x = _ds_block(x, width * 4, 2, "b5")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    outputs = layers.Dense(num_outputs, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="compact")
