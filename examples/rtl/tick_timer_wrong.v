// tick_timer (subtly wrong rewrite) -- the 7-bit counter of
// tick_timer_better.v, but the terminal count was written as "< 100" the
// wrong way round: it wraps after 100 instead of after 99. Identical to the
// original for the first 99 enabled cycles after reset; first differs in the
// cycle after the 100th enabled cycle (phase 100 instead of 0, tick missing).
module tick_timer (
    input  wire       clk,
    input  wire       rst,
    input  wire       en,
    output wire [6:0] phase,
    output reg        tick
);
    reg  [6:0] count;
    wire       last = (count == 7'd100);

    always @(posedge clk) begin
        if (rst) begin
            count <= 7'd0;
            tick  <= 1'b0;
        end else begin
            tick <= en & last;
            if (en) count <= last ? 7'd0 : count + 7'd1;
        end
    end

    assign phase = count;
endmodule
