// dual_mul -- product of one of two operand pairs, selected by `sel`.
// Written as a masked OR of two always-computed products (the style of a
// bus that ORs gated sources together), so yosys sees two 6x6 multipliers
// feeding AND/OR gates rather than a $mux between them.
module dual_mul (
    input  wire [5:0]  a,
    input  wire [5:0]  b,
    input  wire [5:0]  c,
    input  wire [5:0]  d,
    input  wire        sel,
    output wire [11:0] p
);
    wire [11:0] pab = a * b;
    wire [11:0] pcd = c * d;
    assign p = ({12{~sel}} & pab) | ({12{sel}} & pcd);
endmodule
