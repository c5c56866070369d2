"""Two gloo processes give the same losses and the same updated weights as one process on the same
global batch, for every method and stage (MoCo's shuffle-BN against its single-process emulation)."""

import ddp_equivalence as eq
import pytest
import torch
import torch.multiprocessing as mp

from dira.runtime.distributed import Context, GlobalBatchNorm


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    out = folder / "results.pt"
    mp.start_processes(eq.worker, args=(2, str(folder / "init"), str(out)), nprocs=2, start_method="spawn")
    return torch.load(out, weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "stage"), eq.CASES)
def test_two_processes_match_one(two_process_results, method, stage):
    torch.set_num_threads(1)
    single = eq.step(method, stage, world=2)
    multi = two_process_results[f"{method}/{stage}"]
    assert single.keys() == multi.keys()
    for key in single:
        if method == "mocov2" and "running_" in key:
            continue  # per-group batch-norm statistics: each process keeps its own group's, as in MoCo
        torch.testing.assert_close(multi[key], single[key], atol=2e-5, rtol=2e-4, msg=key)


def test_global_batch_norm_is_plain_batch_norm_in_one_process():
    bn, global_bn = torch.nn.BatchNorm2d(3), GlobalBatchNorm(3)
    x = torch.randn(4, 3, 5, 5)
    torch.testing.assert_close(global_bn(x), bn(x))
    torch.testing.assert_close(global_bn.running_var, bn.running_var)


def test_single_process_context():
    ctx = Context()
    assert ctx.is_main and not ctx.distributed
