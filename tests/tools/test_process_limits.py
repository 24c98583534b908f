"""Every child is bounded: CPU time, memory, file size, output (streamed, never buffered whole).

Issue 10 item 13 at the process choke point. The floods run for real (1 GB through a pipe); the
verifier-side memory is measured in a fresh interpreter, so that what pytest already holds does not
hide a regression. Peak memory is the kernel's ``VmHWM`` of the new process image (``ru_maxrss``
keeps the peak of the image before ``exec``, i.e. of the forking pytest worker).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from evoforge.tools import process
from evoforge.tools.process import Limits

HWM = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024"
FLOOD = "import sys\nchunk = 'x' * 65536 + '\\n'\nfor _ in range({n}): sys.stdout.write(chunk)\n"


def _measure_in_fresh_interpreter(code: str) -> dict[str, object]:
    """Run ``code`` (which sets ``out``) in a new Python and return ``out`` plus its peak RSS in MB."""
    wrapper = f"import json\n{code}\nout['rss_mb'] = {HWM}\nprint(json.dumps(out))\n"
    done = subprocess.run(
        [sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=300, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_1_gb_stdout_flood_is_streamed_and_the_parent_stays_small() -> None:
    # no output limit at all: the parent still keeps only the head and tail of what it drains
    code = (
        "from evoforge.tools import process\n"
        f"r = process.run([{sys.executable!r}, '-c', {FLOOD.format(n=16384)!r}], timeout=240,\n"
        "                limits=process.Limits(output_bytes=None))\n"
        "out = {'total': r.output_bytes, 'kept': len(r.stdout), 'ok': r.ok, 'cut': 'cut' in r.stdout}\n"
    )
    out = _measure_in_fresh_interpreter(code)
    assert out["total"] == 16384 * 65537  # 1 GiB and change, all read
    assert out["ok"] and out["cut"]
    assert int(str(out["kept"])) <= process.KEPT_OUTPUT_BYTES + 100
    assert float(str(out["rss_mb"])) < 150, out  # was 3 GB when the output was buffered whole


def test_output_past_the_limit_kills_the_child_quickly() -> None:
    start = time.monotonic()
    result = process.run(
        [sys.executable, "-c", FLOOD.format(n=16384)], timeout=120, limits=Limits(output_bytes=8 << 20)
    )
    assert result.output_exceeded and not result.ok
    assert result.limit_exceeded == "the 8 MiB output limit"
    assert (8 << 20) < result.output_bytes < (8 << 20) + (64 << 20)
    assert time.monotonic() - start < 60


def test_the_default_output_limit_applies_without_limits() -> None:
    result = process.run([sys.executable, "-c", FLOOD.format(n=2048)], timeout=120)  # 128 MiB
    assert result.output_exceeded
    assert result.limit_exceeded == f"the {process.DEFAULT_OUTPUT_BYTES >> 20} MiB output limit"


def test_head_and_tail_of_a_long_output_survive() -> None:
    script = (
        "import sys\nprint('FIRST')\nfor _ in range(100): sys.stdout.write('y' * 65536)\nprint('\\nLAST')\n"
    )
    result = process.run([sys.executable, "-c", script], timeout=60)
    assert result.ok
    assert result.stdout.startswith("FIRST") and result.stdout.rstrip().endswith("LAST")
    assert "bytes of output cut" in result.stdout


def test_cpu_time_limit_is_named() -> None:
    result = process.run(
        [sys.executable, "-c", "while True: pass"], timeout=120, limits=Limits(cpu_seconds=1)
    )
    assert not result.ok and not result.timed_out
    assert result.limit_exceeded == "the 1 s CPU-time limit"


def test_file_size_limit_is_named(tmp_path: Path) -> None:
    script = "open('big', 'wb').write(b'0' * (4 << 20))"
    result = process.run(
        [sys.executable, "-c", script], timeout=60, cwd=tmp_path, limits=Limits(file_bytes=1 << 20)
    )
    assert not result.ok
    assert result.limit_exceeded == "the 1 MiB file-size limit"
    assert (tmp_path / "big").stat().st_size <= 1 << 20


def test_memory_limit_is_named() -> None:
    result = process.run(
        [sys.executable, "-c", "x = bytearray(3 << 30)"], timeout=60, limits=Limits(memory_bytes=1 << 30)
    )
    assert not result.ok
    assert result.limit_exceeded == "the 1 GiB memory limit"


def test_a_large_stdin_does_not_deadlock_against_a_large_stdout() -> None:
    payload = "z" * (4 << 20)
    result = process.run(["cat"], timeout=60, stdin_text=payload)
    assert result.ok
    assert result.output_bytes == len(payload)


def test_a_child_that_closes_its_pipes_and_keeps_running_still_times_out() -> None:
    script = "import os, time\nos.close(1); os.close(2)\ntime.sleep(60)\n"
    start = time.monotonic()
    result = process.run([sys.executable, "-c", script], timeout=1.5)
    assert result.timed_out and result.returncode is None
    assert result.limit_exceeded == "the 1.5 s wall-clock limit"
    assert time.monotonic() - start < 15
