// max8 -- largest of eight unsigned 8-bit values and the index of its first
// occurrence, written as the obvious running-maximum chain: seven
// compare-and-select steps in series.
module max8 (
    input  wire [7:0] d0,
    input  wire [7:0] d1,
    input  wire [7:0] d2,
    input  wire [7:0] d3,
    input  wire [7:0] d4,
    input  wire [7:0] d5,
    input  wire [7:0] d6,
    input  wire [7:0] d7,
    output reg  [7:0] max,
    output reg  [2:0] idx
);
    always @* begin
        max = d0;
        idx = 3'd0;
        if (d1 > max) begin max = d1; idx = 3'd1; end
        if (d2 > max) begin max = d2; idx = 3'd2; end
        if (d3 > max) begin max = d3; idx = 3'd3; end
        if (d4 > max) begin max = d4; idx = 3'd4; end
        if (d5 > max) begin max = d5; idx = 3'd5; end
        if (d6 > max) begin max = d6; idx = 3'd6; end
        if (d7 > max) begin max = d7; idx = 3'd7; end
    end
endmodule
