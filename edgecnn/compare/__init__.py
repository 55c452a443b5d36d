"""``edgecnn compare``: accuracy against latency, size and memory across float and quantized variants."""
