// dual_mul (optimised) -- select the operands, then multiply once.
// Yosys' `share` pass merges multipliers only when it finds them feeding a
// $mux/$pmux whose select makes them mutually exclusive; a masked OR hides
// that, so the original keeps two multipliers.
module dual_mul (
    input  wire [5:0]  a,
    input  wire [5:0]  b,
    input  wire [5:0]  c,
    input  wire [5:0]  d,
    input  wire        sel,
    output wire [11:0] p
);
    wire [5:0] x = sel ? c : a;
    wire [5:0] y = sel ? d : b;
    assign p = x * y;
endmodule
