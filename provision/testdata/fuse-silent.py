# fuse-silent.py MOUNTPOINT: a FUSE server, mounted on MOUNTPOINT, that
# answers the kernel's INIT and no request after it. A process that asks it
# anything (a stat below MOUNTPOINT) waits in the kernel, unkillable, until
# the server answers or dies. (A sandbox user can run one in a user
# namespace of its own where /dev/fuse is open to it.) Raw /dev/fuse, so
# that the test needs no FUSE library.
import ctypes
import os
import struct
import sys

mnt = sys.argv[1]
fd = os.open("/dev/fuse", os.O_RDWR)
libc = ctypes.CDLL(None, use_errno=True)
opts = "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other" % fd
if libc.mount(b"vibe-test-silent", mnt.encode(), b"fuse", 0, opts.encode()) != 0:
    sys.exit("mount: " + os.strerror(ctypes.get_errno()))
print("mounted", flush=True)
FUSE_INIT = 26
while True:
    req = os.read(fd, (1 << 20) + 4096)
    _, opcode, unique = struct.unpack_from("<IIQ", req, 0)
    if opcode != FUSE_INIT:
        continue  # never answered
    _, _, readahead, _ = struct.unpack_from("<IIII", req, 40)
    # fuse_init_out of protocol 7.31.
    out = struct.pack("<IIIIHHIIHH8I", 7, 31, readahead, 0, 16, 12, 131072, 1, 32, 0, *([0] * 8))
    os.write(fd, struct.pack("<IiQ", 16 + len(out), 0, unique) + out)
    print("init", flush=True)
