import sys
from collections import Counter


def words_of(text):
    return [w.strip(".,;:!?\"'()").lower() for w in text.split()]


def top_three(counts):
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:3]


def main():
    text = sys.stdin.read()
    counts = Counter(w for w in words_of(text) if w)
    for word, n in top_three(counts):
        print(f"{word} {n}")


if __name__ == "__main__":
    main()
