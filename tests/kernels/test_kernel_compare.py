"""Output comparison: tolerance scaled to the output, exact type/shape/dtype, mismatch reports."""

from __future__ import annotations

import pytest
import torch

from evoforge.verifiers.kernel.compare import CHUNK, compare_tensor, describe_mismatches, fingerprint


def test_equal_outputs_pass_and_report_zero_error() -> None:
    x = torch.randn(64, 128)
    result = compare_tensor(x, x.clone())
    assert result.ok and result.max_abs_error == 0.0


def test_zeros_fail_even_when_outputs_are_tiny() -> None:
    # softmax over 4096 columns: outputs ~2.4e-4; zeros pass atol=1e-2 but not a tolerance scaled to RMS
    generator = torch.Generator().manual_seed(0)
    expected = torch.softmax(0.5 * torch.randn(8, 4096, generator=generator), dim=-1)
    assert torch.allclose(torch.zeros_like(expected), expected, atol=1e-2)  # the naive check is fooled
    assert not compare_tensor(expected, torch.zeros_like(expected)).ok
    assert not compare_tensor(expected, torch.full_like(expected, float(expected.mean()))).ok


def test_fp16_and_bf16_arithmetic_fail_in_an_fp32_problem() -> None:
    x = torch.randn(256, 256) * 10
    expected = torch.tanh(x) * x
    for low in (torch.float16, torch.bfloat16):
        downgraded = (torch.tanh(x.to(low)) * x.to(low)).to(torch.float32)
        result = compare_tensor(expected, downgraded)
        assert not result.ok, low
    reassociated = (x * torch.tanh(x)).contiguous()  # a different order in fp32 stays within tolerance
    assert compare_tensor(expected, reassociated).ok


def test_exact_type_shape_dtype_device() -> None:
    expected = torch.randn(4, 4)

    class Lazy(torch.Tensor):
        pass

    assert "not a torch.Tensor" in compare_tensor(expected, expected.as_subclass(Lazy)).reason
    assert "dtype" in compare_tensor(expected, expected.double()).reason
    assert "shape" in compare_tensor(expected, expected.reshape(16)).reason


def test_mismatch_report_names_elements() -> None:
    expected = torch.zeros(3, 4) + 1.0
    got = expected.clone()
    got[2, 1] = 5.0
    result = compare_tensor(expected, got)
    assert not result.ok and result.mismatched == 1
    assert result.mismatches[0].index == [2, 1]
    assert "[2, 1] expected 1 got 5" in describe_mismatches(result)


def test_nan_must_match_nan() -> None:
    expected = torch.tensor([1.0, float("nan"), float("inf")])
    assert compare_tensor(expected, expected.clone()).ok
    assert not compare_tensor(expected, torch.tensor([1.0, 0.0, float("inf")])).ok


def test_fingerprint_is_coarse_but_not_blind() -> None:
    x = torch.randn(32, 32)
    assert fingerprint([x]) == fingerprint([x.clone()])
    assert fingerprint([x]) != fingerprint([x * 2])


def test_large_outputs_are_judged_in_chunks_with_the_same_report() -> None:
    """Counts, the largest finite error and the first mismatches (by flat index) across chunk edges;
    the tolerance's RMS comes from the whole output's finite elements, not from one chunk."""
    n = 3 * CHUNK + 5
    expected = torch.ones(2, n) * 2.0
    expected[1, -1] = 1e4  # far from the mismatches: it still raises every element's allowance
    expected[0, 7] = float("nan")
    got = expected.clone()
    flat = [CHUNK - 1, CHUNK, 2 * CHUNK + 3, n + 11, n + CHUNK + 2, 2 * n - 2]
    for k, index in enumerate(flat):
        got.view(-1)[index] += 0.5 + k  # each error above 1e-4 × (2 + rms ≈ 49.2): all mismatch
    got.view(-1)[5] = float("inf")  # an infinite error: a mismatch, not the largest finite error
    result = compare_tensor(expected, got)
    assert not result.ok and result.mismatched == 7 and result.total == 2 * n
    first = [[0, 5], [0, CHUNK - 1], [0, CHUNK], [0, 2 * CHUNK + 3], [1, 11]]
    assert [m.index for m in result.mismatches] == first
    assert result.max_abs_error == 5.5
    rms = float(torch.sqrt((expected[torch.isfinite(expected)] ** 2).mean()))
    assert result.mismatches[1].allowed == pytest.approx(1e-4 * 2.0 + 1e-4 * rms)
    assert compare_tensor(expected, expected.clone()).ok  # NaN where NaN is expected
    ints = torch.arange(2 * n, dtype=torch.int64) * (1 << 40)  # exact: beyond float64's 53 bits
    off_by_one = ints.clone()
    off_by_one[CHUNK + 1] += 1
    assert compare_tensor(ints, off_by_one).mismatches[0].index == [CHUNK + 1]
