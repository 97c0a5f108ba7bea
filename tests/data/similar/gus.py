import sys
from functools import reduce


def split_words(s):
    out, buf = [], ""
    for c in s:
        if c.isalpha() or c.isdigit():
            buf += c.lower()
        else:
            if buf:
                out.append(buf)
            buf = ""
    return out + ([buf] if buf else [])


def merge(acc, w):
    acc[w] = acc.get(w, 0) + 1
    return acc


counts = reduce(merge, split_words(sys.stdin.read()), {})
keys = sorted(counts.keys())
keys = sorted(keys, key=counts.get, reverse=True)
for k in keys[:3]:
    print(k, counts[k])
