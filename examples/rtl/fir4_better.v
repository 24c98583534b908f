// fir4 (optimised) -- constant multipliers rewritten in canonical signed
// digit form, so runs of 1s cost one subtraction instead of one addition per 1:
//     15 = 16 - 1           (4 partial products -> 2)
//     62 = 64 - 2           (5 -> 2)
//    119 = 128 - 8 - 1      (6 -> 3)
//      63 = 64 - 1           (6 -> 2)
// and the positive and negative terms are summed separately (one final
// subtraction). Yosys expands a constant multiply into one shifted partial
// product per 1 bit of the constant and never introduces subtractions.
module fir4 (
    input  wire        clk,
    input  wire        rst,
    input  wire [7:0]  x,
    output reg  [19:0] y
);
    reg [7:0] x1, x2, x3;

    wire [19:0] pos = ({12'd0, x} << 4) + ({12'd0, x1} << 6) + ({12'd0, x2} << 7) + ({12'd0, x3} << 6);
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
            y  <= pos - neg;
        end
    end
endmodule
