"""A checkpoint that carries pickled code is refused, unexecuted, with our own short message.

torch's own error ends with the advice to retry with ``weights_only=False``, which would run the payload;
``load_torch`` must neither run it nor pass that advice on.
"""

from __future__ import annotations

import os
import re

import pytest
import torch

from dira.errors import InputError
from dira.io import load_torch, save_torch


class _Payload:
    """Unpickling this calls ``os.system`` (what a hostile checkpoint does)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Module:
    """A harmless class: a checkpoint saved as a whole object rather than a state dict."""

    def __init__(self) -> None:
        self.weight = torch.zeros(2)


def _assert_refused_without_torchs_advice(path, err: InputError) -> None:
    message = str(err)
    assert message.startswith(f"{path}: not a loadable weights-only checkpoint: refused"), message
    assert "Python objects" in message and "besides tensors" in message, message
    assert "weights_only" not in message and "will likely succeed" not in message, message
    assert len(message.splitlines()) == 1 and len(message) < len(str(path)) + 160, message


def test_checkpoint_with_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "encoder.pt"
    torch.save({"encoder.weight": torch.ones(3), "extra": _Payload(str(marker))}, path)
    with pytest.raises(InputError, match=re.escape(path.name)) as caught:
        load_torch(path)
    assert not marker.exists(), "the pickled os.system call ran"
    _assert_refused_without_torchs_advice(path, caught.value)
    assert "system" in str(caught.value)  # names what the pickle asked for


def test_checkpoint_of_a_whole_python_object_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(_Module(), path)
    with pytest.raises(InputError, match=re.escape(path.name)) as caught:
        load_torch(path)
    _assert_refused_without_torchs_advice(path, caught.value)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "short garbage", "empty"])
def test_damaged_checkpoint_is_refused_with_a_short_message(damage, tmp_path):
    path = tmp_path / "unet.pt"
    save_torch(path, {"w": torch.arange(100.0)})
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"hello world" * 10,
                     "short garbage": b"garbage", "empty": b""}[damage])
    with pytest.raises(InputError, match=re.escape(f"{path}: not a loadable weights-only checkpoint")) as caught:
        load_torch(path)
    assert "weights_only" not in str(caught.value) and len(str(caught.value).splitlines()) == 1


def test_plain_state_dict_still_loads(tmp_path):
    path = tmp_path / "ok.pt"
    save_torch(path, {"w": torch.arange(4.0), "step": 3})
    loaded = load_torch(path)
    assert torch.equal(loaded["w"], torch.arange(4.0)) and loaded["step"] == 3
