"""My own solution."""

import string
import sys


def top(histogram, n=3):
    # Highest first; ties by the word.
    entries = list(histogram.items())
    entries.sort(key=lambda e: e[0])
    entries.sort(key=lambda e: e[1], reverse=True)
    return entries[:n]


def clean(token):
    # lowercase, no punctuation at either end
    return token.lower().strip(string.punctuation)


def tally(tokens):
    histogram = {}
    for token in tokens:
        if not token:
            continue  # skip empty ones
        histogram.setdefault(token, 0)
        histogram[token] = histogram[token] + 1
    return histogram


tokens = [clean(t) for t in sys.stdin.read().split()]
for label, amount in top(tally(tokens)):
    print("%s %d" % (label, amount))
