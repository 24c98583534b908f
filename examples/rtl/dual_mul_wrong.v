// dual_mul (subtly wrong rewrite) -- selects the operands and multiplies once
// like dual_mul_better.v, but adds a "fast path" for the full-scale gain
// y = 63 (x*63 = (x << 6) - x) whose subtrahend lost bit 5 of x. Wrong only
// when the selected second operand is 63 and the selected first operand is
// >= 32 (about 1 in 128 uniformly random vectors), e.g. a = 32, b = 63, sel = 0.
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
    assign p = (y == 6'd63) ? ({x, 6'd0} - {7'd0, x[4:0]}) : x * y;
endmodule
