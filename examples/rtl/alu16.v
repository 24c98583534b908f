// alu16 -- 16-bit combinational ALU, one operation per opcode.
// Each arithmetic opcode is written with its own operator, the way a
// specification table reads: two adders, two subtractors, an incrementer
// and two magnitude comparators, all mutually exclusive under `op`.
module alu16 (
    input  wire [15:0] a,
    input  wire [15:0] b,
    input  wire [2:0]  op,
    output reg  [15:0] y,
    output reg         cout,
    output reg         flag
);
    always @* begin
        y    = 16'd0;
        cout = 1'b0;
        flag = 1'b0;
        case (op)
            3'd0: {cout, y} = {1'b0, a} + {1'b0, b};          // add
            3'd1: {cout, y} = {1'b0, a} - {1'b0, b};          // sub, cout = borrow
            3'd2: {cout, y} = {1'b0, b} - {1'b0, a};          // reverse sub
            3'd3: {cout, y} = {1'b0, a} + 17'd1;              // increment
            3'd4: begin                                       // unsigned min
                flag = (a < b);
                y    = (a < b) ? a : b;
            end
            3'd5: begin                                       // unsigned max
                flag = (a > b);
                y    = (a > b) ? a : b;
            end
            3'd6: begin                                       // equality
                flag = (a == b);
                y    = a ^ b;
            end
            default: y = a & b;                               // and
        endcase
    end
endmodule
