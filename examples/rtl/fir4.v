// fir4 -- 4-tap FIR filter with constant coefficients 15, 62, 119, 63:
//     y[n] = 15*x[n] + 62*x[n-1] + 119*x[n-2] + 63*x[n-3]
// x is unsigned 8-bit; y (20 bits) is registered, so the filter has one
// cycle of latency. Asynchronous active-high reset clears the taps and y.
module fir4 (
    input  wire        clk,
    input  wire        rst,
    input  wire [7:0]  x,
    output reg  [19:0] y
);
    reg [7:0] x1, x2, x3;

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
            y  <= 20'd15 * x + 20'd62 * x1 + 20'd119 * x2 + 20'd63 * x3;
        end
    end
endmodule
