// addr3 (optimised) -- base + 3*idx computed once and reused.
// Yosys' opt_merge only merges cells with identical type, parameters and
// inputs; the four spellings build different $mul/$add/$macc trees, and
// ABC's fraig sweep gives up on proving differently-associated adder trees
// equal, so the original keeps four multi-operand adders.
// ea1 = t + 1 and ea2 = t + 2 are increments of the shared sum (ea2 only of
// bits 11..1); the bounds check t + 2 < 1024 is t < 1022 (t is at most
// 1023 + 765 = 1788, so nothing wraps).
module addr3 (
    input  wire [9:0]  base,
    input  wire [7:0]  idx,
    output wire [11:0] ea0,
    output wire [11:0] ea1,
    output wire [11:0] ea2,
    output wire        in_range
);
    wire [11:0] t = {2'd0, base} + {3'd0, idx, 1'b0} + {4'd0, idx};
    assign ea0 = t;
    assign ea1 = t + 12'd1;
    assign ea2 = {t[11:1] + 11'd1, t[0]};                 // +2 leaves bit 0 alone
    // t + 2 < 1024  <=>  t < 1022  <=>  t[11:10] == 0 and t[9:1] != 9'h1ff
    assign in_range = (t[11:10] == 2'b00) & ~(&t[9:1]);
endmodule
