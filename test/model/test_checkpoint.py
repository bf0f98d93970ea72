"""The checkpoint folder format: round trip, and errors that name the file and the mismatch."""

import pytest
import torch
import yaml

from dense_descriptors_ros.model.checkpoint import CheckpointError, load_checkpoint, model_id, save_checkpoint


def test_checkpoint_round_trip_in_eval_mode(tmp_path, make_net):
    net = make_net("resnet18", dim=4)
    folder = save_checkpoint(tmp_path / "ck", net.train(), {"epochs": 3}, image_size=(48, 64))
    meta = yaml.safe_load((folder / "model.yaml").read_text())
    assert meta["model"]["backbone"] == "resnet18" and meta["image_size"] == [48, 64]
    assert meta["provenance"] == {"epochs": 3}
    loaded = load_checkpoint(folder)
    assert not loaded.training
    x = torch.rand(1, 3, 40, 40)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), net.eval()(x))
    assert model_id(folder) == meta["weights_sha256"][:12]


def test_checkpoint_errors_name_file_and_mismatch(tmp_path, make_net):
    folder = save_checkpoint(tmp_path / "ck", make_net(dim=4))
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="descriptor_dim is 4, expected 16"):
        load_checkpoint(folder, expected_descriptor_dim=16)

    meta_path = folder / "model.yaml"
    meta = yaml.safe_load(meta_path.read_text())

    meta_path.write_text(yaml.safe_dump({**meta, "model": {**meta["model"], "descriptor_dim": 9}}))
    with pytest.raises(CheckpointError, match=r"weights.pt: body.head.weight has shape \(4, 64, 3, 3\).*D=9"):
        load_checkpoint(folder)

    meta_path.write_text(yaml.safe_dump({**meta, "model": {**meta["model"], "backbone": "resnet34"}}))
    with pytest.raises(CheckpointError, match="does not fit a resnet34"):
        load_checkpoint(folder)

    meta_path.write_text(yaml.safe_dump({**meta, "model": {**meta["model"], "colour": 1}}))
    with pytest.raises(CheckpointError, match=r"model\.yaml: invalid model section.*colour"):
        load_checkpoint(folder)

    meta_path.write_text(yaml.safe_dump({**meta, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format_version is 99"):
        load_checkpoint(folder)

    meta_path.write_text(yaml.safe_dump(meta))
    (folder / "weights.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="content hash"):
        load_checkpoint(folder)

    meta_path.write_text(": not yaml : [")
    with pytest.raises(CheckpointError, match="not valid YAML"):
        load_checkpoint(folder)
    meta_path.unlink()
    with pytest.raises(CheckpointError, match=r"model\.yaml: missing"):
        load_checkpoint(folder)
