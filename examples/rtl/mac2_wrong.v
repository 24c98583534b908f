// mac2 (subtly wrong rewrite) -- factors a*c + b*c = (a + b)*c like
// mac2_better.v, but "saves" a flip-flop: the accumulator was trimmed to
// 23 bits (zero-extended on the output). Every step is right until the true
// sum first reaches 2^23 = 8388608; with uniformly random operands and en
// mostly high that takes roughly 250-300 cycles, after which bit 23 is lost.
module mac2 (
    input  wire        clk,
    input  wire        rst_n,
    input  wire        en,
    input  wire [7:0]  a,
    input  wire [7:0]  b,
    input  wire [7:0]  c,
    output wire [23:0] acc
);
    wire [8:0]  s = {1'b0, a} + {1'b0, b};
    wire [16:0] p = s * c;
    reg  [22:0] sum;

    always @(posedge clk) begin
        if (!rst_n)
            sum <= 23'd0;
        else if (en)
            sum <= sum + {6'd0, p};
    end

    assign acc = {1'b0, sum};
endmodule
