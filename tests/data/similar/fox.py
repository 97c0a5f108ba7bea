import sys
import heapq
import collections

text = sys.stdin.read()
tokens = []
current = []
for ch in text.lower():
    if ch.isalnum():
        current.append(ch)
    elif current:
        tokens.append("".join(current))
        current = []
if current:
    tokens.append("".join(current))

counter = collections.Counter(tokens)
for word, amount in heapq.nsmallest(3, counter.items(), key=lambda x: (-x[1], x[0])):
    sys.stdout.write(word + " " + str(amount) + "\n")
