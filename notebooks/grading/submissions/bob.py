# Forgets the last number.
words = input().split()
print(sum(int(word) for word in words[:-1]))
