"""Output comparison: tolerance scaled to the output, exact type/shape/dtype, mismatch reports."""

from __future__ import annotations

import torch

from evoforge.verifiers.kernel.compare import compare_tensor, describe_mismatches, fingerprint


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
