#!/usr/bin/env python3
"""trace_token_order.py IN OUT: rewrite a flashmoe expert trace (src/experts.h)
in token-major order, as if every token had been evaluated alone.

A batched evaluation (a prompt, or `flashmoe perplexity`'s windows) writes a
batch's tokens for layer 0, then for layer 1, ...; the routing of each
(token, layer) does not depend on the batching, so sorting the lines by
(token, layer) (stable; each "#p" probability line stays with the routing
line that follows it) gives the trace of token-by-token generation over the
same text: the order in which a cache sees a generation's requests.
"""
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: trace_token_order.py IN OUT")
    header, recs, pending = [], [], None
    with open(sys.argv[1]) as f:
        for line in f:
            if line.startswith("#p "):
                pending = line
            elif line.startswith("#") or not line.strip():
                if not recs:
                    header.append(line)
            else:
                tok, layer = line.split(" ", 2)[:2]
                recs.append((int(tok), int(layer), len(recs), pending, line))
                pending = None
    recs.sort(key=lambda r: (r[0], r[1], r[2]))
    with open(sys.argv[2], "w") as f:
        f.writelines(header)
        for r in recs:
            if r[3]:
                f.write(r[3])
            f.write(r[4])


if __name__ == "__main__":
    main()
