import re
import sys

PATTERN = re.compile(r"[a-z0-9]+")


def report(tally):
    for word, count in tally.leaders(3):
        print(word, count)


def read_words(stream):
    for line in stream:
        yield from PATTERN.findall(line.lower())


class Tally:
    def leaders(self, how_many):
        order = sorted(self.seen, key=lambda w: (-self.seen[w], w))
        return [(w, self.seen[w]) for w in order[:how_many]]

    def __init__(self):
        self.seen = {}

    def add(self, word):
        self.seen[word] = self.seen.get(word, 0) + 1


tally = Tally()
for word in read_words(sys.stdin):
    tally.add(word)
report(tally)
