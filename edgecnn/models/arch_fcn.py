"""``fcn``: the lecture's fully convolutional network for semantic segmentation.

Convolutions that downsample (three stride-2 3x3 convolutions: 1/2, 1/4, 1/8 of the input), one more 3x3
convolution at 1/8, then ``Conv2DTranspose`` (stride 2) back up to the full resolution, and a 1x1 convolution
to a softmax over the classes at every pixel: input ``h x w x 3``, output ``h x w x K``. As in FCN-8s (Long et al.
2015), the upsampled maps are summed with 1x1 projections of the encoder maps of the same resolution, so the
class map keeps the edges that the 1/8 map has lost.

Quantizes to int8 on the CPU (TRANSPOSE_CONV is an int8 builtin); the Edge TPU compiler does not map strided
``Conv2DTranspose``, so on a Coral the decoder runs on the CPU. The ``seg`` architecture is the Edge TPU variant.
"""

from __future__ import annotations

from edgecnn.models.registry import register_model


@register_model(
    "fcn",
    tasks=("segment",),
    summary="the lecture's FCN: 3 stride-2 convs, Conv2DTranspose x3 to full size, per-pixel softmax",
    default_size=(64, 64),
)
def fcn(input_shape: tuple[int, int, int], num_outputs: int, width: int = 24, **_):
    """Encoder Conv 3x3/2 (w, 2w, 4w) + Conv 3x3 (4w) -> decoder Conv2DTranspose 3x3/2 (2w, w, w) with skip
    sums -> Conv 1x1 (K) softmax.

    Input: float32 (h, w, c) normalised by the contract, h and w multiples of 8. Output: float32 (h, w, K) class
    probabilities per pixel (``num_outputs`` = K, background included).
    """
    import keras  # lazy: keras
    from keras import layers  # lazy: keras

    h, w_, _ = input_shape
    if h % 8 or w_ % 8:
        raise ValueError(f"fcn needs an input size divisible by 8, got {w_}x{h}")

    def conv(x, filters, stride, name):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=name)(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    def up(x, filters, name):
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", use_bias=False, name=name)(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    inputs = keras.Input(shape=input_shape, name="image")
    e1 = conv(inputs, width, 2, "down1")  # 1/2
    e2 = conv(e1, 2 * width, 2, "down2")  # 1/4
    e3 = conv(e2, 4 * width, 2, "down3")  # 1/8
    x = conv(e3, 4 * width, 1, "mid")
    x = up(x, 2 * width, "up1")  # 1/4
    x = layers.Add(name="skip1")([x, layers.Conv2D(2 * width, 1, name="skip1_proj")(e2)])
    x = up(x, width, "up2")  # 1/2
    x = layers.Add(name="skip2")([x, layers.Conv2D(width, 1, name="skip2_proj")(e1)])
    x = up(x, width, "up3")  # 1/1
    outputs = layers.Conv2D(num_outputs, 1, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="fcn")
