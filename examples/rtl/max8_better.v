// max8 (optimised) -- the same running maximum as a balanced tournament tree:
// three levels of compare-and-select instead of seven in series.
// Ties keep the LEFT (lower-index) operand (`>=`), which reproduces the
// chain's "first occurrence wins" index.
module max8 (
    input  wire [7:0] d0,
    input  wire [7:0] d1,
    input  wire [7:0] d2,
    input  wire [7:0] d3,
    input  wire [7:0] d4,
    input  wire [7:0] d5,
    input  wire [7:0] d6,
    input  wire [7:0] d7,
    output wire [7:0] max,
    output wire [2:0] idx
);
    // level 1: pairs
    wire       l01 = d0 >= d1;
    wire       l23 = d2 >= d3;
    wire       l45 = d4 >= d5;
    wire       l67 = d6 >= d7;
    wire [7:0] m01 = l01 ? d0 : d1;
    wire [7:0] m23 = l23 ? d2 : d3;
    wire [7:0] m45 = l45 ? d4 : d5;
    wire [7:0] m67 = l67 ? d6 : d7;
    wire [2:0] i01 = l01 ? 3'd0 : 3'd1;
    wire [2:0] i23 = l23 ? 3'd2 : 3'd3;
    wire [2:0] i45 = l45 ? 3'd4 : 3'd5;
    wire [2:0] i67 = l67 ? 3'd6 : 3'd7;
    // level 2: quads
    wire       l03 = m01 >= m23;
    wire       l47 = m45 >= m67;
    wire [7:0] m03 = l03 ? m01 : m23;
    wire [7:0] m47 = l47 ? m45 : m67;
    wire [2:0] i03 = l03 ? i01 : i23;
    wire [2:0] i47 = l47 ? i45 : i67;
    // level 3: final
    wire       l07 = m03 >= m47;
    assign max = l07 ? m03 : m47;
    assign idx = l07 ? i03 : i47;
endmodule
