"""The 'base' stage follows each method's own schedule; DiRA's stages after it are shared."""

import pytest

from dira.config import load_config
from dira.errors import InputError
from dira.train.pretrain import stage_plan


def _plan(method, variant, pretrain):
    return [(p.stage.name, p.epochs) for p in stage_plan(method, variant, pretrain)]


@pytest.mark.parametrize(("method", "epochs"), [("mocov2", 200), ("simsiam", 100), ("barlowtwins", 1000)])
def test_base_stage_takes_the_original_methods_schedule(method, epochs):
    pretrain = load_config([])["pretrain"]
    assert _plan(method, "base", pretrain) == [("di", epochs)]
    assert _plan(method, "dira", pretrain) == [("dir", 400), ("dira", 400)]
    assert _plan(method, "dir", pretrain) == [("dir", 800)]


def test_each_methods_schedule_is_its_own_key():
    pretrain = load_config(['{"pretrain": {"simsiam": {"epochs": 7}, "epochs": {"adversarial": 3}}}'])["pretrain"]
    assert _plan("simsiam", "base", pretrain) == [("di", 7)]
    assert _plan("mocov2", "base", pretrain) == [("di", 200)]
    assert _plan("barlowtwins", "dira", pretrain) == [("dir", 400), ("dira", 3)]
    with pytest.raises(InputError, match="unknown variant"):
        stage_plan("mocov2", "di", pretrain)
