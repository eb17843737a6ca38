"""The benchmarks' web server: files from /srv, sent with sendfile(2) so
that the server costs little CPU (a real server is on another machine;
here it shares the cores with the client and the gateway).
Usage: python3 bench-http-server.py ADDRESS"""
import http.server
import os
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm the
    # second waits for the client's delayed ACK (40 ms), as no real server
    # makes it wait.
    disable_nagle_algorithm = True

    def copyfile(self, source, outputfile):
        outputfile.flush()
        self.connection.sendfile(source)

    def log_message(self, *args):
        pass


os.chdir("/srv")
http.server.ThreadingHTTPServer((sys.argv[1], 80), Handler).serve_forever()
