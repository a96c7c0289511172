"""Writing model folders (`polyhead.saving`): a folder is replaced atomically, and never one polyhead did not write."""

from pathlib import Path

import pytest
from helpers import save_tiny_folder

from polyhead.saving import UnsafeFolderError, atomic_folder


def weights_bytes(folder):
    return (Path(folder) / "model.safetensors").read_bytes()


def test_a_foreign_folder_is_never_replaced(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(UnsafeFolderError, match="not a model folder written by polyhead"):
        save_tiny_folder(keep, overwrite=True)
    assert [p.name for p in keep.iterdir()] == ["notes.txt"] and (keep / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]  # no temporary folder left behind


def test_odd_targets_are_refused(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "a_file").write_text("x")
    (work / "link").symlink_to(tmp_path)
    for target in (".", "..", "", str(work), str(tmp_path), "sub/..", "link"):
        with pytest.raises(UnsafeFolderError, match="Refusing to write a model folder"):
            save_tiny_folder(target, overwrite=True)
    with pytest.raises(UnsafeFolderError, match="it is a file"):
        save_tiny_folder("a_file", overwrite=True)
    assert sorted(p.name for p in work.iterdir()) == ["a_file", "link"]


def test_a_trainer_checkpoint_is_not_replaced(tmp_path):
    run_dir = tmp_path / "run"
    save_tiny_folder(run_dir)
    (run_dir / "checkpoint-2").mkdir()
    (run_dir / "checkpoint-2" / "trainer_state.json").write_text("{}")
    with pytest.raises(UnsafeFolderError, match="Trainer checkpoint"):
        save_tiny_folder(run_dir, overwrite=True)
    assert (run_dir / "checkpoint-2" / "trainer_state.json").is_file()


def test_a_polyhead_folder_is_replaced_only_with_overwrite(tmp_path):
    folder = save_tiny_folder(tmp_path / "model")
    first = weights_bytes(folder)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_tiny_folder(folder, seed=1)
    assert weights_bytes(folder) == first
    save_tiny_folder(folder, seed=1, overwrite=True)
    assert weights_bytes(folder) != first
    (tmp_path / "empty").mkdir()
    save_tiny_folder(tmp_path / "empty")  # an empty folder is no loss
    (tmp_path / ".model.old").mkdir()  # a name the old code deleted blindly as its backup
    (tmp_path / ".model.old" / "precious.txt").write_text("x")
    save_tiny_folder(folder, seed=2, overwrite=True)
    assert (tmp_path / ".model.old" / "precious.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.old", "empty", "model"]


def test_a_failure_while_writing_leaves_the_old_folder(tmp_path):
    folder = save_tiny_folder(tmp_path / "model")
    first = weights_bytes(folder)

    def fail(tmp):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_tiny_folder(folder, seed=1, overwrite=True, extra=fail)
    assert weights_bytes(folder) == first and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_folder_that_changes_while_writing_is_not_replaced(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(UnsafeFolderError, match="not a model folder written by polyhead"):
        with atomic_folder(target, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
            target.mkdir()
            (target / "someone_elses.txt").write_text("theirs")
    assert [p.name for p in target.iterdir()] == ["someone_elses.txt"]
