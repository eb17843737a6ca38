# The hostile agent's two processes for TestSettleEndsEveryoneWhenOneRan.
# x FOLDER: asks the kernel to send it SIGCONT (F_SETSIG) when FOLDER
# changes (inotify, O_ASYNC), so that a stop by settle does not hold it;
# at each change opens every file in FOLDER for writing (one of them is
# settle's copy of FOLDER/config, before its read-only bind) and hands the
# descriptors to y.
# y: stopped by settle like every other; receives the descriptor and
# writes through it.
import ctypes, fcntl, os, signal, socket, sys, time

NAME = b"\0vibe-settle-test-" + str(os.getuid()).encode()
if sys.argv[1] == "y":
    l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    l.bind(NAME)
    l.listen(1)
    c, _ = l.accept()
    while True:
        msg, fds, _, _ = socket.recv_fds(c, 1, 1)
        if not msg:
            sys.exit(0)
        for fd in fds:
            os.write(fd, b"\thook = evil\n")
folder = sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
for _ in range(50):
    try:
        s.connect(NAME)
        break
    except OSError:
        time.sleep(0.05)
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0)
libc.inotify_add_watch(fd, folder.encode(), 0xFFF)
F_SETSIG = 10
fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
fcntl.fcntl(fd, F_SETSIG, signal.SIGCONT)
fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
print("watching", flush=True)
# Every file there at each change (settle's copy is one of them, before
# it takes the config's place): what y writes through the others goes
# nowhere.
seen = set()
while True:
    os.read(fd, 4096)
    for name in os.listdir(folder):
        try:
            w = os.open(os.path.join(folder, name), os.O_WRONLY | os.O_APPEND)
        except OSError:
            continue
        st = os.fstat(w)
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            socket.send_fds(s, [b"x"], [w])
        os.close(w)
