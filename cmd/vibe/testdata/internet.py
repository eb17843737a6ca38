#!/usr/bin/env python3
"""The "internet" of the egress tests: runs in an instance on an isolated
incus bridge (no host address, no NAT) and answers only there.

  DNS  udp/53    every name under .test resolves to this instance's address
  HTTP tcp/80, tcp/443, tcp/8443   "hello from HOST:PORT" (plain HTTP, also
                 on 443: clients tunnel through the proxy with CONNECT)
  UDP  udp/5353  echo
  DHCP udp/67    leases PREFIX.10 upwards, with this instance as router and
                 name server (the sandbox learns its resolver the real way)
  API  api.model.test (any port): POST/GET /v1/... answers 200 only when
                 x-api-key is KEY, else 401 (a fake model API)

Every DNS query is logged to /root/dns.log (one name a line), every HTTP
request to /root/http.log, and every IPv4 packet arriving on eth0 to
/root/packets.log ("SRC DST PROTO"), so a test can prove what never arrived.

Usage: internet.py ADDRESS [KEY]
"""
import http.server
import socket
import socketserver
import struct
import sys
import threading

ADDR = sys.argv[1]
KEY = sys.argv[2] if len(sys.argv) > 2 else ""
LOCK = threading.Lock()


def log(path, line):
    with LOCK:
        with open(path, "a") as f:
            f.write(line + "\n")


def packets():
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800))
    s.bind(("eth0", 0))
    while True:
        p = s.recv(65535)
        ip = p[14:]
        if len(ip) < 20:
            continue
        log("/root/packets.log", "%s %s %d" % (socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), ip[9]))


def dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ADDR, 53))
    while True:
        q, peer = s.recvfrom(512)
        try:
            tid, flags, qd = struct.unpack(">HHH", q[:6])
            i, labels = 12, []
            while q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode())
                i += 1 + q[i]
            qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
            question = q[12:i + 5]
            name = ".".join(labels).lower()
            log("/root/dns.log", name)
            answers = b""
            if name.endswith(".test") and qtype == 1:
                answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ADDR)
            rcode = 0 if name.endswith(".test") else 3
            hdr = struct.pack(">HHHHHH", tid, 0x8180 | rcode, 1, 1 if answers else 0, 0, 0)
            s.sendto(hdr + question + answers, peer)
        except Exception:
            pass


def dhcp():
    prefix = ADDR.rsplit(".", 1)[0]
    leases = {}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, 25, b"eth0")  # SO_BINDTODEVICE
    s.bind(("", 67))
    me = socket.inet_aton(ADDR)
    while True:
        p, _ = s.recvfrom(1500)
        if len(p) < 240 or p[0] != 1 or p[236:240] != b"\x63\x82\x53\x63":
            continue
        opts, i = {}, 240
        while i < len(p) and p[i] != 255:
            if p[i] == 0:
                i += 1
                continue
            opts[p[i]] = p[i + 2:i + 2 + p[i + 1]]
            i += 2 + p[i + 1]
        kind = opts.get(53, b"\x00")[0]
        if kind not in (1, 3):  # DISCOVER, REQUEST
            continue
        mac = p[28:34]
        ip = leases.setdefault(mac, "%s.%d" % (prefix, 10 + len(leases)))
        reply = bytearray(240)
        reply[0:4] = b"\x02\x01\x06\x00"
        reply[4:8] = p[4:8]  # xid
        reply[10:12] = p[10:12]  # flags
        reply[16:20] = socket.inet_aton(ip)
        reply[20:24] = me
        reply[28:44] = p[28:44]
        reply[236:240] = b"\x63\x82\x53\x63"
        reply += bytes([53, 1, 2 if kind == 1 else 5, 54, 4]) + me
        reply += bytes([51, 4]) + struct.pack(">I", 3600)
        reply += bytes([1, 4]) + socket.inet_aton("255.255.255.0")
        reply += bytes([3, 4]) + me + bytes([6, 4]) + me + b"\xff"
        s.sendto(bytes(reply), ("255.255.255.255", 68))


def udp_echo():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ADDR, 5353))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)


class Hello(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.do_GET()

    def do_GET(self):
        host = self.headers.get("Host", "?")
        log("/root/http.log", "%s %s %s" % (host, self.path, self.headers.get("x-api-key", "-")))
        if host.split(":")[0] == "api.model.test":
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            ok = KEY != "" and self.headers.get("x-api-key") == KEY
            body = b'{"model":"fake","reply":"hello from the model"}\n' if ok else b'{"error":"bad key"}\n'
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        body = ("hello from %s:%d\n" % (host, self.server.server_address[1])).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


for port in (80, 443, 8443):
    threading.Thread(target=Server((ADDR, port), Hello).serve_forever, daemon=True).start()
threading.Thread(target=udp_echo, daemon=True).start()
threading.Thread(target=dhcp, daemon=True).start()
threading.Thread(target=packets, daemon=True).start()
dns()
