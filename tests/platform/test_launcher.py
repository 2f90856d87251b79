from pathlib import Path

import pytest

from infra import launcher


def test_a_missing_firestore_emulator_fails_loudly_naming_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher, "FIRESTORE_JAR", tmp_path / "missing.jar")
    platform = launcher.Platform(tmp_path)
    with pytest.raises(launcher.LaunchError, match="google-cloud-cli-firestore-emulator"):
        platform.start()
    assert platform.procs == []
