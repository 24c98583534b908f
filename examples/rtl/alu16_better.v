// alu16 (optimised) -- every arithmetic opcode shares ONE 17-bit adder.
//   op0  a + b        = a + b  + 0
//   op1  a - b        = a + ~b + 1      borrow = ~carry
//   op2  b - a        = ~(a + ~b)       borrow = carry
//   op3  a + 1        = a + 0  + 1
//   op4  min, a < b   = borrow of a - b
//   op5  max, a > b   = carry of a + ~b
// Yosys' `share` pass only merges $mul/$div/$mod/shift/memory cells, so the
// original keeps seven separate adders/comparators.
module alu16 (
    input  wire [15:0] a,
    input  wire [15:0] b,
    input  wire [2:0]  op,
    output reg  [15:0] y,
    output reg         cout,
    output reg         flag
);
    // one adder: s = a + k + cin with k in {b, ~b, 0}
    wire        inv  = (op == 3'd1) | (op == 3'd2) | (op == 3'd4) | (op == 3'd5);
    wire        cin  = (op == 3'd1) | (op == 3'd3) | (op == 3'd4);
    wire [15:0] k    = (op == 3'd3) ? 16'd0 : (inv ? ~b : b);
    wire [16:0] s    = {1'b0, a} + {1'b0, k} + {16'd0, cin};

    always @* begin
        y    = 16'd0;
        cout = 1'b0;
        flag = 1'b0;
        case (op)
            3'd0, 3'd3: {cout, y} = s;
            3'd1: begin y = s[15:0]; cout = ~s[16]; end      // a + ~b + 1
            3'd2: begin y = ~s[15:0]; cout = s[16]; end      // ~(a + ~b) = b - a
            3'd4: begin flag = ~s[16]; y = s[16] ? b : a; end  // a < b: no carry from a - b
            3'd5: begin flag = s[16]; y = s[16] ? a : b; end   // a > b: carry from a + ~b
            3'd6: begin flag = (a == b); y = a ^ b; end
            default: y = a & b;
        endcase
    end
endmodule
