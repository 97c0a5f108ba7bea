import sys
from collections import defaultdict

table = defaultdict(int)
data = sys.stdin.read().lower()
cleaned = "".join(c if c.isalnum() or c.isspace() else " " for c in data)
for w in cleaned.split():
    table[w] += 1
top = sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
print("\n".join(f"{k} {v}" for k, v in top))
