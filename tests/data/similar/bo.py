freq = {}
while True:
    try:
        line = input()
    except EOFError:
        break
    for token in line.lower().split():
        token = "".join(ch for ch in token if ch.isalnum())
        if token == "":
            continue
        if token in freq:
            freq[token] += 1
        else:
            freq[token] = 1

best = []
for key in freq:
    best.append((freq[key], key))
best.sort(key=lambda pair: (-pair[0], pair[1]))
i = 0
while i < 3 and i < len(best):
    print(best[i][1], best[i][0])
    i += 1
