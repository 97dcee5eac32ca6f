"""Multi-view testing of clip classifiers: views, their average, the CLI."""

import json

import numpy as np
import pytest

import models
from data import synthetic
from data import video as video_lib
from tests.cli_calls import call
from train import evaluate
from train.tasks.classification import predict_probabilities
from train.tasks.clips import ClipOptions, ClipTask, Views, parse_views

@pytest.fixture(scope="module")
def tiny_model():
    config = models.get_config("convlstm", preset="tiny", batch_size=4)
    return config, models.build("convlstm", preset="tiny", batch_size=4)


def test_parse_views():
    assert parse_views("10x3") == Views(10, 3) and parse_views("1x1").count == 1
    for text in ("3", "0x1", "2x2", "ax3", "4x3x1"):
        with pytest.raises(ValueError, match=f"--views {text}: expected CLIPSxCROPS"):
            parse_views(text)


def test_view_indices_cover_the_video_at_the_training_spacing():
    indices = video_lib.sample_view_indices(100, 5, 4)
    assert indices.shape == (4, 5)
    # Every clip spans the video; together they are 20 evenly spread frames.
    np.testing.assert_array_equal(np.sort(indices.reshape(-1)),
                                  np.linspace(0, 99, 20).astype(int))
    assert indices[:, 0].tolist() == [0, 5, 10, 15] and indices[-1, -1] == 99
    # A portrait frame is cropped top, centre, bottom.
    assert video_lib.crop_corners((90, 40), (40, 40), 3) == [(0, 0), (25, 0), (50, 0)]


def test_read_views_reads_the_clips_and_three_crops(tmp_path):
    from tests.video_files import decoded_index, write_video

    path = write_video(str(tmp_path / "v.avi"), num_frames=20, size=(24, 32), fourcc="MJPG")
    views = video_lib.read_views(path, 4, (12, 12), clips=2, crops=1)
    assert views.shape == (2, 4, 12, 12, 3)
    expected = video_lib.sample_view_indices(20, 4, 2)
    assert [[decoded_index(frame) for frame in clip] for clip in views] == expected.tolist()
    np.testing.assert_array_equal(video_lib.read_views(path, 4, (12, 12))[0],
                                  video_lib.read_clip(path, 4, (12, 12)))

    # A frame dark on the left and bright on the right: the three crops of a
    # frame scaled to cover 16x16 (16x21) are ordered left to right.
    frames = np.zeros((6, 24, 32, 3), np.uint8)
    frames[..., :] = np.linspace(0, 255, 32).astype(np.uint8)[None, None, :, None]
    gradient = video_lib.write_video(str(tmp_path / "g.avi"), frames, fourcc="MJPG")
    crops = video_lib.read_views(gradient, 2, 16, clips=1, crops=3)
    means = [float(crop.mean()) for crop in crops]
    assert crops.shape == (3, 2, 16, 16, 3) and means[0] < means[1] < means[2]
    # The scaled frame spans 0..255 over 21 columns; the crops lie 5 apart.
    assert means[2] - means[0] == pytest.approx(255 * 5 / 20, abs=6)


@pytest.mark.slow
def test_views_average_the_probabilities_of_each_view(tiny_model):
    config, model = tiny_model
    options = ClipOptions(synthetic_clips=6)
    bundle = ClipTask().load(options, config, seed=0, views=Views(3, 3))
    probabilities, labels = predict_probabilities(model, "convlstm", bundle.test, views=9)

    # By hand: the test clips (T + 4 = 8 frames), views starting at frames
    # floor(4 * (2k + 1) / 6) = 0, 2, 3, each three times (identical crops).
    shape = (config.input_shape[0] + 4, *config.input_shape[1:])
    splits, _ = synthetic.synthetic_splits(
        shape, {"train": 6, "val": 2, "test": 2}, num_classes=1, task="motion", seed=0
    )
    clips, expected_labels = splits["test"]
    family = models.get_family("convlstm")

    def positive_probability(frames):
        outputs = family.name_outputs(model, model({"frames": frames}, training=False))
        return np.asarray(outputs["probabilities"])[:, 0]

    by_view = [
        positive_probability(clips[:, start:start + 4].astype(np.float32) / 255.0)
        for start in (0, 2, 3) for _ in range(3)
    ]
    positive = np.mean(by_view, axis=0)
    np.testing.assert_allclose(probabilities[:, 1], positive, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probabilities[:, 0], 1 - positive, rtol=1e-5, atol=1e-6)
    assert labels.tolist() == expected_labels.tolist()

    report = ClipTask().evaluate([("convlstm", model)], bundle, "test")
    assert report["views"] == {"clips": 3, "crops": 3, "views": 9, "setting": "3x3"}
    assert report["summary"]["accuracy"] == np.mean((positive > 0.5) == labels)


@pytest.mark.slow
def test_one_view_equals_single_view_testing(tiny_model, tmp_path):
    config, model = tiny_model
    task = ClipTask()
    options = ClipOptions(synthetic_clips=6)
    single = predict_probabilities(model, "convlstm", task.load(options, config, 0).test)
    one = predict_probabilities(
        model, "convlstm", task.load(options, config, 0, views=Views()).test, views=1
    )
    np.testing.assert_allclose(one[0], single[0], rtol=1e-6)

    from tests.video_files import write_class_tree

    root = tmp_path / "videos"
    write_class_tree(str(root), {"a": ["1.avi", "2.avi", "3.avi"], "b": ["4.avi", "5.avi", "6.avi"]},
                     num_frames=9, size=(20, 30))
    config = models.get_config("convlstm", preset="tiny", batch_size=4, input_shape=(4, 12, 12, 3))
    video_model = models.build("convlstm", preset="tiny", input_shape=(4, 12, 12, 3))
    options = ClipOptions(data=str(root), val_fraction=0.34)
    single = predict_probabilities(video_model, "convlstm", task.load(options, config, 0).val)
    one = predict_probabilities(
        video_model, "convlstm", task.load(options, config, 0, views=Views()).val, views=1
    )
    np.testing.assert_allclose(one[0], single[0], rtol=1e-6)
    assert one[1].tolist() == single[1].tolist() and len(one[1]) == 2
    many = task.load(options, config, 0, views=Views(2, 3))
    inputs, _ = next(iter(many.val))
    assert inputs["frames"].shape == (1, 6, 4, 12, 12, 3)  # 6 views > batch 4: one video


def test_views_of_a_run_without_clips_is_refused(tmp_path, capsys):
    for name in ("keyframe_transformer", "bilstm_attention"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model": name, "config": {}}))
        code, _, err = call(evaluate.main, ["--runs", str(folder), "--views", "4x3"], capsys)
        assert code == 2 and err.count("\n") == 1, err
        assert f"--views 4x3: {name} runs read" in err and "not clips" in err
