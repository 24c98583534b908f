"""The text of the deep run: a Verilog wrapper and a C++ testbench for Verilator (no process starts here).

:func:`deep_wrapper` puts the original (modules prefixed ``gold_``) and the candidate (``gate_``) on one
stimulus bus, cut into 32-bit words ``stim0``, ``stim1``… so that the testbench writes plain
``uint32_t`` ports whatever the width, and computes in Verilog: ``bad`` (some output differs) and
``changed`` (some output of the original differs from its value one cycle earlier, for the liveness
check). ``gold_w*``/``gate_w*`` expose the outputs in 32-bit words, read only to describe a mismatch.

:func:`deep_testbench` is the C++ ``main``. Per seed it asserts the reset for ``reset_cycles`` cycles,
releases it and never asserts it again (the cocotb differential test covers mid-run resets), then
drives corner-biased random inputs — held 15 % of the time, a corner value 25 % (0, all ones, 1, the
sign bit, its neighbours), a walking one or zero 10 %, otherwise uniform — from a xorshift64*
generator. Each cycle: inputs while the clock is low, evaluate, read ``bad``/``changed`` (the outputs
just before the rising edge), then a rising and a falling edge. It stops a seed at its cycle count or
when its share of the wall-clock budget is spent, and prints one line per seed:
``seed S cycles N changes C`` or ``mismatch seed S cycle N gold HEX gate HEX``. Called with
``--replay SEED CYCLES RESET_CYCLES FILE`` it writes that seed's first ``CYCLES`` stimulus rows to
``FILE`` as hex (the probe's ``$readmemh`` format) and exits, so that :func:`replay_testbench` can
replay a mismatch in Icarus with four-valued semantics.
"""

from __future__ import annotations

from evoforge.domain import Port, RtlInterface
from evoforge.verifiers.rtl.probe import instance_text

TOP = "evoforge_deep_top"


def _words(width: int) -> int:
    return max(1, (width + 31) // 32)


def _layout(ports: tuple[Port, ...]) -> list[tuple[Port, int]]:
    """(port, lowest bus bit) with the first port in the most significant bits (the probe's order)."""
    total = sum(p.width for p in ports)
    out, hi = [], total
    for port in ports:
        hi -= port.width
        out.append((port, hi))
    return out


def _instance(interface: RtlInterface, stimulus: tuple[Port, ...], prefix: str) -> str:
    """One copy (``gold`` or ``gate``): clock from ``clk``, inputs from slices of ``stim``."""
    return instance_text(
        interface,
        prefix,
        clocks={interface.clock: "clk"} if interface.clock else {},
        inputs={p.name: f"stim[{lo + p.width - 1}:{lo}]" for p, lo in _layout(stimulus)},
        outputs={p.name: f"[{lo + p.width - 1}:{lo}]" for p, lo in _layout(interface.outputs)},
    )


def deep_wrapper(interface: RtlInterface, stimulus: tuple[Port, ...]) -> str:
    outs = interface.outputs
    width_in = max(1, sum(p.width for p in stimulus))
    width_out = sum(p.width for p in outs)
    in_words, out_words = _words(width_in), _words(width_out)

    ports = ["input clk"]
    ports += [f"input [31:0] stim{i}" for i in range(in_words)]
    ports += [f"output [31:0] gold_w{i}" for i in range(out_words)]
    ports += [f"output [31:0] gate_w{i}" for i in range(out_words)]
    ports += ["output bad", "output changed"]
    padded_in = 32 * in_words
    padded_out = 32 * out_words
    stim_concat = ", ".join(f"stim{i}" for i in reversed(range(in_words)))
    body = [
        f"module {TOP} ({', '.join(ports)});",
        f"  wire [{padded_in - 1}:0] stim_all = {{{stim_concat}}};",
        f"  wire [{width_in - 1}:0] stim = stim_all[{width_in - 1}:0];",
        f"  wire [{width_out - 1}:0] gold_out, gate_out;",
        _instance(interface, stimulus, "gold"),
        _instance(interface, stimulus, "gate"),
        f"  reg [{width_out - 1}:0] gold_q = {width_out}'d0;",
        "  always @(posedge clk) gold_q <= gold_out;",
        "  assign bad = gold_out != gate_out;",
        "  assign changed = gold_out != gold_q;",
        f"  wire [{padded_out - 1}:0] gold_pad = {{{{{padded_out - width_out}{{1'b0}}}}, gold_out}};"
        if padded_out > width_out
        else f"  wire [{padded_out - 1}:0] gold_pad = gold_out;",
        f"  wire [{padded_out - 1}:0] gate_pad = {{{{{padded_out - width_out}{{1'b0}}}}, gate_out}};"
        if padded_out > width_out
        else f"  wire [{padded_out - 1}:0] gate_pad = gate_out;",
    ]
    for i in range(out_words):
        body.append(f"  assign gold_w{i} = gold_pad[{32 * i + 31}:{32 * i}];")
        body.append(f"  assign gate_w{i} = gate_pad[{32 * i + 31}:{32 * i}];")
    body.append("endmodule")
    return "\n".join(body) + "\n"


_MAIN = r"""
#include "V%(top)s.h"
#include "verilated.h"
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

static const int NPORTS = %(nports)d;
static const int WIDTH[] = {%(widths)s};
static const int LOW[] = {%(lows)s};
static const int RESET_PORT = %(reset_port)d;  // -1: no reset
static const uint32_t RESET_ON = %(reset_on)d, RESET_OFF = %(reset_off)d;
static const int IN_BITS = %(in_bits)d, IN_WORDS = %(in_words)d, OUT_WORDS = %(out_words)d;

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ULL + 0x5EED5EEDULL) { if (!s) s = 1; next(); }
  uint64_t next() { s ^= s >> 12; s ^= s << 25; s ^= s >> 27; return s * 0x2545F4914F6CDD1DULL; }
  double unit() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  uint32_t below(uint32_t n) { return (uint32_t)(next() %% n); }
};

typedef std::vector<uint32_t> Bits;

static void set_bit(Bits& v, int i, bool b) {
  if (b) v[i / 32] |= 1u << (i %% 32);
  else v[i / 32] &= ~(1u << (i %% 32));
}
static bool get_bit(const Bits& v, int i) { return (v[i / 32] >> (i %% 32)) & 1u; }
static void fill(Bits& v, int width, bool b) { for (int i = 0; i < width; i++) set_bit(v, i, b); }

static void value(Rng& r, int width, Bits& v) {  // v holds the previous value on entry
  double roll = r.unit();
  if (roll < 0.15) return;  // hold
  if (roll < 0.40) {
    int corner = (int)r.below(6);
    fill(v, width, false);
    switch (corner) {
      case 0: break;                                                  // 0
      case 1: fill(v, width, true); break;                            // all ones
      case 2: set_bit(v, 0, true); break;                             // 1
      case 3: set_bit(v, width - 1, true); break;                     // sign bit
      case 4: fill(v, width - 1, true); break;                        // largest positive
      default: fill(v, width, true); set_bit(v, 0, false); break;     // all ones but bit 0
    }
    return;
  }
  if (roll < 0.50) {
    int bit = (int)r.below((uint32_t)width);
    bool one = r.unit() < 0.5;
    fill(v, width, !one);
    set_bit(v, bit, one);
    return;
  }
  for (int i = 0; i < width; i += 32) {
    uint32_t w = (uint32_t)r.next();
    for (int k = 0; k < 32 && i + k < width; k++) set_bit(v, i + k, (w >> k) & 1u);
  }
}

struct Stimulus {
  Rng rng;
  std::vector<Bits> prev;
  Bits bus;
  int reset_cycles;
  Stimulus(uint64_t seed, int reset) : rng(seed), bus(IN_WORDS, 0u), reset_cycles(reset) {
    for (int p = 0; p < NPORTS; p++) prev.push_back(Bits((WIDTH[p] + 31) / 32, 0u));
  }
  void row(long cycle) {
    for (int p = 0; p < NPORTS; p++) {
      Bits& v = prev[p];
      if (p == RESET_PORT) {
        fill(v, WIDTH[p], false);
        set_bit(v, 0, (cycle < reset_cycles ? RESET_ON : RESET_OFF) != 0);
      } else {
        value(rng, WIDTH[p], v);
      }
      for (int i = 0; i < WIDTH[p]; i++) set_bit(bus, LOW[p] + i, get_bit(v, i));
    }
  }
};

static void hex(const Bits& v, int bits, char* out) {  // most significant digit first
  int digits = bits > 0 ? (bits + 3) / 4 : 1;
  for (int d = 0; d < digits; d++) {
    int nibble = digits - 1 - d;
    uint32_t n = 0;
    for (int k = 0; k < 4; k++) {
      int i = nibble * 4 + k;
      if (i < bits && get_bit(v, i)) n |= 1u << k;
    }
    out[d] = "0123456789abcdef"[n];
  }
  out[digits] = 0;
}

static void drive(V%(top)s* top, const Bits& bus) {
%(apply)s
}

static void outputs(V%(top)s* top, char* gold, char* gate) {
  Bits g(OUT_WORDS, 0u), t(OUT_WORDS, 0u);
%(read)s
  hex(g, OUT_WORDS * 32, gold);
  hex(t, OUT_WORDS * 32, gate);
}

int main(int argc, char** argv) {
  if (argc >= 6 && std::strcmp(argv[1], "--replay") == 0) {
    uint64_t seed = std::strtoull(argv[2], nullptr, 10);
    long cycles = std::atol(argv[3]);
    int reset = std::atoi(argv[4]);
    FILE* out = std::fopen(argv[5], "w");
    if (!out) return 3;
    Stimulus stim(seed, reset);
    std::vector<char> line(IN_BITS / 4 + 16);
    for (long c = 0; c < cycles; c++) {
      stim.row(c);
      hex(stim.bus, IN_BITS, line.data());
      std::fprintf(out, "%%s\n", line.data());
    }
    return std::fclose(out) == 0 ? 0 : 3;
  }
  if (argc < 5) { std::fprintf(stderr, "usage: CYCLES RESET_CYCLES BUDGET_S SEED...\n"); return 2; }
  long cycles = std::atol(argv[1]);
  int reset = std::atoi(argv[2]);
  double budget = std::atof(argv[3]);
  Verilated::commandArgs(1, argv);
  double per_seed = budget / (argc - 4);  // every seed gets its share of the wall-clock budget
  std::vector<char> gold(OUT_WORDS * 8 + 2), gate(OUT_WORDS * 8 + 2);
  for (int a = 4; a < argc; a++) {
    auto start = std::chrono::steady_clock::now();
    uint64_t seed = std::strtoull(argv[a], nullptr, 10);
    V%(top)s* top = new V%(top)s;
    Stimulus stim(seed, reset);
    top->clk = 0;
    top->eval();
    long c = 0, changes = 0;
    bool out_of_time = false;
    for (; c < cycles; c++) {
      if ((c & 4095) == 0) {
        double spent = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (spent > per_seed) { out_of_time = true; break; }
      }
      stim.row(c);
      drive(top, stim.bus);
      top->eval();
      if (c >= reset) {
        if (top->bad) {
          outputs(top, gold.data(), gate.data());
          std::printf("mismatch seed %%llu cycle %%ld gold %%s gate %%s\n", (unsigned long long)seed, c,
                      gold.data(), gate.data());
          std::fflush(stdout);
          return 0;
        }
        if (c >= reset + 3 && top->changed) changes++;
      }
      top->clk = 1; top->eval();
      top->clk = 0; top->eval();
    }
    std::printf("seed %%llu cycles %%ld changes %%ld%%s\n", (unsigned long long)seed, c - reset, changes,
                out_of_time ? " budget" : "");
    std::fflush(stdout);
    top->final();
    delete top;
  }
  return 0;
}
"""


def deep_testbench(interface: RtlInterface, stimulus: tuple[Port, ...]) -> str:
    """The C++ ``main`` for :func:`deep_wrapper` (see the module docstring)."""
    outs = interface.outputs
    width_in = max(1, sum(p.width for p in stimulus))
    width_out = sum(p.width for p in outs)
    in_words, out_words = _words(width_in), _words(width_out)
    layout = _layout(stimulus)
    reset_port = next((i for i, p in enumerate(stimulus) if p.name == interface.reset), -1)
    on, off = (0, 1) if interface.reset_active_low else (1, 0)
    apply_lines = "\n".join(f"  top->stim{i} = bus[{i}];" for i in range(in_words))
    read_lines = "\n".join(f"  g[{i}] = top->gold_w{i}; t[{i}] = top->gate_w{i};" for i in range(out_words))
    return _MAIN % {
        "top": TOP,
        "nports": len(stimulus),
        "widths": ", ".join(str(p.width) for p in stimulus) or "0",
        "lows": ", ".join(str(lo) for _, lo in layout) or "0",
        "reset_port": reset_port if interface.sequential else -1,
        "reset_on": on,
        "reset_off": off,
        "in_bits": width_in,
        "in_words": in_words,
        "out_words": out_words,
        "apply": apply_lines,
        "read": read_lines,
    }


REPLAY_TB = "evoforge_replay_tb"
REPLAY_STIM = "replay_stim.hex"


def replay_testbench(
    interface: RtlInterface, stimulus: tuple[Port, ...], cycles: int, reset_cycles: int, token: str
) -> str:
    """Icarus testbench: both designs on the stimulus in :data:`REPLAY_STIM`; prints the first cycle
    (from ``reset_cycles`` on) where a 0/1 bit of the original is not the candidate's, as
    ``<token> mismatch CYCLE GOLD GATE`` in ``%b``, or ``<token> done N``. Only that line is printed,
    however long the replay: the sampling is the probe's (inputs, 4 ns, sample, 1 ns, rising edge)."""
    outs = interface.outputs
    width_in = max(1, sum(p.width for p in stimulus))
    width_out = sum(p.width for p in outs)

    return "\n".join(
        [
            "`timescale 1ns/1ps",
            f"module {REPLAY_TB};",
            f"  reg [{width_in - 1}:0] mem [0:{cycles - 1}];",
            f"  reg [{width_in - 1}:0] stim;",
            "  reg clk;",
            "  integer i;",
            f"  wire [{width_out - 1}:0] gold_out, gate_out;",
            _instance(interface, stimulus, "gold"),
            _instance(interface, stimulus, "gate"),
            f"  wire [{width_out - 1}:0] bit_bad;",
            "  genvar k;",
            f"  generate for (k = 0; k < {width_out}; k = k + 1) begin : cmp",
            "    assign bit_bad[k] = (gold_out[k] === 1'b0 && gate_out[k] !== 1'b0)",
            "                     || (gold_out[k] === 1'b1 && gate_out[k] !== 1'b1);",
            "  end endgenerate",
            "  initial begin",
            f'    $readmemh("{REPLAY_STIM}", mem);',
            "    clk = 1'b0;",
            f"    for (i = 0; i < {cycles}; i = i + 1) begin",
            "      stim = mem[i];",
            f"      #4 if (i >= {reset_cycles} && |bit_bad) begin",
            f'        $display("{token} mismatch %0d %b %b", i, gold_out, gate_out);',
            "        $finish;",
            "      end",
            "      #1 clk = 1'b1;",
            "      #5 clk = 1'b0;",
            "    end",
            f'    $display("{token} done %0d", i);',
            "    $finish;",
            "  end",
            "endmodule",
            "",
        ]
    )
