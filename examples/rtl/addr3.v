// addr3 -- effective addresses of a 3-word record: word 0, 1 and 2 of
// element `idx` of an array of 3-word records at `base`, plus a bounds flag
// for the last word. Each output was written by a different hand, so the same
// quantity base + 3*idx appears four times in four spellings (idx*3, 3*idx,
// (idx<<1)+idx, idx+idx+idx), with operands commuted and at different widths.
module addr3 (
    input  wire [9:0]  base,
    input  wire [7:0]  idx,
    output wire [11:0] ea0,
    output wire [11:0] ea1,
    output wire [11:0] ea2,
    output wire        in_range
);
    assign ea0 = base + idx * 3;
    assign ea1 = 12'd1 + 3 * idx + base;
    assign ea2 = (idx + base) + ({4'd0, idx} << 1) + 12'd2;
    wire [12:0] last = idx + idx + idx + base + 13'd2;
    assign in_range = last < 13'd1024;
endmodule
