// tick_timer (optimised) -- the counter never leaves 0..99 after reset, so
// 7 bits hold it. Yosys cannot see this: bits 7..31 are not constant in the
// netlist (only unreachable), and no synthesis pass proves reachability
// invariants, so it keeps a 32-bit register, incrementer and comparator.
// The terminal-count compare only needs the bits that are 1 in 99
// (7'b110_0011), because no smaller reachable value has all of them set.
module tick_timer (
    input  wire       clk,
    input  wire       rst,
    input  wire       en,
    output wire [6:0] phase,
    output reg        tick
);
    reg  [6:0] count;
    wire       last = count[6] & count[5] & count[1] & count[0];   // count == 99

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
