import numpy as np
import pytest
import torch
from toy import as_batch, train_on_fixed_batch

from dira.methods.dira import STAGES


@pytest.mark.parametrize("stage", ["di", "dir", "dira"])
def test_each_stage_trains_and_its_loss_goes_down_on_a_fixed_batch(build, fixed_batch, stage):
    model = build(discriminator=stage == "dira").train()
    with torch.no_grad():  # fill the queue with real keys first: random negatives are too easy to learn from
        for _ in range(4):
            model.generator_losses(STAGES[stage], as_batch(*fixed_batch))
    history = train_on_fixed_batch(model, stage, fixed_batch)
    expected_terms = {"di": {"dis"}, "dir": {"dis", "res"}, "dira": {"dis", "res", "adv"}}[stage]
    assert set(history[0]) == {"total", *expected_terms}
    totals = [step["total"] for step in history]
    assert np.mean(totals[-5:]) < 0.8 * np.mean(totals[:5])


def test_total_is_the_weighted_sum_of_the_terms(build, fixed_batch):
    model = build(discriminator=True).train()
    losses = model.generator_losses(STAGES["dira"], as_batch(*fixed_batch))
    w = model.weights
    expected = w.discrimination * losses.terms["dis"] + w.restoration * losses.terms["res"] \
        + w.adversarial * losses.terms["adv"]
    torch.testing.assert_close(losses.total, expected)
    assert losses.restored.min() >= 0 and losses.restored.max() <= 1


def test_discriminator_step_does_not_reach_the_generator(build, fixed_batch):
    model = build(discriminator=True).train()
    losses = model.generator_losses(STAGES["dira"], as_batch(*fixed_batch))
    model.discriminator_loss(fixed_batch[2], losses.restored).backward()
    assert all(p.grad is None for p in model.generator_parameters())
    assert any(p.grad is not None for p in model.discriminator.parameters())
