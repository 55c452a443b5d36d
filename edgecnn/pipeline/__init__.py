"""``edgecnn pipeline``: data -> train -> calibrate -> quantize + export -> compare, resumable stage by stage."""
