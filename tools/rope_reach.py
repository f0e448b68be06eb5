#!/usr/bin/env python3
"""How far a rotary head can still match a token by its content, by head size and base.

Rotary embeddings (model/rotary.h) turn the pair (2i, 2i+1) of a head's query and key by
m * theta_i, theta_i = base^(-2i / head_dim), for a key m tokens back. For a query equal to
its key, the score is then proportional to B(m) = sum_i cos(m * theta_i) (Men et al. 2024,
"Base of RoPE Bounds Context Length"): where B(m) <= 0, the same token m back scores no
higher than an unrelated one, so a head that finds a key by what it says, not where it is,
must do so with the few pairs that turn slowly over m. This prints, per (head_dim, base), the
first distance where B(m) <= 0 within the window, and how many pairs turn by at most a
quarter turn over the whole window (usable to match content at any distance there) and how
many repeat within 64 tokens (what tells neighbouring positions apart).

  tools/rope_reach.py --head-dims 16,32 --bases 1e4,1e6,1e7 --length 4096
"""
import argparse
import math


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--head-dims", required=True, help="d_model / n_heads values, e.g. 16,32")
    ap.add_argument("--bases", required=True, help="model.rope_theta values, e.g. 1e4,1e6")
    ap.add_argument("--length", type=int, required=True, help="the window T")
    a = ap.parse_args()
    T = a.length
    print(f"{'head_dim':>8} {'base':>8} {'first m with B(m) <= 0':>23} "
          f"{'pairs turning <= 1/4 over T':>28} {'pairs repeating within 64':>26}")
    for d in map(int, a.head_dims.split(",")):
        for base in map(float, a.bases.split(",")):
            thetas = [base ** (-2 * i / d) for i in range(d // 2)]
            first = next((m for m in range(1, T) if sum(math.cos(m * t) for t in thetas) <= 0),
                         None)
            slow = sum(T * t <= math.pi / 2 for t in thetas)
            fast = sum(2 * math.pi / t <= 64 for t in thetas)
            print(f"{d:>8} {base:>8.0e} {first if first else 'none below T':>23} {slow:>28} "
                  f"{fast:>26}")


if __name__ == "__main__":
    main()
