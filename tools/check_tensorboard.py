#!/usr/bin/env python3
"""Reads a run's TensorBoard event files with TensorBoard's own readers and checks them against
the run's metrics.jsonl (tests/tools/tensorboard_test.sh runs it).

  check_tensorboard.py OUT_DIR [--eval-step N]

- The raw reader (event_file_loader, which stops at the first record whose CRC32C is wrong):
  every file starts with its version event; every scalar of every metrics record is there once,
  with its step and its value (float32); no (tag, step) twice; no tag the records lack.
- The dashboard's reader (EventAccumulator over the folder): the same scalars.
- --eval-step N: `longnet eval`'s results (eval/loss, eval/ppl, eval/bits_per_byte) at step N.
Prints one line per check; exit 1 on the first that fails."""
import argparse
import collections
import glob
import json
import math
import os
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator, event_file_loader


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def fail(why):
    print("FAIL", why)
    sys.exit(1)


def expected_scalars(out_dir):
    expected = {}
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            for key, value in record.items():
                if key in ("step", "time") or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                tag = "val/" + key[4:] if key.startswith("val_") else "train/" + key
                expected[(tag, record["step"])] = f32(value)
    return expected


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--eval-step", type=int)
    args = ap.parse_args()
    tb_dir = os.path.join(args.out_dir, "tensorboard")
    expected = expected_scalars(args.out_dir)
    files = sorted(glob.glob(os.path.join(tb_dir, "events.out.tfevents.*")))
    if not files:
        fail(f"no event files in {tb_dir}")

    seen = collections.Counter()
    got = {}
    for path in files:
        events = list(event_file_loader.LegacyEventFileLoader(path).Load())
        if not events or events[0].file_version != "brain.Event:2":
            fail(f"{path}: does not start with the version event")
        for e in events[1:]:
            for v in e.summary.value:
                seen[(v.tag, e.step)] += 1
                got[(v.tag, e.step)] = v.simple_value
    twice = [k for k, n in seen.items() if n > 1]
    if twice:
        fail(f"{len(twice)} (tag, step) pairs written more than once, e.g. {sorted(twice)[:3]}")
    train = {k: v for k, v in got.items() if not k[0].startswith("eval/")}
    missing = sorted(set(expected) - set(train))
    extra = sorted(set(train) - set(expected))
    if missing or extra:
        fail(f"scalars differ from metrics.jsonl: missing {missing[:3]}, not in it {extra[:3]}")
    for k, v in expected.items():
        if not math.isclose(train[k], v, rel_tol=1e-7, abs_tol=1e-30):
            fail(f"{k}: {train[k]} in the event file, {v} in metrics.jsonl")
    steps = sorted({s for _, s in expected})
    print(f"ok raw reader: {len(files)} files, {len(expected)} scalars of {len(steps)} steps "
          f"({steps[0]}..{steps[-1]}), each once and equal to metrics.jsonl")

    acc = event_accumulator.EventAccumulator(tb_dir, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    dashboard = {}
    for tag in acc.Tags()["scalars"]:
        for s in acc.Scalars(tag):
            dashboard[(tag, s.step)] = s.value
    if {k: v for k, v in dashboard.items() if not k[0].startswith("eval/")} != train:
        fail("the dashboard's reader (EventAccumulator) shows other scalars than the raw reader")
    print(f"ok dashboard reader: {len(acc.Tags()['scalars'])} tags, the same scalars")

    if args.eval_step is not None:
        for tag in ("eval/loss", "eval/ppl", "eval/bits_per_byte"):
            if (tag, args.eval_step) not in got:
                fail(f"no {tag} at step {args.eval_step}")
        if not math.isclose(got[("eval/ppl", args.eval_step)], math.exp(got[("eval/loss", args.eval_step)]), rel_tol=1e-5):
            fail("eval/ppl is not exp(eval/loss)")
        print(f"ok eval results at step {args.eval_step}: loss {got[('eval/loss', args.eval_step)]:.4f}")


if __name__ == "__main__":
    main()
