import sys

lines = sys.stdin.readlines()
numbers = {}
for raw in lines:
    for piece in raw.split():
        piece = piece.lower()
        while piece and not piece[0].isalnum():
            piece = piece[1:]
        while piece and not piece[-1].isalnum():
            piece = piece[:-1]
        if piece:
            numbers[piece] = numbers.get(piece, 0) + 1

shown = 0
for value in sorted(set(numbers.values()), reverse=True):
    for word in sorted(w for w in numbers if numbers[w] == value):
        if shown == 3:
            break
        print(word, value)
        shown += 1
