"""``donkey``: a small Donkey-Car-style steering CNN (after donkeycar's ``KerasLinear``, narrower)."""

from __future__ import annotations

from edgecnn.models.registry import register_model
from edgecnn.models.steer_head import steering_head


@register_model(
    "donkey",
    tasks=("steer",),
    summary="small Donkey-Car-style CNN: 4 strided conv + 1x1 + 2 dense, ~140k params at 120x160, ~77k at 60x80",
    default_size=(120, 160),
)
def donkey(
    input_shape: tuple[int, int, int],
    num_outputs: int = 1,
    head: str = "regression",
    components: int = 0,
    throttle: bool = False,
    dropout: float = 0.1,
    **_,
):
    """Conv 16 5x5/2 -> Conv 32 5x5/2 -> Conv 48 3x3/2 -> Conv 64 3x3/2 -> Conv 16 1x1 -> Flatten -> Dense 64
    -> steering head (all ReLU).

    Like donkeycar's linear model, but narrower: the 1x1 convolution keeps the spatial layout (where the lane
    lines are) while shrinking the flattened vector, so the first dense layer stays small. Every op is
    conv/fully-connected/ReLU/tanh, all of which quantize to int8.

    Input: float32 (h, w, c), normalised by the contract; h, w >= 32. Output: as for ``pilotnet``:
    (B, 1|2) tanh-bounded [steering(, throttle)] or (B, 3K) gmm parameters.
    """
    import keras  # lazy: keras
    from keras import layers  # lazy: keras

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for i, (filters, k) in enumerate([(16, 5), (32, 5), (48, 3), (64, 3)], 1):
        x = layers.Conv2D(filters, k, strides=2, padding="same", activation="relu", name=f"conv{i}")(x)
    x = layers.Conv2D(16, 1, activation="relu", name="squeeze")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="fc1")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = steering_head(x, num_outputs, head=head, components=components, throttle=throttle)
    return keras.Model(inputs, outputs, name="donkey")
