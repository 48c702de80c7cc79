"""The benchmarks' FLOP count: the same as ``FlopCounterMode`` where that runs, and it also
counts the gradient-of-gradient work of R1 (inside ``autograd.grad``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from experiments.benchmarks.swapae_iteration import counted


def test_flop_count_matches_flop_counter_mode_and_follows_autograd_grad():
    torch.manual_seed(0)
    images = torch.randn(2, 8, 16, 16, requires_grad=True)
    weight = torch.randn(16, 8, 3, 3, requires_grad=True)
    head = torch.randn(10, 16 * 16 * 16, requires_grad=True)

    def critic(x):
        return F.linear(F.leaky_relu(F.conv2d(x, weight, padding=1), 0.2).flatten(1), head)

    def step():
        critic(images).sum().backward()

    def r1_step():
        (gradient,) = torch.autograd.grad(critic(images).sum(), images, create_graph=True)
        gradient.square().sum().backward()

    with FlopCounterMode(display=False) as reference:
        step()
    assert counted(step) == reference.get_total_flops() > 0
    # forward conv 2*N*HW*Cout*Cin*9; R1 adds the conv's grad-input and its own backward
    conv_forward = 2 * 2 * 16 * 16 * 16 * 8 * 9
    assert counted(r1_step) > counted(step) + conv_forward


def test_flop_count_of_a_grouped_convolution_equals_its_groups_as_plain_convolutions():
    """torch's formula counts a grouped convolution's weight gradient ``groups`` times."""
    torch.manual_seed(0)
    x = torch.randn(4, 8, 16, 16, requires_grad=True)
    weight = torch.randn(4 * 6, 2, 3, 3, requires_grad=True)  # 4 groups of 2 -> 6 channels

    def grouped():
        F.conv2d(x, weight, padding=1, groups=4).sum().backward()

    def per_group():
        sum(F.conv2d(x[:, 2 * g:2 * g + 2], weight[6 * g:6 * g + 6], padding=1).sum()
            for g in range(4)).backward()

    forward = 2 * 4 * 16 * 16 * (4 * 6) * 2 * 9
    assert counted(grouped) == counted(per_group) == 3 * forward


def test_official_contender_gets_the_corrlab_modules_options():

    from experiments.benchmarks.official_swapae import official_options
    from experiments.benchmarks.swapae_iteration import church_model
    from lightning_modules.swapping_autoencoder.official import OPTION_NAMES

    with torch.device("meta"):
        hparams = dict(church_model(64).hparams)
    opt = vars(official_options(hparams))
    assert {theirs: opt[theirs] for theirs in OPTION_NAMES} == {
        theirs: hparams[ours] for theirs, ours in OPTION_NAMES.items()}
    assert (opt["crop_size"], opt["netE_num_downsampling_gl"], opt["patch_use_aggregation"]) \
        == (64, 1, False)
    assert opt["num_gpus"] == 0 and opt["continue_train"] is False
    # widths the official code hard-codes cannot be matched: refused, not silently different
    with pytest.raises(ValueError, match="hard-codes"):
        official_options({**hparams, "netD_max_channels": 32})
    with pytest.raises(ValueError, match="hard-codes"):
        official_options({**hparams, "patch_pair_widths": (64, 64, 32)})


def test_adaconv_benchmark_contenders_compute_the_same_thing():
    from experiments.benchmarks.adaconv_iteration import max_difference

    assert max_difference(32, 2) < 1e-5


def test_cocosnet_memory_benchmark_contenders_compute_the_same_thing():
    from experiments.benchmarks.cocosnet_memory import max_difference

    assert max_difference(4, ["dense", "sdpa", "chunked", "dense+checkpoint"]) < 1e-6


def test_peak_tensor_memory_counts_live_tensors_and_the_highest_point_of_a_step():
    from experiments.benchmarks.report import peak_tensor_gib

    mib = 2**20
    held = torch.nn.Parameter(torch.zeros(64 * mib // 4))  # 64 MiB alive before the step
    held.grad = torch.zeros_like(held)  # another 64 MiB, reachable only through .grad

    def step():
        first = torch.ones(32 * mib // 4)  # +32
        second = first * 2  # +32: the highest point, 64 MiB above the start
        del first, second
        kept = torch.zeros(16 * mib // 4)  # +16 after both were freed
        return kept

    other = peak_tensor_gib(lambda: None) * 2**30  # whatever else this process holds
    peak = peak_tensor_gib(step) * 2**30
    assert peak - other == pytest.approx(64 * mib, abs=mib)
    del held
    assert peak_tensor_gib(lambda: None) * 2**30 == pytest.approx(other - 128 * mib, abs=mib)


def test_cocosnet_work_table_gives_the_share_of_the_conv_rate_and_the_time_at_it():
    from experiments.benchmarks.cocosnet_iteration import work_lines

    lines = work_lines({"official": {"flops": 3e12, "iteration_s": 20.0, "conv_peak_gflops": 300.0},
                        "corrlab": {"flops": 2e12, "iteration_s": 8.0, "conv_peak_gflops": 500.0}})
    assert lines[-2] == "| official | 3.00 | 50% (of 300 GFLOP/s) | 10.00 s |"
    assert lines[-1] == "| corrlab | 2.00 | 50% (of 500 GFLOP/s) | 4.00 s |"
