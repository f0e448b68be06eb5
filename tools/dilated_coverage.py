#!/usr/bin/env python3
"""Which (query, key) pairs dilated attention connects in one layer, by distance.

A query at position p sees the key at k < p through the pair (segment w, rate r) when both lie
in the same w-segment (segments cut from position 0) and p = k (mod r): the head with offset
p mod r keeps both rows (attention/dilated.h). With as many heads as the largest rate, every
offset has a head, so the union over pairs is what one layer can attend to. This prints, for
bands of distance, the share of all (p, p - d) pairs in a window that some pair connects;
a key outside that share reaches the query only through an earlier layer that moved its
content to a position the query sees.

  tools/dilated_coverage.py --segments 512,1024,2048,4096 --rates 1,2,4,8 --length 4096
"""
import argparse


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", required=True, help="attention.segment_lengths, e.g. 512,1024")
    ap.add_argument("--rates", required=True, help="attention.dilation_rates, e.g. 1,2")
    ap.add_argument("--length", type=int, required=True, help="the window T")
    a = ap.parse_args()
    pairs = list(zip(map(int, a.segments.split(",")), map(int, a.rates.split(","))))
    T = a.length
    bands, lo = [], 1
    while lo < T:
        bands.append((lo, min(2 * lo, T)))
        lo *= 2
    print(f"{'distance':>14}  {'connected in one layer':>22}")
    for lo, hi in bands:
        seen = total = 0
        for d in range(lo, hi):
            for p in range(d, T):
                k = p - d
                total += 1
                seen += any(p // w == k // w and d % r == 0 for w, r in pairs)
        print(f"{lo:>6}-{hi - 1:<7}  {seen / total:>21.1%}")


if __name__ == "__main__":
    main()
