// fir4 (subtly wrong rewrite) -- the canonical-signed-digit form of
// fir4_better.v, but the positive partial sum was sized for the old
// coefficient set: `pos` is 16 bits while 16x + 64x1 + 128x2 + 64x3 reaches
// 69360. It wraps only when that sum is >= 65536 -- about 1 in 4400 uniformly
// random input windows, and always when x is held at 255 for four cycles.
module fir4 (
    input  wire        clk,
    input  wire        rst,
    input  wire [7:0]  x,
    output reg  [19:0] y
);
    reg [7:0] x1, x2, x3;

    wire [15:0] pos = ({8'd0, x} << 4) + ({8'd0, x1} << 6) + ({8'd0, x2} << 7) + ({8'd0, x3} << 6);
    wire [19:0] neg = {12'd0, x} + ({12'd0, x1} << 1) + ({12'd0, x2} << 3) + {12'd0, x2} + {12'd0, x3};

    always @(posedge clk or posedge rst) begin
        if (rst) begin
            x1 <= 8'd0;
            x2 <= 8'd0;
            x3 <= 8'd0;
            y  <= 20'd0;
        end else begin
            x1 <= x;
            x2 <= x1;
            x3 <= x2;
            y  <= {4'd0, pos} - neg;
        end
    end
endmodule
