// tick_timer -- divides the enabled clock by 100: `phase` counts enabled
// cycles 0..99 and `tick` pulses (registered) in the cycle after phase 99.
// A generic 32-bit timer register was reused for the job, so the counter,
// its incrementer and its terminal-count compare are all 32 bits wide.
// Synchronous active-high reset; every register is reset.
module tick_timer (
    input  wire       clk,
    input  wire       rst,
    input  wire       en,
    output wire [6:0] phase,
    output reg        tick
);
    reg [31:0] count;

    always @(posedge clk) begin
        if (rst) begin
            count <= 32'd0;
            tick  <= 1'b0;
        end else begin
            tick <= 1'b0;
            if (en) begin
                if (count == 32'd99) begin
                    count <= 32'd0;
                    tick  <= 1'b1;
                end else begin
                    count <= count + 32'd1;
                end
            end
        end
    end

    assign phase = count[6:0];
endmodule
