"""``lecture``: the lecture's network, conv-pool-conv-pool-dense-softmax."""

from __future__ import annotations

from edgecnn.models.registry import register_model


@register_model(
    "lecture",
    tasks=("classify",),
    summary="Conv32-Pool-Conv64-Pool-Dense1024-softmax, the lecture's CNN (large dense layer)",
    min_size=(10, 10),  # unpadded 3x3 conv, 2x2 pool, twice
)
def lecture(input_shape: tuple[int, int, int], num_outputs: int, **_):
    """Conv2D 32 3x3 ReLU -> MaxPool 2 -> Conv2D 64 3x3 ReLU -> MaxPool 2 -> Flatten -> Dense 1024 ReLU ->
    Dense N softmax. Input: float32 (h, w, c), normalised by the contract. Output: N class probabilities."""
    import keras  # lazy: keras
    from keras import layers  # lazy: keras

    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(32, 3, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(1024, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.4, name="dropout")(x)
    outputs = layers.Dense(num_outputs, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="lecture")
