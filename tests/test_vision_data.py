"""Vision data: exact compositing, determinism, the registries, local loaders and their error messages."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chaosmining.data.backgrounds import fractal_background, photo_pool, uniform_background
from chaosmining.data.shapes import SHAPE_CLASSES, draw_shape
from chaosmining.data.vision import (
    BACKGROUNDS,
    DEBIAN_FASHION_MNIST,
    FOREGROUNDS,
    POSITIONS,
    VisionDataConfig,
    condition_code,
    data_warnings,
    make_vision_data,
    read_published_metadata,
    to_model_input,
)
from chaosmining.errors import ConfigError, DataError

SMALL = dict(canvas=64, foreground_size=16, train_size=20, val_size=8)
OFFLINE_BACKGROUNDS = [n for n, s in BACKGROUNDS.items() if not s.needs_root]


@pytest.mark.parametrize("position", POSITIONS.names())
@pytest.mark.parametrize("background", ["random", "structured"])
def test_foreground_sits_exactly_in_the_recorded_box(background, position):
    cfg = VisionDataConfig(background=background, position=position, **SMALL)
    data = make_vision_data(cfg, seed=3)
    fg = FOREGROUNDS.get("shapes10").open(cfg, "train", 3)
    draw_bg = BACKGROUNDS.get(background).open(cfg, "train")
    for i in range(len(data.train)):
        img = data.train.image(i)
        t, left, h, w = data.train.boxes[i]
        assert (h, w) == (16, 16) and 0 <= t <= 47 and 0 <= left <= 47
        np.testing.assert_array_equal(img[t : t + h, left : left + w], fg.image(i))
        bg = draw_bg(np.random.default_rng([3, 0, i, 2]), i)
        outside = ~data.train.masks([i])[0]
        np.testing.assert_array_equal(img[outside], bg[outside])


def test_paper_geometry_fixed_position_is_96_96_and_random_positions_cover_0_to_191():
    fixed = make_vision_data(VisionDataConfig(train_size=10, val_size=2), 0)
    assert {tuple(b) for b in fixed.train.boxes} == {(96, 96, 32, 32)}
    rnd = make_vision_data(VisionDataConfig(position="random", train_size=3000, val_size=2), 0)
    tops, lefts = rnd.train.boxes[:, 0], rnd.train.boxes[:, 1]
    assert tops.min() == 0 and tops.max() == 191 and lefts.min() == 0 and lefts.max() == 191


def test_images_are_deterministic_independent_of_split_size_and_materialisation():
    cfg = VisionDataConfig(background="structured", position="random", **SMALL)
    a = make_vision_data(cfg, 5).train.images(range(8))
    b = make_vision_data(cfg.replace(train_size=50), 5).train.images(range(8))
    np.testing.assert_array_equal(a, b)
    split = make_vision_data(cfg, 5).train
    assert split.materialise() is not None
    np.testing.assert_array_equal(split.images(range(8)), a)
    assert not np.array_equal(make_vision_data(cfg, 6).train.images(range(8)), a)
    assert split.materialise(max_bytes=10) is not None  # already built: returned as is
    assert make_vision_data(cfg, 5).train.materialise(max_bytes=10) is None


def test_the_same_foregrounds_appear_under_every_noise_condition():
    patches = []
    for bg in ("random", "structured"):
        for pos in POSITIONS.names():
            d = make_vision_data(VisionDataConfig(background=bg, position=pos, **SMALL), 1).val
            t, left, h, w = d.boxes[2]
            patches.append((d.labels[2], d.image(2)[t : t + h, left : left + w]))
    for label, patch in patches[1:]:
        assert label == patches[0][0]
        np.testing.assert_array_equal(patch, patches[0][1])


def test_condition_codes_and_labels():
    assert condition_code("random", "fixed") == "RBFP"
    assert condition_code("structured", "random") == "SBRP"
    data = make_vision_data(VisionDataConfig(**SMALL), 0)
    assert data.class_names == SHAPE_CLASSES and data.n_classes == 10
    assert np.bincount(data.train.labels, minlength=10).tolist() == [2] * 10
    x = to_model_input(data.val.images([0, 1]))
    assert x.shape == (2, 3, 64, 64) and x.min() >= -1.0 and x.max() <= 1.0


@pytest.mark.parametrize("name", OFFLINE_BACKGROUNDS)
def test_every_offline_background_draws_a_canvas(name):
    cfg = VisionDataConfig(background=name, **SMALL)
    draw = BACKGROUNDS.get(name).open(cfg, "train")
    a, b = draw(np.random.default_rng(0), 0), draw(np.random.default_rng(1), 1)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)


def test_background_generators():
    u = uniform_background(np.random.default_rng(0), 224, 224)
    assert abs(float(u.mean()) - 127.5) < 2 and u.min() == 0 and u.max() == 255
    f = fractal_background(np.random.default_rng(0), 224, 224).astype(float)
    # 1/f^2 noise is smooth: neighbouring pixels are far more alike than in uniform noise.
    assert np.abs(np.diff(f, axis=0)).mean() < 0.4 * np.abs(np.diff(u.astype(float), axis=0)).mean()
    pool = photo_pool(128)
    assert len(pool) == 14 and all(p.ndim == 3 and min(p.shape[:2]) <= 128 for p in pool)


def test_shapes10_draws_every_class():
    imgs = [draw_shape(c, 32, np.random.default_rng(c)) for c in range(len(SHAPE_CLASSES))]
    assert all(i.shape == (32, 32, 3) and i.dtype == np.uint8 for i in imgs)
    assert len(SHAPE_CLASSES) == 10


def test_digits_foreground_is_offline_and_warns_about_repeats():
    cfg = VisionDataConfig(foreground="digits", canvas=64, foreground_size=16, train_size=2000, val_size=4)
    data = make_vision_data(cfg, 0)
    assert data.class_names == tuple(str(i) for i in range(10))
    assert data.val.images([0]).shape == (1, 64, 64, 3)
    assert any("distinct images" in w for w in data.warnings)


def test_foreground_larger_than_the_canvas_is_refused_with_the_standard_message():
    with pytest.raises(ConfigError) as exc:
        VisionDataConfig(canvas=64, foreground_size=100)
    assert str(exc.value).startswith(
        "The 'foreground_size' parameter of VisionDataConfig must be an int in [4, 64]. Got 100 instead."
    )


def test_unknown_names_and_missing_data_root_are_config_errors():
    with pytest.raises(ConfigError, match="'background' parameter of VisionDataConfig must be one of"):
        VisionDataConfig(background="plasma")
    with pytest.raises(ConfigError, match="'data_root' parameter .* CIFAR-10 .* never downloaded"):
        VisionDataConfig(foreground="cifar10")


def test_too_few_training_images_warn_that_accuracy_will_be_near_chance():
    w = data_warnings(VisionDataConfig(train_size=3000))
    assert len(w) == 1 and "near chance" in w[0]
    assert data_warnings(VisionDataConfig(train_size=10_000)) == []


def test_cifar10_root_without_the_layout_names_what_is_expected_and_found(tmp_path):
    (tmp_path / "something.txt").write_text("x")
    cfg = VisionDataConfig(foreground="cifar10", data_root=str(tmp_path), **SMALL)
    with pytest.raises(DataError) as exc:
        make_vision_data(cfg, 0)
    assert "cifar-10-batches-py" in str(exc.value) and "Found: something.txt" in str(exc.value)


def _idx(path, array, code):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_debian_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        _idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 3)
        _idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 1)
    cfg = VisionDataConfig(foreground="fashion_mnist", data_root=str(tmp_path), **SMALL)
    data = make_vision_data(cfg, 0)
    assert data.class_names[0] == "T-shirt/top"
    assert data.train.images([0]).shape == (1, 64, 64, 3)
    assert sorted(set(data.train.labels.tolist())) == list(range(10))


@pytest.mark.skipif(
    not Path(DEBIAN_FASHION_MNIST).is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed (make run / make test install it as root)",
)
def test_fashion_mnist_from_debians_package_without_a_data_root():
    cfg = VisionDataConfig(foreground="fashion_mnist", **SMALL)
    data = make_vision_data(cfg, 0)
    assert len(data.class_names) == 10 and data.class_names[9] == "Ankle boot"
    images = data.train.images(range(len(data.train)))
    assert images.shape == (20, 64, 64, 3) and images.std() > 0  # real pixels pasted on the canvas
    assert data.val.images([0]).shape == (1, 64, 64, 3)


# --- the published layout ----------------------------------------------------------------------


def _published(root, setting="RBRP", split="train", n=4, name="metadata.csv", canvas=64, size=16):
    folder = root / setting / split
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["file_name,foreground_label,position_x,position_y"]
    for i in range(n):
        img = rng.integers(0, 256, (canvas, canvas, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder / f"{i:04d}.png")
        rows.append(f"{i:04d}.png,{i % 3},{5 + i},{30 - i}")
    (folder / name).write_text("\n".join(rows) + "\n")
    return folder


def test_published_layout_loads_rows_as_row_and_column(tmp_path):
    _published(tmp_path, split="train")
    val = _published(tmp_path, split="val", name="meta_data.csv", n=3)
    cfg = VisionDataConfig(foreground="published", position="random", data_root=str(tmp_path), **SMALL)
    data = make_vision_data(cfg, 0)
    assert len(data.train) == 4 and len(data.val) == 3
    by_file = {int(b[0]) - 5: tuple(b) for b in data.val.boxes}
    assert by_file[1] == (6, 29, 16, 16)  # position_x is the ROW, position_y the COLUMN
    j = int(np.flatnonzero(data.val.boxes[:, 0] == 6)[0])
    np.testing.assert_array_equal(data.val.image(j), np.asarray(Image.open(val / "0001.png")))
    assert data.class_names == (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    assert any("fewer than the 20 asked for" in w for w in data.warnings)
    assert len(read_published_metadata(val)) == 3


def test_published_root_without_the_layout_names_it_and_what_was_found(tmp_path):
    (tmp_path / "images").mkdir()
    cfg = VisionDataConfig(foreground="published", data_root=str(tmp_path), **SMALL)
    with pytest.raises(DataError) as exc:
        make_vision_data(cfg, 0)
    msg = str(exc.value)
    assert "<data_root>/<SETTING>/<split>/metadata.csv (or meta_data.csv)" in msg
    assert "RBFP, RBRP, SBFP, SBRP (here RBFP)" in msg and "Found in data_root: images/" in msg


def test_published_missing_column_missing_file_and_wrong_canvas(tmp_path):
    folder = _published(tmp_path, setting="SBFP")
    _published(tmp_path, setting="SBFP", split="val")
    cfg = VisionDataConfig(foreground="published", background="structured", data_root=str(tmp_path), **SMALL)
    (folder / "0002.png").unlink()
    data = make_vision_data(cfg, 0)
    with pytest.raises(DataError, match="0002.png is missing"):
        data.train.images(range(4))
    with pytest.raises(ConfigError, match="'canvas' parameter of VisionDataConfig must match the images"):
        make_vision_data(cfg.replace(canvas=128), 0)
    (folder / "metadata.csv").write_text("file_name,label\n0000.png,1\n")
    with pytest.raises(DataError, match="foreground_label, position_x, position_y are missing"):
        make_vision_data(cfg, 0)
    with pytest.raises(ConfigError, match="'background' parameter"):
        cfg.replace(background="fractal")


def test_fashion_mnist_without_a_root_uses_debians_package_or_says_how_to_get_it(monkeypatch, tmp_path):
    import chaosmining.data.vision as vision

    cfg = VisionDataConfig(foreground="fashion_mnist", **SMALL)
    monkeypatch.setattr(vision, "DEBIAN_FASHION_MNIST", str(tmp_path / "absent"))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        make_vision_data(cfg, 0)


def test_recomposed_epochs_keep_labels_and_boxes_exact():
    from chaosmining.data.vision import VisionDataConfig, make_vision_data

    cfg = VisionDataConfig(position="random", canvas=32, foreground_size=8, train_size=20, val_size=2)
    data = make_vision_data(cfg, 0)
    split = data.train
    assert split.for_epoch(2, 0) is split  # streamed images are not recomposed
    base = split.materialise()
    assert split.for_epoch(1, 0) is split
    epoch = split.for_epoch(2, 0)
    assert epoch is not split and (epoch.labels == split.labels).all()
    perm = epoch._perm
    assert sorted(perm) == list(range(20)) and (epoch.boxes == split.boxes[perm]).all()
    images = epoch.images(np.arange(20))
    for i in range(20):
        t, left, h, w = split.boxes[i]
        top, lft = epoch.boxes[i, :2]
        fg = base[i, t : t + h, left : left + w]
        assert (images[i, top : top + h, lft : lft + w] == fg).all()  # image i's foreground, at its new box
        outside = np.ones((32, 32), dtype=bool)
        outside[top : top + h, lft : lft + w] = False
        assert (images[i][outside] == base[perm[i]][outside]).all()  # on image perm[i]'s background
    assert not (split.for_epoch(3, 0).boxes == epoch.boxes).all()  # a new permutation every epoch
