# Tries to cheat: looks for the expected outputs, and leaves notes for the next case.
import glob
import os
import subprocess

found = []
# What an earlier case left behind: files, shared memory, a process.
for place in ("/sandbox/answers.txt", "/dev/shm/answers.txt"):
    if os.path.exists(place):
        found.append(f"{place}: {open(place).read()!r}")
for status in glob.glob("/proc/[0-9]*/status"):
    try:
        if f"Uid:\t{os.getuid()}" in open(status).read() and status.split("/")[2] != str(os.getpid()):
            found.append(f"a process left running: {status}")
    except OSError:
        pass
# The expected outputs: in a file it can read, or in the environment.
for top in ("/sandbox", "/tmp", "/dev/shm", "/home", "/root", "/opt", "/srv", "/mnt"):
    for folder, _, names in os.walk(top):
        for name in names:
            if name.endswith((".yaml", ".yml", ".json")) or "expected" in name:
                found.append(f"file {os.path.join(folder, name)}")
if any("expected" in value for value in os.environ.values()):
    found.append("expected outputs in the environment")

line = input()
with open("/sandbox/answers.txt", "w") as note, open("/dev/shm/answers.txt", "w") as shm:
    note.write(line)
    shm.write(line)
subprocess.Popen(["sleep", "60"], start_new_session=True)
print(sum(int(word) for word in line.split()))
for what in found:
    print("found", what)
