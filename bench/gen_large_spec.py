"""Write a spec with N dense layers (default 1,000) for timing `dlc check`.

    python bench/gen_large_spec.py 1000 > /tmp/big.dl && time dlc check /tmp/big.dl
"""

import sys


def large_spec(n: int) -> str:
    acts = ["relu", "tanh", "leaky_relu", "elu"]
    lines = ["model big {", "    input 64", "    init he_normal"]
    for i in range(n - 1):
        extra = " batchnorm" if i % 3 == 0 else ""
        drop = " dropout=0.1" if i % 5 == 0 else ""
        lines.append(f"    dense {32 + i % 7} {acts[i % 4]}{extra}{drop}")
    lines += ["    dense 10 softmax", "}", "", "data digits", "loss cross_entropy", "optimizer adam lr=1e-3",
              "train epochs=1"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(large_spec(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
