// dual_mul (optimised) -- select the operands, then multiply once.
// Yosys' `share` pass merges multipliers only when it finds them feeding a
// $mux/$pmux whose select makes them mutually exclusive; a masked OR hides
// that, so the original keeps two multipliers.
module dual_mul (
    input  wire [7:0]  a,
    input  wire [7:0]  b,
    input  wire [7:0]  c,
    input  wire [7:0]  d,
    input  wire        sel,
    output wire [15:0] p
);
    wire [7:0] x = sel ? c : a;
    wire [7:0] y = sel ? d : b;
    assign p = x * y;
endmodule
