"""``navnet``: route-conditioned steering from a camera frame and a coarse map (two inputs, gmm head).

After Amini et al., "Variational End-to-End Navigation and Localization" (ICRA 2019): the camera goes through
PilotNet's convolutions, the ego-centred map raster (:mod:`edgecnn.navmap`) through a shallow convolutional
branch, the two feature vectors are concatenated and PilotNet's dense layers map them to a Gaussian mixture over
steering (:mod:`edgecnn.models.gmm`), trained on its negative log-likelihood.
"""

from __future__ import annotations

from edgecnn.models.registry import register_model
from edgecnn.models.steer_head import steering_head

# (filters, kernel, stride) of the map branch: 64 -> 32 -> 16 -> 8 pixels, 8 x 8 x 12 = 768 features at 64x64.
MAP_CONVS = ((8, 3, 2), (16, 3, 2), (12, 3, 2))
CAMERA_CONVS = ((24, 5, 2), (36, 5, 2), (48, 5, 2), (64, 3, 1), (64, 3, 1))  # PilotNet's


@register_model(
    "navnet",
    tasks=("navigate",),
    summary="two inputs: PilotNet camera convs + 3-conv map branch, fused, Dense 100-50-10, gmm head (K=3)",
    default_size=(66, 200),
    min_size=(61, 61),  # the camera branch: PilotNet's unpadded convolutions
)
def navnet(
    input_shape: tuple[int, int, int],
    num_outputs: int = 9,
    map_shape: tuple[int, int, int] = (64, 64, 2),
    head: str = "gmm",
    components: int = 0,
    throttle: bool = False,
    dropout: float = 0.0,
    **_,
):
    """Camera ``image`` (h x w x 3) -> Conv 24 5x5/2, 36 5x5/2, 48 5x5/2, 64 3x3, 64 3x3 -> Flatten;
    map ``map`` (S x S x C) -> Conv 8, 16, 12 (3x3, stride 2, same padding) -> Flatten; Concatenate ->
    Dense 100 -> 50 -> 10 -> gmm head (``dropout`` after the first two dense layers, training only; all ReLU, so every activation fuses into its int8 op; built-in layers
    only, so the model loads with ``safe_mode`` and converts to TFLite as is).

    Inputs (a list, in this order; named so the runtime finds them by name, never by position): ``image``
    float32 (h, w, 3) normalised by the contract (h, w >= 66, 66); ``map`` float32 (S, S, C), raster / 255
    (0 or 1), C = 2 routed (roads, route) or 1 unrouted (roads). Output (B, 3K) mixture parameters
    (``num_outputs`` = 3K; one that is not a multiple of 3, with ``components`` 0, builds the default K = 3).
    About 330k parameters at 66x200 with a 64x64x2 map.
    """
    import keras  # lazy: keras
    from keras import layers  # lazy: keras

    if head == "gmm" and not components and num_outputs % 3:
        components, num_outputs = 3, 9  # a generic listing (`edgecnn models` asks for 1 output): the default K
    image = keras.Input(shape=tuple(input_shape), name="image")
    grid = keras.Input(shape=tuple(map_shape), name="map")
    x = image
    for i, (filters, k, s) in enumerate(CAMERA_CONVS, 1):
        x = layers.Conv2D(filters, k, strides=s, activation="relu", name=f"conv{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    m = grid
    for i, (filters, k, s) in enumerate(MAP_CONVS, 1):
        m = layers.Conv2D(filters, k, strides=s, padding="same", activation="relu", name=f"map_conv{i}")(m)
    m = layers.Flatten(name="map_flatten")(m)
    x = layers.Concatenate(name="fuse")([x, m])
    for i, units in enumerate((100, 50, 10), 1):
        x = layers.Dense(units, activation="relu", name=f"fc{i}")(x)
        if dropout and i < 3:
            x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    outputs = steering_head(x, num_outputs, head=head, components=components, throttle=throttle)
    return keras.Model([image, grid], outputs, name="navnet")
