"""Test helper: the launch plan of one C function that reads input 0 and writes a fresh output."""

from __future__ import annotations


def one_launch_plan(key: str, function: str, shape: list[int], extra_args: list[int]) -> dict[str, object]:
    """``function(out, in, *extra_args)`` from library ``key`` on a float32 input of ``shape``."""
    nbytes = 4
    for size in shape:
        nbytes *= size
    strides = [1]
    for size in reversed(shape[1:]):
        strides.insert(0, strides[0] * size)
    return {
        "buffers": [
            {"kind": "input", "index": 0, "nbytes": nbytes},
            {"kind": "fresh", "nbytes": nbytes, "fill": None},
        ],
        "launches": [
            {
                "library": key,
                "function": function,
                "args": [{"buffer": 1, "offset": 0}, {"buffer": 0, "offset": 0}]
                + [{"int": value} for value in extra_args],
            }
        ],
        "outputs": [{"buffer": 1, "offset": 0, "shape": shape, "strides": strides, "dtype": "float32"}],
    }
