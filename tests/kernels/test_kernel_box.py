"""Kernel candidates in the box (issue 10 items 5 and 13): a C kernel that reads /etc/shadow into its
output, and one that floods stdout with 1 GB, each through the real kernel cascade. Nothing outside
the candidate's own output reaches the reason, and the verifier does not grow with the flood. (The
1,100-process fork bomb is tests/test_sandbox.py's: forking a torch process 1,000 times is minutes.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RELU_C

from evoforge.config import KernelSettings
from evoforge.verifiers.kernel.cascade import KernelVerifier
from evoforge.verifiers.kernel.target import load_kernel_target

KERNEL = """
#include <stdint.h>
#include <unistd.h>
#include <fcntl.h>
#include <string.h>
void relu2(float *o, const float *x, int64_t n) {
    %s
    for (int64_t i = 0; i < n; ++i) o[i] = (x[i] > 0.0f ? x[i] : 0.0f) * 2.0f + 1.0f;
}"""
SHADOW = """
    char buf[512] = {0};
    int fd = open("/etc/shadow", O_RDONLY);
    if (fd >= 0) { read(fd, buf, sizeof buf - 1); write(2, buf, strlen(buf)); close(fd); }
    else { write(2, "no shadow here\\n", 15); }
"""
FLOOD = """
    static char chunk[1 << 16];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 16384; ++i) write(1, chunk, sizeof chunk);
"""


def _candidate(body: str) -> str:
    start = RELU_C.index('_lib = load_c(r"""') + len('_lib = load_c(r"""')
    end = RELU_C.index('""")')
    return RELU_C[:start] + KERNEL % body + RELU_C[end:]


@pytest.fixture
def verifier(relu_problem: Path, kernel_settings: KernelSettings, tmp_path: Path) -> KernelVerifier:
    target = load_kernel_target(relu_problem, kernel_settings, work_dir=tmp_path / "target")
    return KernelVerifier(target, kernel_settings, tmp_path / "verify")


@pytest.mark.slow
def test_a_kernel_reading_shadow_quotes_nothing_of_it(verifier: KernelVerifier) -> None:
    shadow = Path("/etc/shadow")
    secret = shadow.read_text().splitlines()[0] if shadow.is_file() else "root:"
    verdict = verifier.verify(_candidate(SHADOW))
    everything = json.dumps([verdict.reason, *[(s.detail, s.log) for s in verdict.stages]])
    assert secret not in everything and "root:" not in everything


@pytest.mark.slow
def test_a_1_gb_stdout_flood_from_a_kernel_is_rejected_and_the_verifier_stays_small(
    relu_problem: Path, tmp_path: Path
) -> None:
    code = f"""
import json
from pathlib import Path
def peak_mb():  # this image's own peak (ru_maxrss keeps the forking parent's)
    with open('/proc/self/status') as f:
        return int(next(l for l in f if l.startswith('VmHWM')).split()[1]) / 1024
from evoforge.config import KernelSettings
from evoforge.verifiers.kernel.cascade import KernelVerifier
from evoforge.verifiers.kernel.target import load_kernel_target
settings = KernelSettings()
work = Path({str(tmp_path)!r})
target = load_kernel_target(Path({str(relu_problem)!r}), settings, work_dir=work / "target")
verifier = KernelVerifier(target, settings, work / "verify")
before = peak_mb()
verdict = verifier.verify({_candidate(FLOOD)!r})
after = peak_mb()
print(json.dumps({{"accepted": verdict.accepted, "error": verdict.error, "reason": verdict.reason[:600],
                  "before": before, "after": after}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert not out["accepted"] and not out["error"], out
    assert "output limit" in out["reason"], out
    assert out["after"] - out["before"] < 150, out  # MB; it was 3.0 GB when stdout was buffered whole
