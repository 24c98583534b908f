// seq_detect (subtly wrong rewrite) -- the merged 5-state encoding of
// seq_detect_better.v, but after a HIT a further 1 goes back to ONE instead
// of ONES2: it forgets that "...1101" + "1" already ends in "11". Identical
// until the first sampled 1-1-0-1-1; then `armed` is low one sample early
// and an overlapping 1101101 is reported once instead of twice.
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
                3'b100:  s <= din ? 3'b001 : 3'b000;   // HIT
                default: s <= din ? 3'b001 : 3'b000;   // IDLE
            endcase
        end
    end

    assign hit   = s[2];
    assign armed = s[1];
endmodule
