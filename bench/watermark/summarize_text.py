#!/usr/bin/env python3
"""Turns text_wm_bench's JSON lines into the tables of docs/responsible.md."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("### False positives: z over 200-token windows of human-written text\n")
print("| tokenizer | scheme | windows | mean z | sd | max z | windows with z > 4 |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    if r["mode"] != "null":
        continue
    z = r["z"]
    scheme = "lefthash-1" if r["context"] == 1 else "selfhash-4"
    print(f"| {r['tokenizer']} | {scheme} | {z['n']} | {z['mean']:.2f} | {z['sd']:.2f} | {r['max_z']:.2f} | {z['above_4']} |")
print("\n### True positives by length, robustness, quality cost (20 samples of 400 new tokens each)\n")
print("| tokenizer | T | scheme | delta | rate z>4 @50 | @100 | @200 | @400 | mean z @200 | z @400 after 10% / 20% tokens replaced | after 5% chars inserted / deleted | loss (nats/token) under the unmarked model |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if r["mode"] != "gen":
        continue
    p = r["params"]
    za = r["z_at"]
    def rate(k):
        return f"{za[k]['rate']:.2f}" if za[k]["n"] else "-"
    print(f"| {r['tokenizer']} | {r['temperature']} | {p['scheme'].replace('kgw-','')} | {p['delta']:g} | {rate('50')} | {rate('100')} | {rate('200')} | {rate('400')} | "
          f"{za['200']['mean']:.1f} | {r['z_replace_10']['mean']:.1f} / {r['z_replace_20']['mean']:.1f} | "
          f"{r['z_insert_5pct_chars']['mean']:.1f} / {r['z_delete_5pct_chars']['mean']:.1f} | {r['loss_unwatermarked_model']:.3f} |")
