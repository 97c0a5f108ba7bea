# Word counter, homework 3
import sys
from collections import Counter


def tokens_in(blob):
    # strip punctuation and lowercase everything
    return [t.strip(".,;:!?\"'()").lower() for t in blob.split()]


def best_of(tally):
    # sort by count, then alphabetically
    order = sorted(tally.items(), key=lambda entry: (-entry[1], entry[0]))
    return order[:3]


def run():
    blob = sys.stdin.read()  # read everything
    tally = Counter(t for t in tokens_in(blob) if t)
    for term, k in best_of(tally):
        print(f"{term} {k}")


if __name__ == "__main__":
    run()
