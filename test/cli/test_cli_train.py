"""`dense-descriptors train` on a rosbag2: recipe + --set overrides, the run folder, and its errors."""

import csv

import yaml

from dense_descriptors_ros.cli.main import main
from dense_descriptors_ros.io.bag_writer import write_image_bag
from dense_descriptors_ros.model.checkpoint import load_checkpoint, read_model_meta
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

TINY = {
    "model": {"backbone": "resnet18", "pretrained": False, "descriptor_dim": 8},
    "optimizer": {"lr": 0.003},
    "batch_size": 1,
    "image_height": 96,
    "image_width": 128,
    "val_points": 200,
    "masks": "motion",
    "epochs": 1,
    "steps_per_epoch": 2,
    "val_pairs": 1,
}


def test_train_command_on_a_rosbag(tmp_path, capsys):
    video = textured_object_video(num_frames=12, height=96, width=128, seed=1)
    bag = write_image_bag(tmp_path / "bag", [(1.0 + 0.1 * k, f) for k, f in enumerate(video.frames)], storage="mcap")
    # SAND bands (G and L, on two channel groups) and UCN hard negatives, end to end.
    sampler = {"num_matches": 200, "non_matches_per_match": 10, "negatives": "bands"}
    sampler |= {"band_min_px": [0.0, 0.0], "band_max_px": [float("inf"), 25.0]}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({**TINY, "sampler": sampler}))
    command = ["train", "--config", str(tmp_path / "tiny.yaml"), "--data", str(bag), "--out", str(tmp_path / "run")]
    command += ["--device", "cpu", "--set", "sampler.hard_negatives=true", "--set", "model.descriptor_dim=8"]
    assert main(command) == 0
    net = load_checkpoint(tmp_path / "run" / "best")
    assert (net.config.backbone, net.config.channel_groups) == ("resnet18", (4, 4))
    with (tmp_path / "run" / "train_log.csv").open() as f:
        assert "non_match_loss_g1" in next(csv.DictReader(f))
    assert any((tmp_path / "run" / "flow_cache").glob("*.npz"))
    assert "best_error_percentile" in capsys.readouterr().out
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["sampler"]["hard_negatives"] is True

    def error(*argv: str) -> str:
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dense-descriptors train: error: "), lines
        return lines[0]

    assert "--resume" in error(*command)  # the run folder is taken and --resume was not given
    other = [*command[:5], "--out", str(tmp_path / "other")]
    assert "hard_negative" in error(*other, "--set", "sampler.hard_negative=true")
    assert "KEY=VALUE" in error(*other, "--set", "epochs")
    assert error(*other, "--epochs", "0").endswith("--epochs: 0 is outside the allowed range [1, 10000]")
    assert "config file not found" in error("train", "--config", str(tmp_path / "none.yaml"), "--data", str(bag))


def test_train_on_a_folder_of_bags_and_a_list_skips_a_corrupt_bag(tmp_path, capsys, caplog):
    recordings = tmp_path / "recordings"
    for seed in (1, 2):
        video = textured_object_video(num_frames=10, height=96, width=128, seed=seed)
        write_image_bag(recordings / f"rec_{seed}", [(1.0 + 0.1 * k, f) for k, f in enumerate(video.frames)])
    corrupt = recordings / "rec_3"
    corrupt.mkdir()
    (corrupt / "metadata.yaml").write_text("rosbag2_bagfile_information: {cut")
    (corrupt / "rec_3_0.mcap").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({**TINY, "masks": "none"}))
    listing = tmp_path / "bags.txt"
    listing.write_text("recordings/rec_2\n")
    command = ["train", "--config", str(tmp_path / "tiny.yaml"), "--data", str(recordings), str(listing)]
    with caplog.at_level("WARNING"):
        assert main([*command, "--out", str(tmp_path / "run"), "--device", "cpu"]) == 0
    assert [r.getMessage().split(":")[0] for r in caplog.records if "skipped the bag" in r.getMessage()] == [
        f"skipped the bag {corrupt}"
    ]
    data = read_model_meta(tmp_path / "run" / "best")["provenance"]["data"]
    assert data == [str(recordings / "rec_1"), str(recordings / "rec_2"), str(recordings / "rec_2")]
    # Frames were streamed once per bag into the run's frame store (the bag listed twice is stored once).
    assert len(list((tmp_path / "run" / "frame_cache").glob("rec_*.json"))) == 2
