#!/usr/bin/env python3
"""Summarise an imagine model directory's metrics.jsonl as one JSON line (no torch needed).

  imagine_metrics.py MODEL_DIR
  -> {"steps": .., "tokens_per_s": .., "best_val_loss": .., "best_step": .., "final_val_loss": .., "evals": [..]}

tokens_per_s is the trainer's own figure at the last logged step: tokens trained divided by
the summed optimizer-step time (evaluations and checkpoints excluded).
"""
import json
import math
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: imagine_metrics.py MODEL_DIR")
    steps, rate, evals = 0, None, []
    with open(sys.argv[1] + "/metrics.jsonl") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            j = json.loads(line)
            if j.get("event") == "eval":
                evals.append({k: j[k] for k in ("step", "val_loss", "train_loss") if k in j})
            elif "step" in j:
                steps = max(steps, j["step"])
                rate = j.get("tok_per_s", j.get("tokens_per_s", rate))
    best = min(evals, key=lambda e: e["val_loss"]) if evals else None
    print(
        json.dumps(
            {
                "steps": steps,
                "tokens_per_s": rate,
                "best_val_loss": best["val_loss"] if best and math.isfinite(best["val_loss"]) else None,
                "best_step": best["step"] if best else None,
                "final_val_loss": evals[-1]["val_loss"] if evals else None,
                "evals": evals,
            }
        )
    )


if __name__ == "__main__":
    main()
