"""The fast input path (table lookup, reused buffers, written in place) against the reference path, byte for byte.

The reference is :func:`edgecnn.preprocess.normalise` followed by :func:`edgecnn.runtime.adapters.quantize` with
the tensor's own scale and zero point; the fast path is :func:`~edgecnn.runtime.adapters.input_table` +
:func:`~edgecnn.runtime.adapters.apply_table`. Every pixel value 0..255 in every channel, for every supported
contract: named and arbitrary per-channel normalisations, RGB/BGR, grey, float32/float16/int8/uint8/int16 inputs
with several quantization parameters. Then the same through a real interpreter (:class:`Predictor`), and the
resize methods.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecnn.contract import INPUT_RANGES, RESIZE_METHODS, Contract
from edgecnn.errors import ModelError
from edgecnn.preprocess import (
    IMAGE_EXTENSIONS,
    Scratch,
    decode_image,
    normalise,
    resize,
    to_model_pixels,
)
from edgecnn.runtime.adapters import TensorSpec, apply_table, input_table, quantize

NORMALISATIONS = {
    **{name: (m, s) for name, (m, s) in INPUT_RANGES.items()},
    "imagenet": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),  # arbitrary per-channel mean/std
    "odd": ((0.5, 200.25, 17.0), (3.3, 0.7, 1000.0)),
}
# (dtype, scale, zero point): float inputs, the usual int8 (1/255, -128), a -1..1 int8, uint8 Coral-style,
# a coarse scale that saturates, int16 (16x8 models), and an integer input without a scale.
SPECS = [("float32", 0.0, 0), ("float16", 0.0, 0), ("int8", 1 / 255, -128), ("int8", 1 / 128, 0),
         ("uint8", 1 / 128, 128), ("uint8", 1 / 255, 0), ("int8", 0.0123, 3), ("int16", 1 / 32768, 0),
         ("int8", 0.0, 0)]


def _contract(channels: int, order: str, norm: str) -> Contract:
    mean, std = NORMALISATIONS[norm]
    mean = (mean,) * channels if np.isscalar(mean) else tuple(mean)[:channels]
    std = (std,) * channels if np.isscalar(std) else tuple(std)[:channels]
    return Contract(task="steer", input_height=16, input_width=20, channels=channels, color_order=order,
                    mean=mean, std=std, head="regression")


def _all_values(channels: int) -> np.ndarray:
    """``uint8 256 x 256 x c``: every value in every channel, and every pair of values across channels 0/1."""
    a, b = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    return np.stack([a, b, (a.astype(np.int32) + 7 * b).astype(np.uint8)][:channels], axis=-1)


@pytest.mark.parametrize("channels,order", [(3, "RGB"), (3, "BGR"), (1, "RGB")])
@pytest.mark.parametrize("norm", list(NORMALISATIONS))
@pytest.mark.parametrize("dtype,scale,zero", SPECS)
def test_table_equals_reference_for_every_pixel_value(channels, order, norm, dtype, scale, zero):
    contract = _contract(channels, order, norm)
    spec = TensorSpec("image", 0, (1, 256, 256, channels), dtype, scale, zero)
    pixels = _all_values(channels)
    reference = quantize(normalise(pixels, contract), spec)
    table = input_table(contract, spec)
    assert table.shape == (256, channels) and table.dtype == np.dtype(dtype)
    fast = apply_table(pixels, table)
    assert fast.dtype == reference.dtype and fast.shape == reference.shape
    assert fast.tobytes() == reference.tobytes()
    out = np.empty_like(reference)  # written in place, as into the interpreter's input tensor
    assert apply_table(pixels, table, out=out) is out and out.tobytes() == reference.tobytes()


def test_apply_table_into_a_misfit_buffer_still_fills_it():
    """cv2.LUT allocates a fresh array when ``dst`` does not fit; the result must still land in ``out``."""
    contract = _contract(3, "RGB", "0,1")
    spec = TensorSpec("image", 0, (1, 4, 4, 3), "int8", 1 / 255, -128)
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    out = np.zeros((4, 4, 3, 2), np.int8)[..., 0]  # non-contiguous view
    apply_table(pixels, input_table(contract, spec), out=out)
    assert out.tobytes() == quantize(normalise(pixels, contract), spec).tobytes()
    with pytest.raises(ValueError):
        apply_table(pixels.astype(np.float32), input_table(contract, spec))


FRAME_SIZES = [(120, 160), (480, 640), (16, 20), (66, 200), (37, 53)]


@pytest.mark.parametrize("method", RESIZE_METHODS)
def test_scratch_buffers_give_the_reference_pixels(method):
    """to_model_pixels with reused buffers == without, frame after frame, at several frame sizes."""
    rng = np.random.default_rng(0)
    for channels, order in [(3, "RGB"), (3, "BGR"), (1, "BGR")]:
        contract = _contract(channels, order, "0,1").replace(resize=method)
        scratch = Scratch()
        for h, w in FRAME_SIZES * 2:
            frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            got = to_model_pixels(frame, contract, scratch).copy()
            assert got.tobytes() == to_model_pixels(frame, contract).tobytes(), (method, h, w, channels)
            assert got.shape == (16, 20, channels)


def test_area_pyramid_halves_exactly_then_shrinks_by_area():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    expected = cv2.resize(cv2.resize(cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA), (160, 120),
                                     interpolation=cv2.INTER_AREA), (64, 64), interpolation=cv2.INTER_AREA)
    assert np.array_equal(resize(frame, 64, 64, "area-pyramid"), expected)
    # a 2x2 INTER_AREA step is the exact block mean (rounded half up)
    s = frame.reshape(240, 2, 320, 2, 3).astype(np.int32).sum(axis=(1, 3))
    assert np.array_equal(cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA), (s + 2) // 4)
    # an exact power-of-two target ends on a halving; odd sizes drop their last row/column before halving
    assert np.array_equal(resize(frame, 120, 160, "area-pyramid"), expected_halves := cv2.resize(
        cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA), (160, 120), interpolation=cv2.INTER_AREA))
    assert expected_halves.shape == (120, 160, 3)
    odd = frame[:101, :203]  # 101x203 -> crop 100x202 -> 50x101 -> crop 50x100 -> 25x50 (the target)
    half = cv2.resize(odd[:100, :202], (101, 50), interpolation=cv2.INTER_AREA)
    assert np.array_equal(resize(odd, 25, 50, "area-pyramid"),
                          cv2.resize(half[:, :100], (50, 25), interpolation=cv2.INTER_AREA))
    assert np.array_equal(resize(odd, 20, 40, "area-pyramid"),
                          cv2.resize(cv2.resize(half[:, :100], (50, 25), interpolation=cv2.INTER_AREA), (40, 20),
                                     interpolation=cv2.INTER_AREA))
    # "area" is still plain INTER_AREA; enlarging is linear whatever the method
    assert np.array_equal(resize(frame, 64, 64, "area"), cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA))
    assert np.array_equal(resize(frame[:60, :80], 120, 160, "area-pyramid"),
                          cv2.resize(frame[:60, :80], (160, 120), interpolation=cv2.INTER_LINEAR))
    with pytest.raises(ValueError):
        resize(frame, 64, 64, "lanczos")


def test_supersample_is_bilinear_at_twice_the_size_then_exact_halving():
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    twice = cv2.resize(frame, (128, 128), interpolation=cv2.INTER_LINEAR)
    got = resize(frame, 64, 64, "supersample")
    assert np.array_equal(got, cv2.resize(twice, (64, 64), interpolation=cv2.INTER_AREA))
    s = twice.reshape(64, 2, 64, 2, 3).astype(np.int32).sum(axis=(1, 3))
    assert np.array_equal(got, (s + 2) // 4)  # the second step is the exact 2x2 mean
    # at a power-of-two factor it is the exact pyramid (bilinear at half size is the 2x2 mean)
    assert np.array_equal(resize(frame, 120, 160, "supersample"), resize(frame, 120, 160, "area-pyramid"))
    assert np.array_equal(resize(frame, 240, 320, "supersample"), resize(frame, 240, 320, "area"))
    # with scratch buffers: the same bytes, written into dst
    scratch, dst = Scratch(), np.empty((64, 64, 3), np.uint8)
    assert resize(frame, 64, 64, "supersample", dst=dst, scratch=scratch) is dst and np.array_equal(dst, got)


def test_supersample_filters_what_linear_aliases():
    """Uniform noise shrunk 10 x 7.5: area averages 75 pixels per output (std ~ 74 / sqrt(75)), linear 4, the
    supersample 16 (but at 5x spacing its x taps land on whole pixels: 8); the output's spread shows how much of the fine detail aliases into the small image."""
    noise = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    spread = {m: float(resize(noise, 64, 64, m).std()) for m in ("area", "supersample", "linear")}
    assert spread["area"] < spread["supersample"] < 0.8 * spread["linear"], spread  # measured 8.4 < 29.9 < 41.2


def test_contract_resize_and_source_size_fields():
    c = _contract(3, "RGB", "0,1")
    assert c.source_size == () and Contract.from_dict(c.to_dict()) == c
    d = c.replace(source_size=(160, 120)).to_dict()
    assert d["source_size"] == [160, 120] and Contract.from_dict(d).source_size == (160, 120)
    old = {k: v for k, v in c.to_dict().items() if k != "source_size"}  # written before the field existed
    old["from_the_future"] = 1
    assert Contract.from_dict(old).source_size == ()
    with pytest.raises(ModelError, match="resize"):
        c.replace(resize="lanczos")
    with pytest.raises(ModelError, match="source_size"):
        c.replace(source_size=(160,))


def test_image_extensions_are_what_opencv_decodes(tmp_path):
    """Every listed extension decodes with this OpenCV (GIF through OpenCV >= 4.11)."""
    img = np.random.default_rng(2).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    assert {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"} <= IMAGE_EXTENSIONS
    for ext in sorted(IMAGE_EXTENSIONS):
        ok, buf = cv2.imencode(ext, img if ext not in (".pgm", ".pbm") else img[:, :, 0])
        if not ok:
            continue  # an encoder this build lacks; decoding is what matters
        assert decode_image(buf.tobytes(), f"x{ext}").shape == (12, 16, 3), ext


@pytest.fixture(scope="module")
def real_frames() -> list[np.ndarray]:
    """The shared tub's first frames (160x120 JPEG) and the same enlarged to 640x480, or synthetic ones."""
    from conftest import REPO

    archive = REPO.parent / "shared" / "data" / "donkeycar_tub" / "donkeycar_tub.tar.gz"
    frames = []
    if archive.is_file():
        import tarfile

        with tarfile.open(archive) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".jpg") and not m.name.split("/")[-1].startswith("._"):
                    frames.append(decode_image(tar.extractfile(m).read(), m.name))
                if len(frames) == 12:
                    break
    if not frames:
        rng = np.random.default_rng(3)
        frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(12)]
    return frames + [cv2.resize(f, (640, 480), interpolation=cv2.INTER_LINEAR) for f in frames[:4]]


SHIPPED = ["firmware_models/shapes_compact/model_int8.tflite", "firmware_models/roads_pilotnet/model_int8.tflite"]
CORAL = "../shared/data/coral/mobilenet_v1_0.25_128_quant.tflite"


@pytest.mark.parametrize("model", SHIPPED + [CORAL])
def test_predictor_fast_path_on_real_frames(model, real_frames):
    """Through the interpreter: the tensor predict() writes in place is the reference input, byte for byte, and
    the outputs equal a reference invoke."""
    from conftest import REPO

    from edgecnn.runtime.predictor import Predictor

    path = REPO / model
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    pred = Predictor(str(path), threads=1)
    for frame in real_frames:
        y = pred.predict(frame)
        written = pred.interpreter.get_tensor(pred.input.index)[0]
        reference = pred.reference_input(frame)
        assert written.dtype == reference.dtype and written.tobytes() == reference.tobytes()
        assert pred.encode(frame).tobytes() == reference.tobytes()
        assert np.array_equal(y, pred.invoke(pred.prepare(frame)))
        t = pred.last_timings
        assert t is not None and min(t.preprocess_ms, t.invoke_ms, t.postprocess_ms) >= 0
