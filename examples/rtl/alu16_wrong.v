// alu16 (subtly wrong rewrite) -- shares one adder like alu16_better.v, but
// the equality flag was "simplified" to compare only the low 15 bits.
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
    wire [15:0] d    = a ^ b;

    always @* begin
        y    = 16'd0;
        cout = 1'b0;
        flag = 1'b0;
        case (op)
            3'd0, 3'd3: {cout, y} = s;
            3'd1: begin y = s[15:0]; cout = ~s[16]; end      // a + ~b + 1
            3'd2: begin y = ~s[15:0]; cout = s[16]; end      // ~(a + ~b) = b - a
            3'd4: begin flag = ~s[16]; y = s[16] ? b : a; end
            3'd5: begin flag = s[16]; y = s[16] ? a : b; end
            3'd6: begin flag = (d[14:0] == 15'd0); y = d; end
            default: y = a & b;
        endcase
    end
endmodule
