// seq_detect (optimised) -- the same detector with its eight states merged
// into the five distinguishable ones (ZERO = IDLE, ONES3 = ONES2, HITZ is
// unreachable) and encoded so that the two outputs ARE state bits:
//   IDLE 000, ONE 001, ONES2 010, ONZ 011, HIT 100  ->  hit = s[2], armed = s[1]
// Three flip-flops instead of nine (yosys' fsm pass re-encodes the original
// one-hot over its 7 reachable codes and keeps the two output registers; it
// does not merge equivalent states or fold outputs into the encoding).
module seq_detect (
    input  wire clk,
    input  wire rst_n,
    input  wire valid,
    input  wire din,
    output wire hit,
    output wire armed
);
    reg [2:0] s;

    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            s <= 3'b000;
        end else if (valid) begin
            case (s)
                3'b001:  s <= din ? 3'b010 : 3'b000;   // ONE
                3'b010:  s <= din ? 3'b010 : 3'b011;   // ONES2
                3'b011:  s <= din ? 3'b100 : 3'b000;   // ONZ
                3'b100:  s <= din ? 3'b010 : 3'b000;   // HIT
                default: s <= din ? 3'b001 : 3'b000;   // IDLE
            endcase
        end
    end

    assign hit   = s[2];
    assign armed = s[1];
endmodule
