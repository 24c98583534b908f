// seq_detect -- Moore detector for the serial pattern 1-1-0-1 (overlapping),
// sampled when `valid` is high. `hit` is high for one sampled bit after the
// pattern completes. Written with one state per "interesting history", which
// gives eight states where five suffice: ZERO behaves exactly like IDLE,
// ONES3 like ONES2, and HIT_1/HIT_0 like ONE/IDLE with the output raised.
// Asynchronous active-low reset.
module seq_detect (
    input  wire clk,
    input  wire rst_n,
    input  wire valid,
    input  wire din,
    output reg  hit,
    output reg  armed
);
    localparam IDLE  = 3'd0;   // nothing useful seen
    localparam ZERO  = 3'd1;   // last bit 0, no prefix matched (same as IDLE)
    localparam ONE   = 3'd2;   // "1"
    localparam ONES2 = 3'd3;   // "11"
    localparam ONES3 = 3'd4;   // "111" (same as ONES2)
    localparam ONZ   = 3'd5;   // "110"
    localparam HIT   = 3'd6;   // "1101" found
    localparam HITZ  = 3'd7;   // "1101" found, then nothing matched yet (unreachable)

    reg [2:0] state;
    reg [2:0] next;

    always @* begin
        next = state;
        if (valid) begin
            case (state)
                IDLE:    next = din ? ONE   : ZERO;
                ZERO:    next = din ? ONE   : ZERO;
                ONE:     next = din ? ONES2 : ZERO;
                ONES2:   next = din ? ONES3 : ONZ;
                ONES3:   next = din ? ONES3 : ONZ;
                ONZ:     next = din ? HIT   : IDLE;
                HIT:     next = din ? ONES2 : ZERO;
                HITZ:    next = din ? ONE   : ZERO;
                default: next = IDLE;
            endcase
        end
    end

    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin
            state <= IDLE;
            hit   <= 1'b0;
            armed <= 1'b0;
        end else begin
            state <= next;
            hit   <= (next == HIT);
            armed <= (next == ONES2) | (next == ONES3) | (next == ONZ);
        end
    end
endmodule
