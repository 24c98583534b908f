// dual_mul -- product of one of two operand pairs, selected by `sel`.
// Written as a masked OR of two always-computed products (the style of a
// bus that ORs gated sources together), so yosys sees two 8x8 multipliers
// feeding AND/OR gates rather than a $mux between them.
module dual_mul (
    input  wire [7:0]  a,
    input  wire [7:0]  b,
    input  wire [7:0]  c,
    input  wire [7:0]  d,
    input  wire        sel,
    output wire [15:0] p
);
    wire [15:0] pab = a * b;
    wire [15:0] pcd = c * d;
    assign p = ({16{~sel}} & pab) | ({16{sel}} & pcd);
endmodule
