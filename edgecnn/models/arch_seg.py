"""``seg``: a compact U-Net-like segmentation network whose every op maps to the Edge TPU.

The encoder is the ``compact`` classifier's kind (a 3x3/2 stem, depthwise-separable blocks down to 1/8); the
decoder upsamples with ``UpSampling2D`` (bilinear resize: RESIZE_BILINEAR, which the Edge TPU compiler maps)
followed by a 3x3 ``Conv2D``, concatenated with the encoder map of the same resolution (U-Net skips). No
``Conv2DTranspose``: the Edge TPU compiler does not map strided transposed convolutions (see ``fcn``).
"""

from __future__ import annotations

from edgecnn.models.registry import register_model


@register_model(
    "seg",
    tasks=("segment",),
    summary="compact U-Net: separable encoder to 1/8, bilinear UpSampling2D + Conv2D decoder (Edge TPU ops)",
    default_size=(64, 64),
)
def seg(input_shape: tuple[int, int, int], num_outputs: int, width: int = 16, **_):
    """Stem Conv 3x3/2 (w) -> separable blocks (2w at 1/4, 4w at 1/8) -> three times UpSampling2D x2 +
    concat(skip) + Conv 3x3 -> Conv 1x1 (K) softmax.

    Input: float32 (h, w, c) normalised by the contract, h and w multiples of 8. Output: float32 (h, w, K) class
    probabilities per pixel (``num_outputs`` = K, background included).
    """
    import keras  # lazy: keras
    from keras import layers  # lazy: keras

    h, w_, _ = input_shape
    if h % 8 or w_ % 8:
        raise ValueError(f"seg needs an input size divisible by 8, got {w_}x{h}")

    def conv(x, filters, stride, name, k=3):
        x = layers.Conv2D(filters, k, strides=stride, padding="same", use_bias=False, name=name)(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return layers.ReLU(6.0, name=f"{name}_relu")(x)

    def ds(x, filters, stride, name):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
        return conv(x, filters, 1, f"{name}_pw", k=1)

    def up(x, skip, filters, name):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)
        x = layers.Concatenate(name=f"{name}_cat")([x, skip])
        return conv(x, filters, 1, name)

    inputs = keras.Input(shape=input_shape, name="image")
    e1 = conv(inputs, width, 2, "stem")  # 1/2
    e2 = ds(ds(e1, 2 * width, 2, "b1"), 2 * width, 1, "b2")  # 1/4
    e3 = ds(ds(e2, 4 * width, 2, "b3"), 4 * width, 1, "b4")  # 1/8
    x = up(e3, e2, 2 * width, "up1")  # 1/4
    x = up(x, e1, width, "up2")  # 1/2
    x = up(x, inputs, width, "up3")  # 1/1, with the image itself for sharp edges
    outputs = layers.Conv2D(num_outputs, 1, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="seg")
