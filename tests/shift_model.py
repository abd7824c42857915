#!/usr/bin/python3
"""Writes a copy of an exported TabM model whose every member's logit is
shifted by a constant: the same network, probabilities moved up or down.
The server's reload test swaps it with the default model and tells the
two apart by their answers and checksums.

    /usr/bin/python3 tests/shift_model.py IN.npz SHIFT OUT.npz
"""
import sys

import numpy as np


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    src, shift, dst = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    with np.load(src) as z:
        tensors = {k: z[k] for k in z.files}
    tensors["head.bias"] = (tensors["head.bias"] + np.float32(shift)).astype(np.float32)
    np.savez(dst, **tensors)


if __name__ == "__main__":
    main()
