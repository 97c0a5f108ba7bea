# Keeps every partial sum, and a great deal more, in memory.
numbers = [int(word) for word in input().split()]
history = [list(range(10_000)) for _ in numbers for _ in range(200)]
print(sum(numbers))
