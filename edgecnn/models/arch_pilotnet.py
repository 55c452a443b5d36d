"""``pilotnet``: NVIDIA's end-to-end steering network (Bojarski et al. 2016, "End to End Learning for
Self-Driving Cars")."""

from __future__ import annotations

from edgecnn.models.registry import register_model
from edgecnn.models.steer_head import steering_head


@register_model(
    "pilotnet",
    tasks=("steer",),
    summary="NVIDIA PilotNet: 5 conv + 3 dense, ~250k params at 66x200, steering in [-1, 1] (or gmm head)",
    default_size=(66, 200),
    min_size=(61, 61),  # three unpadded 5x5/2 and two 3x3 convolutions
)
def pilotnet(
    input_shape: tuple[int, int, int],
    num_outputs: int = 1,
    head: str = "regression",
    components: int = 0,
    throttle: bool = False,
    dropout: float = 0.0,
    **_,
):
    """Conv 24 5x5/2 -> Conv 36 5x5/2 -> Conv 48 5x5/2 -> Conv 64 3x3 -> Conv 64 3x3 -> Flatten -> Dense 100 ->
    Dense 50 -> Dense 10 -> steering head (all ReLU).

    The paper's first layer is a fixed normalisation; here the contract's mean/std does it
    (:func:`edgecnn.preprocess.prepare`), so the network starts at the first convolution. At 66x200x3 it has
    about 252k parameters (the paper's figure); larger inputs grow the first dense layer. ReLU (not ELU) so every
    activation fuses into its int8 convolution.

    Input: float32 (h, w, c), normalised by the contract; h, w >= 66, 66 (five valid convolutions).
    Output: ``head="regression"``: (B, 1) steering or (B, 2) [steering, throttle], tanh-bounded to [-1, 1];
    ``head="gmm"``: (B, 3K) mixture parameters (see :mod:`edgecnn.models.gmm`).
    """
    import keras  # lazy: keras
    from keras import layers  # lazy: keras

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for i, (filters, k, s) in enumerate([(24, 5, 2), (36, 5, 2), (48, 5, 2), (64, 3, 1), (64, 3, 1)], 1):
        x = layers.Conv2D(filters, k, strides=s, activation="relu", name=f"conv{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate((100, 50, 10), 1):
        x = layers.Dense(units, activation="relu", name=f"fc{i}")(x)
        if dropout and i < 3:
            x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    outputs = steering_head(x, num_outputs, head=head, components=components, throttle=throttle)
    return keras.Model(inputs, outputs, name="pilotnet")
