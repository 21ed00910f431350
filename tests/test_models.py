"""Models: every registered architecture at every dataset shape (8x8 grey, 28x28 grey, 32x32 colour)
gives logits and penultimate embeddings of the right shape, without NaN, and trains (gradients flow)."""

from __future__ import annotations

import pytest
import torch

from tmu_core.models import MODELS, build_model

pytestmark = pytest.mark.fast  # `make test-fast`

SHAPES = {"digits": (1, 8), "mnist": (1, 28), "cifar": (3, 32)}
EMBED_DIM = {"small_cnn": 256, "resnet18": 512, "allcnn": 192, "vit_tiny": 192}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("name", MODELS.names())
def test_forward_and_embed_shapes(name, shape):
    channels, size = SHAPES[shape]
    torch.manual_seed(0)
    net = build_model(name, channels, num_classes=7, size=size).eval()
    x = torch.rand(3, channels, size, size)
    with torch.no_grad():
        logits, emb = net(x), net.embed(x)
    assert logits.shape == (3, 7)
    assert emb.shape == (3, EMBED_DIM[name])
    assert torch.isfinite(logits).all() and torch.isfinite(emb).all()
    assert torch.allclose(net.head(emb), logits, atol=1e-5), "forward must be head(embed(x))"


@pytest.mark.parametrize("name", MODELS.names())
def test_one_step_changes_every_trainable_parameter_group(name):
    torch.manual_seed(0)
    net = build_model(name, 1, num_classes=3, size=8).train()
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    loss = torch.nn.functional.cross_entropy(net(torch.rand(4, 1, 8, 8)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    changed = [k for k, v in net.named_parameters() if not torch.equal(v, before[k])]
    assert any(k.startswith("head.") for k in changed)
    assert any(k.startswith("body.") for k in changed)


def test_normalisation_lives_inside_the_model_and_is_saved():
    net = build_model("small_cnn", 3, 10, 32, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.25))
    assert net.mean.flatten().tolist() == pytest.approx([0.1, 0.2, 0.3])
    state = net.state_dict()
    assert "mean" in state and "std" in state
    other = build_model("small_cnn", 3, 10, 32)
    assert other.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    other.load_state_dict(state)
    assert torch.equal(other.std, net.std)
    # the body sees (x - mean) / std: a constant image at the mean is a zero input
    x = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1).expand(1, 3, 32, 32)
    assert torch.allclose((x - net.mean) / net.std, torch.zeros(1, 3, 32, 32))
