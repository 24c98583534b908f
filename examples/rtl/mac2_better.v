// mac2 (optimised) -- distributivity: a*c + b*c = (a + b)*c.
// One 9x8 multiplier instead of two 8x8 multipliers and an extra adder.
// Yosys does not factor arithmetic: `share` only merges multipliers that are
// never used at the same time, and `alumacc` merges the two products into
// one $macc cell but still builds both partial-product arrays.
module mac2 (
    input  wire        clk,
    input  wire        rst_n,
    input  wire        en,
    input  wire [7:0]  a,
    input  wire [7:0]  b,
    input  wire [7:0]  c,
    output reg  [23:0] acc
);
    wire [8:0]  s = {1'b0, a} + {1'b0, b};   // keep the carry: a + b can reach 510
    wire [16:0] p = s * c;

    always @(posedge clk) begin
        if (!rst_n)
            acc <= 24'd0;
        else if (en)
            acc <= acc + {7'd0, p};
    end
endmodule
