# Right, but slow: it "checks" each number for a hundredth of a second.
import time

total = 0
for word in input().split():
    time.sleep(0.01)
    total += int(word)
print(total)
