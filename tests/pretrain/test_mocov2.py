import torch

from dira.methods.base import forward_in_groups
from dira.seeding import derive_seed


def test_training_step_enqueues_the_keys_and_moves_the_key_encoder(build, fixed_batch):
    model = build().train()
    moco = model.method
    view1, view2, _ = fixed_batch
    key_before = [p.clone() for p in moco.key_encoder.parameters()]
    online = [p.clone() for p in model.unet.encoder.parameters()]
    moco(model.unet.encoder, view1, view2)
    assert moco.queue_ptr.item() == 8
    # the enqueued keys are the normalised key embeddings of view 2
    with torch.no_grad():
        keys = torch.nn.functional.normalize(moco.key_head(moco.key_encoder(view2)[-1].mean((2, 3))), dim=1)
    torch.testing.assert_close(moco.queue[:, :8].T, keys, atol=1e-5, rtol=1e-4)
    # EMA: k <- m k + (1 - m) q, with m = 0.99
    for k0, q, k1 in zip(key_before, online, moco.key_encoder.parameters(), strict=True):
        torch.testing.assert_close(k1, 0.99 * k0 + 0.01 * q)


def test_queue_wraps_around_without_a_divisibility_constraint(build, fixed_batch):
    model = build().train()
    view1, view2, _ = fixed_batch
    for _ in range(5):  # 5 x 8 = 40 keys into a queue of 32
        model.method(model.unet.encoder, view1, view2)
    assert model.method.queue_ptr.item() == 40 % 32


def test_validation_leaves_queue_and_momentum_encoder_alone(build, fixed_batch):
    model = build().eval()
    before = {k: v.clone() for k, v in model.method.state_dict().items()}
    with torch.no_grad():
        model.method(model.unet.encoder, *fixed_batch[:2])
    for k, v in model.method.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_batch_norm_groups_see_their_own_statistics(build):
    encoder = build().unet.encoder.train()
    images = torch.rand(8, 1, 32, 32)
    grouped = forward_in_groups(encoder, images, 2)
    separate = [encoder(images[:4])[-1], encoder(images[4:])[-1]]
    torch.testing.assert_close(grouped[-1], torch.cat(separate))
    assert not torch.allclose(encoder(images)[-1], grouped[-1])


def test_shuffle_bn_keys_come_from_groups_of_shuffled_images(build, fixed_batch):
    model = build().train()
    moco = model.method
    moco.bn_splits = 2
    view2 = fixed_batch[1]
    order = torch.randperm(8, generator=torch.Generator().manual_seed(derive_seed("moco-shuffle-bn", 0)))
    with torch.no_grad():
        keys = moco._keys(view2)
        expected = torch.cat([moco._embed_keys(chunk) for chunk in view2[order].chunk(2)])[torch.argsort(order)]
        unshuffled = torch.cat([moco._embed_keys(chunk) for chunk in view2.chunk(2)])
    torch.testing.assert_close(keys, expected)
    assert not torch.allclose(keys, unshuffled)  # the groups really differ from the query's groups
    assert moco.shuffle_step.item() == 1


def test_emulated_groups_also_split_the_decoder(build, fixed_batch):
    model = build().train()
    model.method.bn_splits = 2
    features = [f.detach() for f in model.unet.encoder(fixed_batch[0])]
    grouped = model._decode(features)
    halves = torch.cat([model.unet.decode([f[:4] for f in features]), model.unet.decode([f[4:] for f in features])])
    torch.testing.assert_close(grouped, halves)
