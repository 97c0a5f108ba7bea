# Crashes on anything but two numbers.
a, b = input().split()
print(int(a) + int(b))
