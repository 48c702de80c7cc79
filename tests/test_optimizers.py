"""Adam at beta1 = 0 without a first-moment buffer: PyTorch's update, less memory."""

from __future__ import annotations

import copy

import pytest
import torch

from lightning_modules.gan_module import OptimizerSpec, make_optimizer
from lightning_modules.optimizers import MomentFreeAdam, MomentFreeAdamW


def parameters(seed: int = 0) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator))
            for shape in ((7, 5, 3, 3), (7,), (11, 4))]


def run(optimizer_factory, steps: int, params: list[torch.nn.Parameter],
        start: int = 0) -> torch.optim.Optimizer:
    optimizer = optimizer_factory(params)
    for step in range(start, start + steps):
        generator = torch.Generator().manual_seed(100 + step)
        for parameter in params:
            parameter.grad = torch.randn(parameter.shape, generator=generator) * 10 ** (step % 3)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return optimizer


@pytest.mark.parametrize("implementation", [{"fused": True}, {"foreach": True},
                                            {"foreach": False}])
@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_moment_free_adam_takes_pytorchs_steps_without_a_first_moment(implementation, kind):
    theirs_class, ours_class = {"adam": (torch.optim.Adam, MomentFreeAdam),
                                "adamw": (torch.optim.AdamW, MomentFreeAdamW)}[kind]
    options = dict(lr=1e-2, betas=(0.0, 0.9), eps=1e-3, weight_decay=0.1, amsgrad=kind == "adamw",
                   **implementation)
    theirs_params, ours_params = parameters(), parameters()
    theirs = run(lambda p: theirs_class(p, **options), 6, theirs_params)
    ours = run(lambda p: ours_class(p, **options), 6, ours_params)
    for a, b in zip(theirs_params, ours_params, strict=True):
        assert torch.equal(b, a)
    for parameter in ours_params:
        assert "exp_avg" not in ours.state[parameter]
        assert float(ours.state[parameter]["step"]) == 6.0
    saved = ours.state_dict()["state"]
    assert all("exp_avg" not in entry and "exp_avg_sq" in entry for entry in saved.values())
    assert all("exp_avg" in entry for entry in theirs.state_dict()["state"].values())


def test_groups_with_momentum_keep_their_first_moment():
    options = dict(lr=1e-2, betas=(0.5, 0.9), fused=True)
    theirs_params, ours_params = parameters(), parameters()
    run(lambda p: torch.optim.Adam(p, **options), 4, theirs_params)
    ours = run(lambda p: MomentFreeAdam(p, **options), 4, ours_params)
    assert all(torch.equal(a, b) for a, b in zip(theirs_params, ours_params, strict=True))
    assert all("exp_avg" in ours.state[parameter] for parameter in ours_params)


def test_moment_free_adam_resumes_from_pytorchs_adam_state():
    """A checkpoint written with torch.optim.Adam (first moments included) loads; continuing
    matches PyTorch's Adam continuing."""
    options = dict(lr=1e-2, betas=(0.0, 0.99), eps=1e-8, fused=True)
    theirs_params = parameters()
    theirs = run(lambda p: torch.optim.Adam(p, **options), 3, theirs_params)
    saved = copy.deepcopy(theirs.state_dict())  # state_dict() shares the live tensors
    ours_params = [torch.nn.Parameter(p.detach().clone()) for p in theirs_params]
    ours = MomentFreeAdam(ours_params, **options)
    ours.load_state_dict(saved)
    assert all("exp_avg" not in ours.state[p] for p in ours_params)
    run(lambda p: theirs, 3, theirs_params, start=3)
    run(lambda p: ours, 3, ours_params, start=3)
    for a, b in zip(theirs_params, ours_params, strict=True):
        assert torch.equal(b, a)


def test_make_optimizer_drops_the_first_moment_only_at_beta1_zero():
    network = torch.nn.Linear(3, 2)
    assert type(make_optimizer(OptimizerSpec([network], betas=(0.0, 0.99)))) is MomentFreeAdam
    assert type(make_optimizer(OptimizerSpec([network], betas=(0.0, 0.99),
                                             optimizer="AdamW"))) is MomentFreeAdamW
    assert type(make_optimizer(OptimizerSpec([network], betas=(0.9, 0.99)))) is torch.optim.Adam
    assert type(make_optimizer(OptimizerSpec([network], optimizer="SGD"))) is torch.optim.SGD
