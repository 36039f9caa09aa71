"""Code generators: HLS C++ (``nnfab.backends.hls``) and Verilog (``nnfab.backends.rtl``)."""
