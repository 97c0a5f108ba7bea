import string
import sys


def normalise(word):
    return word.lower().strip(string.punctuation)


def count(words):
    result = {}
    for word in words:
        if not word:
            continue
        result.setdefault(word, 0)
        result[word] = result[word] + 1
    return result


def most_common(result, limit=3):
    pairs = list(result.items())
    pairs.sort(key=lambda p: p[0])
    pairs.sort(key=lambda p: p[1], reverse=True)
    return pairs[:limit]


words = [normalise(w) for w in sys.stdin.read().split()]
for name, times in most_common(count(words)):
    print("%s %d" % (name, times))
