// mac2 -- accumulates two products that share a coefficient:
//     acc <= acc + a*c + b*c      (when en; a, b, c unsigned 8-bit)
// The 24-bit accumulator wraps modulo 2^24. Synchronous active-low reset.
module mac2 (
    input  wire        clk,
    input  wire        rst_n,
    input  wire        en,
    input  wire [7:0]  a,
    input  wire [7:0]  b,
    input  wire [7:0]  c,
    output reg  [23:0] acc
);
    wire [15:0] pa = a * c;
    wire [15:0] pb = b * c;

    always @(posedge clk) begin
        if (!rst_n)
            acc <= 24'd0;
        else if (en)
            acc <= acc + pa + pb;
    end
endmodule
